"""Warden's worker hook for Celery. See hook.py for what it stamps, restores, sends and enforces.

    import warden_celery
    app = Celery(...)
    warden = warden_celery.instrument(app)   # WARDEN_NATS_URL, or WARDEN_INGEST_URL + WARDEN_INGEST_TOKEN
"""
from .breakers import BREAKER_BUCKET, BreakerView, breaker_key
from .context import CORRELATION_BAGGAGE_KEY, current_correlation_id, current_stamp, current_trace, with_correlation
from .hook import BREAKER_FAILURE_TYPE, HEADER, WardenBreakerOpen, WardenCelery, WardenConfigError, instrument, read_stamp, task_span_id

__all__ = [
    "instrument", "WardenCelery", "WardenConfigError", "WardenBreakerOpen", "BREAKER_FAILURE_TYPE", "HEADER",
    "with_correlation", "current_correlation_id", "current_stamp", "current_trace", "CORRELATION_BAGGAGE_KEY",
    "BREAKER_BUCKET", "BreakerView", "breaker_key", "read_stamp", "task_span_id",
]
