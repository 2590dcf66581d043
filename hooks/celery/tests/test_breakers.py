"""Breaker enforcement in a real prefork worker, from the real NATS KV bucket WARDEN_BREAKERS in the
sidecar's format: while `celery.task.tasks.guarded` is open the task never runs and is retried after
the breaker's delay (each fail-fast recorded); once the entry is deleted it runs."""
from __future__ import annotations

import asyncio
import json
import time

import nats
import redis

from conftest import nats_events, until


async def _kv(url: str, op: str, key: str, value: dict | None = None) -> None:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        try:
            kv = await js.key_value("WARDEN_BREAKERS")
        except Exception:
            kv = await js.create_key_value(bucket="WARDEN_BREAKERS")
        if op == "put":
            await kv.put(key, json.dumps(value).encode())
        else:
            await kv.delete(key)
    finally:
        await nc.close()


def test_open_breaker_retries_the_task_instead_of_running_it(redis_url, nats_server, start_worker, monkeypatch):
    key = "celery.task.tasks.guarded"
    status = {"key": key, "phase": "open", "policy": "storm", "policy_version": "3", "retry_after_ms": 300,
              "non_retryable": False, "probe_ratio": 0, "reason": "retry storm: 80% retries", "since": int(time.time() * 1000), "forced_by": None}
    asyncio.run(_kv(nats_server.url, "put", key, status))
    env = {"WC_BROKER": redis_url, "WARDEN_NATS_URL": nats_server.url, "WARDEN_ENFORCE_BREAKERS": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    start_worker(env, name="wb")
    import importlib

    import app_tasks
    importlib.reload(app_tasks)
    r = redis.Redis.from_url(redis_url)
    res = app_tasks.guarded.delay("g1")

    def fail_fasts(evs: list[dict]) -> list[dict]:
        return [e for e in evs if e["job_id"] == res.id and e["attrs"].get("note") == "fail_fast"]

    evs = nats_events(nats_server.url, lambda evs: len(fail_fasts(evs)) >= 3, 60)
    assert r.get("ran:g1") is None  # never ran while open
    ff = fail_fasts(evs)
    assert [e["attempt"] for e in ff[:3]] == [1, 2, 3]
    e = ff[0]
    assert e["kind"] == "job.annotated" and e["source"] == "celery" and e["job_name"] == "tasks.guarded"
    assert e["attrs"]["breaker_key"] == key and e["attrs"]["breaker_policy"] == "storm" and e["attrs"]["breaker_policy_version"] == "3"
    assert e["attrs"]["next_retry_delay_ms"] == 300 and e["attrs"]["error_type"] == "WardenBreakerOpen"
    assert e["error"].startswith(f"Warden breaker {key} is open") and e["reason"] == "retry storm: 80% retries"

    asyncio.run(_kv(nats_server.url, "delete", key))
    retries = res.get(timeout=60)
    assert retries >= 3 and int(r.get("ran:g1")) == 1
