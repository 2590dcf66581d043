"""Contracts with the TypeScript side, checked against vectors produced by core/*.ts
(vectors_ts.json; test/hooks/celery/python.test.ts regenerates them from the TS code and fails on a
difference), plus the ULID and traceparent formats."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from warden_celery.breakers import BreakerView, breaker_key, parse_status
from warden_celery.canonical import canonical_json, input_digest
from warden_celery.event import EVENT_FIELDS, make_event
from warden_celery.hook import read_stamp
from warden_celery.ids import ULID_RE, _encode, new_event_id, parse_traceparent, stable_span_id, trace_id_for_correlation
from warden_celery.redact import Redactor

V = json.loads((Path(__file__).parent / "vectors_ts.json").read_text())


def test_redaction_matches_core_redact():
    r = Redactor(["user.ssn_like", "messages.*.content"])
    for text, want in V["texts"]:
        assert r.redact_text(text) == want, text
    value = {"user": {"ssn_like": "x", "name": "Ann", "password": "p", "api_key": "k"}, "messages": [{"content": "hi", "role": "u"}],
             "note": "write to a@b.io", "é": True, "b": None}
    want = {k: v for k, v in V["value"].items() if k != "n"}
    assert r.redact_value(value) == want
    assert value["user"]["password"] == "p"  # not mutated


def test_canonical_json_matches_core_canonical():
    v = {"b": [1, 2.5, 1e21, 1e-7, 0.1, 1.5e300, 5e-324, 100, -3], "a": 'x"\n\u0001é😀', "é": 1, "z": {"y": None, "x": True}}
    assert canonical_json(v) == V["canonical"]
    assert input_digest(v) == hashlib.sha256(V["canonical"].encode()).hexdigest()
    assert input_digest({"x": object()}) is None


def test_ids_match_core_ids():
    assert trace_id_for_correlation("cid-1") == V["trace"]
    assert stable_span_id("celery", "task", "abc", 0) == V["span"]
    ids = [new_event_id() for _ in range(2000)]
    assert all(ULID_RE.match(i) for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    future = 4_102_444_800_000  # 2100-01-01: the 10-character prefix is the ms time, Crockford base 32
    t = 0
    for ch in _encode(future, 10):
        t = t * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(ch)
    assert t == future
    now = new_event_id()
    assert new_event_id(0)[:10] == now[:10]  # monotonic, as ulid's monotonicFactory: never goes back
    assert parse_traceparent("00-" + "a" * 32 + "-" + "b" * 16 + "-01") == ("a" * 32, "b" * 16, 1)
    assert parse_traceparent("00-" + "0" * 32 + "-" + "b" * 16 + "-01") is None


def test_breaker_keys_match_core_breakers():
    assert [breaker_key("celery", "task", "tasks.add"), breaker_key("celery", "queue", "a b..c/é😀*")] == V["keys"]
    view = BreakerView()
    view.set(parse_status("celery.task.a", b'{"phase":"half_open","probe_ratio":0.5}'))
    view.set(parse_status("celery.queue.q", b'{"phase":"open","retry_after_ms":-3}'))
    st = view.status(["celery.task.a", "celery.queue.q", "nope"])
    assert st["key"] == "celery.queue.q" and st["retry_after_ms"] == 30_000 and st["non_retryable"] is False
    view.set(parse_status("celery.queue.q", b'{"phase":"closed"}'))
    assert view.status(["celery.queue.q"]) is None


def test_event_has_every_schema_field():
    ev = make_event("job.annotated", correlation_id="c", attrs={"note": "link"})
    assert list(ev) == list(EVENT_FIELDS) and len(EVENT_FIELDS) == 26
    assert ev["source"] == "celery" and ULID_RE.match(ev["event_id"]) and isinstance(ev["ts"], int)


def test_read_stamp():
    assert read_stamp({"cid": "a", "tp": "x", "other": 1}) == {"cid": "a", "tp": "x"}
    assert read_stamp('{"cid":"a"}') == {"cid": "a"}
    assert read_stamp({"tp": "x"}) is None and read_stamp("not json") is None and read_stamp(None) is None
