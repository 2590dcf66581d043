"""The in-process outbox between the hook and a transport, as hooks/transport/outbox.ts.

`emit()` serializes the event, checks two bounds (events, bytes) and appends: it never waits for the
network and never raises. A daemon thread sends batches, retrying with backoff while the transport is
down; events leave the queue only once the transport confirmed them, so a retry resends the same
event IDs (deduplicated downstream). On a full outbox the event is dropped and counted; once a send
succeeds again, one `collector.gap` event reports what was dropped and when.

Fork-safe: a prefork child starts with an empty queue and its own thread (os.register_at_fork).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from .event import make_event
from .redact import redact_event

log = logging.getLogger("warden_celery")

SOURCES = frozenset({"bullmq", "temporal", "celery", "warden"})
DROP_REASONS = ("overflow", "rejected", "unserializable", "invalid", "closed")


@dataclass
class OutboxItem:
    id: str
    source: str
    json: str
    bytes: int


class Transport(Protocol):
    name: str

    def send(self, items: list[OutboxItem]) -> None: ...
    def close(self) -> None: ...


class TransportRejected(Exception):
    """The receiver refused the batch for good; `index` names one bad item when known."""

    def __init__(self, message: str, index: int | None = None, too_large: bool = False) -> None:
        super().__init__(message)
        self.index = index
        self.too_large = too_large


class TransportBusy(Exception):
    """The receiver asks to wait (HTTP 429/503 with Retry-After); retried."""

    def __init__(self, message: str, retry_after_ms: float) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


@dataclass
class _Gap:
    count: int = 0
    by: dict[str, int] = field(default_factory=lambda: {r: 0 for r in DROP_REASONS})
    sources: set[str] = field(default_factory=set)
    first_drop: int = 0
    last_drop: int = 0
    down_since: int | None = None
    down_to: int | None = None
    last_error: str | None = None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Outbox:
    def __init__(self, transport: Transport, *, max_events: int = 10_000, max_bytes: int = 16 * 1024 * 1024,
                 batch_events: int = 500, batch_bytes: int = 512 * 1024, linger_ms: int = 20,
                 min_backoff_ms: int = 100, max_backoff_ms: int = 5000) -> None:
        self.transport = transport
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.batch_events = batch_events
        self.batch_bytes = batch_bytes
        self.linger = linger_ms / 1000
        self.min_backoff = min_backoff_ms / 1000
        self.max_backoff = max_backoff_ms / 1000
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cv = threading.Condition(threading.Lock())
        self._items: deque[OutboxItem] = deque()
        self._bytes = 0
        self._gap: _Gap | None = None
        self._report: OutboxItem | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._busy = False  # a send in flight
        self._batch_limit = self.batch_events
        self._confirmed_since_drop = False
        self._failing: dict[str, Any] | None = None
        self._wake = False
        self.sent = 0
        self.dropped = 0
        self.dropped_by = {r: 0 for r in DROP_REASONS}
        self.gap_reports = 0

    # -- producer side (task threads) -------------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> None:
        """Queues the event; returns at once. Never raises: what cannot be queued is counted."""
        source = event.get("source") if isinstance(event, dict) else None
        try:
            with self._cv:
                if self._closed:
                    return self._drop(source, "closed")
                if not isinstance(event.get("event_id"), str) or source not in SOURCES:
                    return self._drop(source, "invalid")
                if len(self._items) >= self.max_events:
                    return self._drop(source, "overflow")
            text = json.dumps(event, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            size = len(text.encode("utf-8", "surrogatepass"))
            with self._cv:
                if self._bytes + size > self.max_bytes or len(self._items) >= self.max_events:
                    return self._drop(source, "overflow")
                self._items.append(OutboxItem(event["event_id"], source, text, size))
                self._bytes += size
                self._start()
                self._cv.notify_all()
        except Exception:
            try:
                with self._cv:
                    self._drop(source, "unserializable")
            except Exception:
                pass

    def stats(self) -> dict[str, Any]:
        with self._cv:
            return {
                "transport": self.transport.name, "sent": self.sent, "dropped": self.dropped,
                "dropped_by": dict(self.dropped_by), "buffered": len(self._items) + (1 if self._report else 0),
                "buffered_bytes": self._bytes, "gap_reports": self.gap_reports, "batch_events": self._batch_limit,
                "failing": dict(self._failing) if self._failing else None,
            }

    def flush(self, timeout: float = 5.0) -> bool:
        """Waits until everything queued (gap report included) is confirmed; False at the timeout."""
        deadline = time.monotonic() + timeout
        with self._cv:
            if not self._idle():
                self._start()
            self._wake = True
            self._cv.notify_all()
            while not self._idle():
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return self._idle()
                self._cv.wait(min(left, 0.05))
            return True

    def close(self, timeout: float = 5.0) -> bool:
        """Flushes for up to `timeout` seconds, then stops; later emits are dropped ('closed')."""
        deadline = time.monotonic() + timeout
        flushed = self.flush(timeout)
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(max(0.0, deadline - time.monotonic()))
        try:
            self.transport.close()
        except Exception:
            pass
        return flushed

    # -- internals (called with the lock held unless noted) ---------------------------------------

    def _idle(self) -> bool:
        return not self._items and self._report is None and self._gap is None and not self._busy

    def _drop(self, source: Any, reason: str) -> None:
        self.dropped += 1
        self.dropped_by[reason] += 1
        self._confirmed_since_drop = False
        now = _now_ms()
        if self._gap is None:
            self._gap = _Gap(first_drop=now, last_drop=now,
                             down_since=self._failing["since"] if self._failing else None,
                             last_error=self._failing["error"] if self._failing else None)
        g = self._gap
        g.count += 1
        g.by[reason] += 1
        g.last_drop = now
        if source in SOURCES:
            g.sources.add(source)
        if not self._closed:
            self._start()
            self._cv.notify_all()

    def _start(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="warden-outbox", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        backoff = self.min_backoff
        while True:
            with self._cv:
                # Linger for a partial batch, so one send carries several events.
                if not self._closed and len(self._items) < self._batch_limit and not self._wake:
                    self._cv.wait(self.linger)
                while not self._closed and not self._items and self._gap is None and self._report is None:
                    self._cv.wait(1.0)
                if self._closed and (self._idle() or self._failing):
                    self._cv.notify_all()
                    return
                batch = self._next_batch()
                if not batch:
                    continue
                self._busy = True
            err: BaseException | None = None
            try:
                self.transport.send(batch)
            except BaseException as e:  # noqa: BLE001 (never into the host)
                err = e
            with self._cv:
                self._busy = False
                if err is None:
                    self._confirmed(batch)
                    backoff = self.min_backoff
                elif isinstance(err, TransportRejected) and err.too_large and len(batch) > 1:
                    self._batch_limit = max(1, len(batch) // 2)
                elif isinstance(err, TransportRejected):
                    self._rejected(batch, err)
                else:
                    self._failed(err)
                    wait = max(backoff, min(err.retry_after_ms / 1000, 60.0)) if isinstance(err, TransportBusy) else backoff
                    backoff = min(backoff * 2, self.max_backoff)
                    self._wake = False
                    deadline = time.monotonic() + wait
                    while not self._closed and not self._wake and time.monotonic() < deadline:
                        self._cv.wait(deadline - time.monotonic())
                if self._idle():
                    self._wake = False
                self._cv.notify_all()

    def _next_batch(self) -> list[OutboxItem]:
        batch: list[OutboxItem] = []
        size = 0
        if self._report is None and self._gap is not None and not self._failing and (self._confirmed_since_drop or not self._items):
            self._report = self._build_report(self._gap)
        if self._report is not None:
            batch.append(self._report)
            size += self._report.bytes
        for it in self._items:
            if len(batch) >= self._batch_limit:
                break
            if batch and size + it.bytes > self.batch_bytes:
                break
            batch.append(it)
            size += it.bytes
        return batch

    def _confirmed(self, batch: list[OutboxItem]) -> None:
        n = len(batch)
        if self._report is not None and batch[0] is self._report:
            self._report = None
            self.gap_reports += 1
            n -= 1
        self._shift(n)
        self.sent += len(batch)
        self._confirmed_since_drop = True
        self._reachable()

    def _reachable(self) -> None:
        if not self._failing:
            return
        log.info("warden: %s transport is back (down since %s)", self.transport.name, _iso(self._failing["since"]))
        self._failing = None
        if self._gap is not None:
            self._gap.down_to = _now_ms()

    def _rejected(self, batch: list[OutboxItem], err: TransportRejected) -> None:
        bad = batch[err.index] if err.index is not None and 0 <= err.index < len(batch) else None
        log.warning("warden: %s refused %s; dropped: %s", self.transport.name, "an event" if bad else f"a batch of {len(batch)} events", err)
        victims = [bad] if bad else batch
        from_head = 0
        for it in victims:
            if it is self._report:
                self._report = None
                continue
            if bad:
                try:
                    self._items.remove(it)
                    self._bytes -= it.bytes
                except ValueError:
                    pass
            else:
                from_head += 1
            self._drop(it.source, "rejected")
        self._shift(from_head)
        if self._gap is not None:
            self._gap.last_error = str(err)
        self._reachable()

    def _failed(self, err: BaseException) -> None:
        msg = str(err) or type(err).__name__
        if not self._failing:
            self._failing = {"since": _now_ms(), "error": msg}
            log.warning("warden: %s transport unavailable; buffering events (bounded) and retrying: %s", self.transport.name, msg)
        else:
            self._failing["error"] = msg
        if self._gap is not None:
            if self._gap.down_since is None:
                self._gap.down_since = self._failing["since"]
            self._gap.last_error = msg

    def _build_report(self, g: _Gap) -> OutboxItem:
        self._gap = None
        name = self.transport.name
        if g.down_since is not None:
            why = f"{name} unavailable from {_iso(g.down_since)} to {_iso(g.down_to or _now_ms())}"
        elif g.by["overflow"] > 0:
            why = f"outbox full ({self.max_events} events / {self.max_bytes} bytes) from {_iso(g.first_drop)} to {_iso(g.last_drop)}"
        else:
            why = f"{name} refused them (or they could not be serialized) from {_iso(g.first_drop)} to {_iso(g.last_drop)}"
        source = next(iter(g.sources)) if len(g.sources) == 1 else "warden"
        ev = make_event("collector.gap", source=source, reason=f"{g.count} events dropped: {why}", error=g.last_error, attrs={
            "transport": name, "dropped": g.count,
            "dropped_overflow": g.by["overflow"], "dropped_rejected": g.by["rejected"],
            "dropped_unserializable": g.by["unserializable"], "dropped_invalid": g.by["invalid"],
            "dropped_closed": g.by["closed"], "dropped_sources": ",".join(sorted(g.sources)),
            "first_drop_ts": g.first_drop, "last_drop_ts": g.last_drop, "down_from_ts": g.down_since,
            "down_to_ts": (g.down_to or _now_ms()) if g.down_since is not None else None,
        })
        ev = redact_event(ev)  # a transport error can carry a URL with a password
        text = json.dumps(ev, ensure_ascii=False, separators=(",", ":"))
        return OutboxItem(ev["event_id"], source, text, len(text.encode("utf-8")))

    def _shift(self, n: int) -> None:
        for _ in range(min(n, len(self._items))):
            self._bytes -= self._items.popleft().bytes
