"""A real prefork Celery worker on a private Redis, sending to a real NATS JetStream: correlation and
trace context travel producer -> task -> child task, the default correlation ID is the root_id, and
the hook's only events are `job.annotated` link notes (redacted, digest of the unredacted input)."""
from __future__ import annotations

import hashlib
import json

import redis

import warden_celery
from conftest import nats_events, until
from warden_celery.canonical import canonical_json
from warden_celery.ids import ULID_RE, parse_traceparent, trace_id_for_correlation


def _seen(r: redis.Redis, label: str) -> dict:
    return json.loads(until(lambda: r.get(f"probe:{label}"), 60, f"task {label} to run"))  # type: ignore[arg-type]


def test_correlation_trace_and_events_through_a_real_worker(redis_url, nats_server, start_worker, monkeypatch):
    env = {"WC_BROKER": redis_url, "WARDEN_NATS_URL": nats_server.url}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    worker = start_worker(env)
    import importlib

    import app_tasks
    importlib.reload(app_tasks)  # the producer side: this process, instrumented too
    r = redis.Redis.from_url(redis_url)
    tp_in = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"

    # 1. A scope with a correlation ID, trace context and model metadata: parent and child carry it.
    with warden_celery.with_correlation("order-42", traceparent=tp_in, model="gpt-x", model_version="2024-05"):
        res = app_tasks.probe.delay("a-parent", password="hunter2", note="mail bob@example.com", secret_note="private")
    parent = _seen(r, "a-parent")
    child = _seen(r, "a-child")
    assert parent["warden"]["cid"] == "order-42" and parent["cid"] == "order-42"
    assert parent["warden"]["tp"] == tp_in and parent["traceparent"] == tp_in  # W3C header for OTel interop too
    assert parent["warden"]["model"] == "gpt-x"
    assert child["cid"] == "order-42" and child["warden"]["cid"] == "order-42" and child["root_id"] == parent["id"]
    ptp, ctp = parse_traceparent(parent["stamp"]["tp"]), parse_traceparent(child["warden"]["tp"])
    assert ptp and ctp and ptp[0] == ctp[0] == "ab" * 16  # one trace
    assert ctp[1] == ptp[1] == warden_celery.task_span_id(parent["id"], 0)  # the child hangs under the parent's run
    assert res.get(timeout=30) == "order-42"

    # 2. No scope: the correlation ID is Celery's root_id (what the sidecar's collector uses).
    app_tasks.probe.delay("b-parent")
    b = _seen(r, "b-parent")
    bc = _seen(r, "b-child")
    assert b["warden"] == {"cid": b["id"]} and b["cid"] == b["id"] == b["root_id"]
    assert bc["cid"] == b["id"] and bc["warden"]["cid"] == b["id"]
    assert parse_traceparent(bc["warden"]["tp"])[0] == trace_id_for_correlation(b["id"])

    # 3. Events: link notes only where the sidecar could not derive the linkage.
    def got(evs: list[dict]) -> bool:
        return {e["job_id"] for e in evs} >= {parent["id"], child["id"]}

    evs = nats_events(nats_server.url, got)
    assert all(e["kind"] == "job.annotated" and e["source"] == "celery" and e["_subject"] == "warden.events.celery" for e in evs)
    assert all(ULID_RE.match(e["event_id"]) and e["_msg_id"] == e["event_id"] for e in evs)
    assert {e["job_id"] for e in evs} == {parent["id"], child["id"]}  # b-parent/b-child: derivable, nothing sent
    pe = next(e for e in evs if e["job_id"] == parent["id"])
    assert pe["correlation_id"] == "order-42" and pe["trace_id"] == "ab" * 16 and pe["span_id"] == ptp[1]
    assert pe["attrs"]["note"] == "link" and pe["attrs"]["parent_span_id"] == "cd" * 8 and pe["attrs"]["root_id"] == parent["id"]
    assert pe["job_name"] == "tasks.probe" and pe["queue"] == "celery" and pe["attempt"] == 1
    assert pe["model"] == "gpt-x" and pe["model_version"] == "2024-05"
    raw = {"args": ["a-parent"], "kwargs": {"password": "hunter2", "note": "mail bob@example.com", "secret_note": "private"}}
    assert pe["input_digest"] == hashlib.sha256(canonical_json(raw).encode()).hexdigest()
    assert pe["input"] == {"args": ["a-parent"], "kwargs": {"password": "[REDACTED]", "note": "mail [REDACTED:email]", "secret_note": "[REDACTED]"}}
    assert "hunter2" not in json.dumps(evs) and "bob@example.com" not in json.dumps(evs)
    assert set(pe) - {"_subject", "_msg_id"} == set(warden_celery.event.EVENT_FIELDS)
    worker.stop()
