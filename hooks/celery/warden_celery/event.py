"""The one Warden event (core/event.ts WardenEventSchema), built in Python: every field present,
null when unknown, a fresh ULID as event_id."""
from __future__ import annotations

import time
from typing import Any

from .ids import new_event_id

EVENT_FIELDS = (
    "event_id", "ts", "kind", "source", "correlation_id", "trace_id", "span_id", "queue", "job_id",
    "job_name", "workflow_id", "run_id", "activity_type", "attempt", "duration_ms", "input_digest",
    "input", "model", "model_version", "policy", "policy_version", "actor", "decision", "reason",
    "error", "attrs",
)

SOURCE = "celery"


def make_event(kind: str, source: str = SOURCE, **fields: Any) -> dict[str, Any]:
    unknown = set(fields) - set(EVENT_FIELDS)
    if unknown:
        raise TypeError(f"not event fields: {sorted(unknown)}")
    ts = int(fields.get("ts") or time.time() * 1000)
    ev: dict[str, Any] = {f: fields.get(f) for f in EVENT_FIELDS}
    ev["ts"] = ts
    ev["kind"] = kind
    ev["source"] = source
    ev["event_id"] = fields.get("event_id") or new_event_id(ts)
    ev["attrs"] = dict(fields.get("attrs") or {})
    return ev
