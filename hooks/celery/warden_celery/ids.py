"""Identifiers, byte-compatible with core/ids.ts and core/traceparent.ts.

- event IDs are ULIDs (26 Crockford base-32 characters, 48-bit ms time prefix, 80 random bits),
  monotonic within a process like the `ulid` package's monotonicFactory;
- the trace ID of a correlation ID without trace context is sha256("warden.trace\\0" + cid)[:32],
  so spans the sidecar rebuilds and spans made in-process share one trace;
- stable span IDs are sha256("warden.span\\0" + parts joined by "\\0")[:16].
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
import time

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last_ms = -1
_last_rand = 0
_RAND_MAX = (1 << 80) - 1


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_event_id(ts_ms: int | None = None) -> str:
    """A ULID; IDs made in the same millisecond increase (monotonic), as in core/ids.ts."""
    global _last_ms, _last_rand
    ms = int(time.time() * 1000) if ts_ms is None else int(ts_ms)
    with _lock:
        if ms <= _last_ms and _last_rand < _RAND_MAX:
            ms = _last_ms
            _last_rand += 1
        else:
            _last_ms = ms
            _last_rand = int.from_bytes(os.urandom(10), "big")
        rand = _last_rand
    return _encode(ms, 10) + _encode(rand, 16)


ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def trace_id_for_correlation(correlation_id: str) -> str:
    return sha256_hex(f"warden.trace\0{correlation_id}")[:32]


def stable_span_id(*parts: object) -> str:
    return sha256_hex("warden.span\0" + "\0".join(str(p) for p in parts))[:16]


def new_correlation_id() -> str:
    return "wc_" + new_event_id()


def new_span_id() -> str:
    while True:
        s = os.urandom(8).hex()
        if s != "0" * 16:
            return s


_TP = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse_traceparent(tp: object) -> tuple[str, str, int] | None:
    """(trace_id, span_id, flags) of a version-00 traceparent; None if malformed or all-zero."""
    m = _TP.match(tp) if isinstance(tp, str) else None
    if not m or set(m.group(1)) == {"0"} or set(m.group(2)) == {"0"}:
        return None
    return m.group(1), m.group(2), int(m.group(3), 16)


def format_traceparent(trace_id: str, span_id: str, sampled: bool = True) -> str:
    return f"00-{trace_id}-{span_id}-{'01' if sampled else '00'}"
