"""The Celery app the tests' real workers run (and the test process publishes with)."""
from __future__ import annotations

import json
import os

import redis
from celery import Celery

import warden_celery

app = Celery("app_tasks", broker=os.environ.get("WC_BROKER", "redis://127.0.0.1:1/0"), backend=os.environ.get("WC_BROKER", "redis://127.0.0.1:1/0"))
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True,
                worker_hijack_root_logger=False, result_extended=True)
warden = warden_celery.instrument(app, redaction_paths=["kwargs.secret_note"], breaker_ready_timeout=10.0)


def _r() -> redis.Redis:
    return redis.Redis.from_url(os.environ["WC_BROKER"])


@app.task(bind=True, name="tasks.probe")
def probe(self, label: str, **kwargs):
    seen = {
        "id": self.request.id, "root_id": self.request.root_id, "parent_id": self.request.parent_id,
        "warden": getattr(self.request, "warden", None), "traceparent": getattr(self.request, "traceparent", None),
        "cid": warden_celery.current_correlation_id(), "stamp": warden_celery.current_stamp(),
    }
    _r().set(f"probe:{label}", json.dumps(seen))
    if label.endswith("-parent"):
        probe.delay(label.replace("-parent", "-child"))
    return seen["cid"]


@app.task(bind=True, name="tasks.guarded", max_retries=50)
def guarded(self, label: str):
    _r().incr(f"ran:{label}")
    return self.request.retries


@app.task(bind=True, name="tasks.start_workflow")
def start_workflow(self, address: str, task_queue: str, workflow_id: str):
    import asyncio

    from temporalio.client import Client

    from warden_celery.temporal import WardenTemporalInterceptor

    async def go():
        client = await Client.connect(address, interceptors=[WardenTemporalInterceptor()])
        handle = await client.start_workflow("EchoStamp", id=workflow_id, task_queue=task_queue)
        return handle.result_run_id

    return {"run_id": asyncio.run(go()), "task_id": self.request.id, "task_cid": warden_celery.current_correlation_id(),
            "task_stamp": warden_celery.current_stamp()}
