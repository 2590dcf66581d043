"""The correlation scope of the work in progress (hooks/correlation.ts in Python): a Celery task run by
an instrumented worker, or `with_correlation(...)`. Work started inside it (Celery tasks, Temporal
workflows through warden_celery.temporal, BullMQ jobs through current_stamp()) carries its
correlation ID and trace context on. Kept in a contextvar, so threads and asyncio tasks each see
their own scope."""
from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass, field, replace
from typing import Any, Iterator

from .ids import format_traceparent, parse_traceparent, trace_id_for_correlation

CORRELATION_BAGGAGE_KEY = "warden.correlation_id"
METADATA_KEYS = ("model", "model_version", "policy", "policy_version")


@dataclass(frozen=True)
class Scope:
    correlation_id: str
    #: W3C traceparent of the span work started here should hang under (the task's own span).
    traceparent: str | None = None
    tracestate: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("warden_scope", default=None)


def current_scope() -> Scope | None:
    return _scope.get()


@contextlib.contextmanager
def with_correlation(correlation_id: str, *, traceparent: str | None = None, tracestate: str | None = None,
                     **metadata: str) -> Iterator[Scope]:
    """Runs the block with this correlation ID (and optional model/policy metadata) in scope."""
    bad = set(metadata) - set(METADATA_KEYS)
    if bad:
        raise TypeError(f"unknown metadata {sorted(bad)}; allowed: {', '.join(METADATA_KEYS)}")
    s = Scope(correlation_id, traceparent, tracestate, {k: v for k, v in metadata.items() if isinstance(v, str)})
    token = _scope.set(s)
    try:
        yield s
    finally:
        _scope.reset(token)


def _push(s: Scope) -> contextvars.Token[Scope | None]:
    return _scope.set(s)


def _pop(token: contextvars.Token[Scope | None]) -> None:
    _scope.reset(token)


def _otel() -> tuple[str | None, str | None, str | None]:
    """(traceparent of the active span, tracestate, baggage correlation ID) from OpenTelemetry."""
    try:
        from opentelemetry import baggage, trace

        cid = baggage.get_baggage(CORRELATION_BAGGAGE_KEY)
        sc = trace.get_current_span().get_span_context()
        if sc is not None and sc.is_valid:
            tp = format_traceparent(f"{sc.trace_id:032x}", f"{sc.span_id:016x}", bool(sc.trace_flags & 1))
            ts = sc.trace_state.to_header() if sc.trace_state else None
            return tp, ts or None, cid if isinstance(cid, str) else None
        return None, None, cid if isinstance(cid, str) else None
    except Exception:
        return None, None, None


def current_correlation_id() -> str | None:
    """The scope's correlation ID, else OTel baggage `warden.correlation_id`, else None."""
    s = _scope.get()
    if s is not None:
        return s.correlation_id
    return _otel()[2]


def current_trace() -> tuple[str | None, str | None]:
    """(traceparent, tracestate) to hand on: the active OTel span if any, else the scope's."""
    tp, ts, _ = _otel()
    if tp:
        return tp, ts
    s = _scope.get()
    if s is not None and parse_traceparent(s.traceparent):
        return s.traceparent, s.tracestate
    return None, None


def current_stamp(default_correlation_id: str | None = None) -> dict[str, Any] | None:
    """The stamp work started here should carry (`{cid, tp?, tst?, model?, ...}`): the format of the
    BullMQ `opts.warden` convention (core/bullmq-convention.ts) and of the Temporal `warden` header.
    None when there is no correlation ID in scope and no default."""
    cid = current_correlation_id() or default_correlation_id
    if not cid:
        return None
    stamp: dict[str, Any] = {"cid": cid}
    tp, ts = current_trace()
    if tp:
        stamp["tp"] = tp
        if ts:
            stamp["tst"] = ts
    s = _scope.get()
    if s is not None:
        stamp.update(s.metadata)
    return stamp


def derived_traceparent(correlation_id: str, span_id: str) -> str:
    return format_traceparent(trace_id_for_correlation(correlation_id), span_id)


__all__ = ["Scope", "current_scope", "with_correlation", "current_correlation_id", "current_trace", "current_stamp",
           "CORRELATION_BAGGAGE_KEY", "replace"]
