"""Contracts with the TypeScript side, checked against vectors produced by core/*.ts
(vectors_ts.json; test/hooks/celery/python.test.ts regenerates them from the TS code and fails on a
difference), plus the ULID and traceparent formats."""
from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

from warden_celery.breakers import BreakerView, breaker_key, parse_status
from warden_celery.canonical import canonical_json, input_digest
from warden_celery.event import EVENT_FIELDS, make_event
from warden_celery.hook import read_stamp
from warden_celery.ids import ULID_RE, _encode, new_event_id, parse_traceparent, stable_span_id, trace_id_for_correlation
from warden_celery.redact import Redactor, is_sensitive_key, percent_decode, redact_event, redact_join_key

V = json.loads((Path(__file__).parent / "vectors_ts.json").read_text())


def test_redaction_matches_core_redact():
    r = Redactor(["user.ssn_like", "messages.*.content"])
    assert len(V["texts"]) > 40
    for text, want in V["texts"]:
        assert r.redact_text(text) == want, text
    value = copy.deepcopy(V["value_in"])
    assert r.redact_value(value) == V["value"]
    assert value == V["value_in"]  # not mutated


def test_sensitive_key_names_match_core_redact():
    for key, want in V["sensitive"]:
        assert is_sensitive_key(key) is want, key


def test_percent_decoding_matches_core_redact():
    for text, want, want_plus in V["percent"]:
        assert percent_decode(text) == want, text
        assert percent_decode(text, plus_is_space=True) == want_plus, text


def test_join_keys_match_core_redact():
    r = Redactor(["user.ssn_like", "messages.*.content"])
    for key, want in V["join_keys"]:
        assert redact_join_key(key, r) == want, key
        assert redact_join_key(want, r) == want, key  # idempotent


def test_redact_event_matches_core_redact():
    r = Redactor(["user.ssn_like", "messages.*.content"])
    ev = copy.deepcopy(V["event_in"])
    out = redact_event(ev, r)
    assert out == V["event"]
    assert list(out) == list(V["event"]) == list(EVENT_FIELDS)
    assert ev == V["event_in"]  # not mutated
    assert redact_event(out, r) == out  # idempotent: the sidecar's pass leaves the hook's output as it is


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


def test_hook_sends_events_redacted_as_the_sidecar_would():
    """What the hook emits is redact_event's output: join keys carry the same digest the sidecar
    computes, the trace still derives from the raw correlation ID (as the Celery collector does)."""
    from warden_celery.hook import WardenCelery

    sent: list[dict] = []

    class Emitter:
        name = "fake"

        def emit(self, ev: dict) -> None:
            sent.append(ev)

    want = dict(V["join_keys"])
    w = WardenCelery(None, emitter=Emitter(), link=None, breakers=None, redactor=Redactor(), send_input=True, breaker_ready_timeout=0)
    w.record_approval(granted=True, actor="ceo@example.com", task_id="celery:q:jane.doe@example.com", reason="password=x",
                      correlation_id="corr alice@example.com", model="gpt token=abc")
    (ev,) = sent
    assert ev["correlation_id"] == want["corr alice@example.com"] and ev["correlation_id"].startswith("corr [REDACTED:email]~h:")
    assert ev["job_id"] == want["celery:q:jane.doe@example.com"]
    assert ev["trace_id"] == trace_id_for_correlation("corr alice@example.com")
    assert ev["actor"] == "[REDACTED:email]" and ev["reason"] == "password=[REDACTED:secret]" and ev["model"] == "gpt token=[REDACTED:secret]"
    assert redact_event(ev) == ev


def test_outbox_gap_report_is_redacted():
    from warden_celery.outbox import Outbox, TransportRejected

    got: list[dict] = []

    class T:
        name = "fake"

        def send(self, items) -> None:
            evs = [json.loads(i.json) for i in items]
            bad = next((n for n, e in enumerate(evs) if e["job_id"] == "bad"), None)
            if bad is not None:
                raise TransportRejected("refused by nats://warden:s3cr3tPass@nats.internal:4222", index=bad)
            got.extend(evs)

        def close(self) -> None:
            pass

    ob = Outbox(T(), linger_ms=1, min_backoff_ms=1, max_backoff_ms=5)
    ob.emit(make_event("job.annotated", job_id="bad"))
    assert ob.flush(5)
    ob.emit(make_event("job.annotated", job_id="good"))
    assert ob.flush(5)
    ob.close(1)
    gaps = [e for e in got if e["kind"] == "collector.gap"]
    assert len(gaps) == 1 and gaps[0]["attrs"]["dropped_rejected"] == 1
    assert "s3cr3tPass" not in json.dumps(got) and "[REDACTED:password]" in (gaps[0]["error"] or "")
