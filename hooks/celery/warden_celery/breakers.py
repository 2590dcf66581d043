"""Circuit-breaker state, read from the same NATS KV bucket the sidecar's policies write
(core/breakers.ts): bucket WARDEN_BREAKERS, one JSON BreakerStatus per key. A watch keeps a local
map current, so enforcing costs a dict lookup per task, never a network call.

Keys a Celery hook consults: `celery.task.<task name>`, `celery.queue.<queue>` and, when the task
carries a model, `any.model.<model>` (built by breaker_key exactly as breakerKey() in TypeScript).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import threading
from typing import Any, Iterable

log = logging.getLogger("warden_celery")

BREAKER_BUCKET = "WARDEN_BREAKERS"
_RANK = {"closed": 0, "half_open": 1, "open": 2}
_KV_SAFE = re.compile(r"[^-_=/.a-zA-Z0-9]")


def _escape(ch: str) -> str:
    # JavaScript escapes UTF-16 code units: a character outside the BMP becomes two escapes.
    units = ch.encode("utf-16-be", "surrogatepass")
    return "".join(f"={int.from_bytes(units[i:i + 2], 'big'):02x}" for i in range(0, len(units), 2))


def breaker_key(system: str, kind: str, name: str) -> str:
    """`<system>.<kind>.<name>`; characters KV keys refuse become `=XX`, `..` becomes `.=2e`."""
    safe = _KV_SAFE.sub(lambda m: _escape(m.group(0)), name).replace("..", ".=2e")
    return f"{system}.{kind}.{safe}"


def parse_status(key: str, raw: bytes) -> dict[str, Any]:
    """A BreakerStatus with the defaults hooks/transport/breaker-watch.ts applies; raises if malformed."""
    s = json.loads(raw)
    if not isinstance(s, dict) or s.get("phase") not in _RANK:
        raise ValueError(f"breaker entry {key}: not a BreakerStatus (phase must be closed, half_open or open)")

    def num(v: Any, d: float) -> float:
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 and v == v and v != float("inf") else d

    def text(v: Any, d: str) -> str:
        return v if isinstance(v, str) else d

    return {**s, "key": key, "policy": text(s.get("policy"), "(unknown)"), "policy_version": text(s.get("policy_version"), ""),
            "reason": text(s.get("reason"), "breaker entry without a reason"), "retry_after_ms": num(s.get("retry_after_ms"), 30_000),
            "probe_ratio": min(1.0, num(s.get("probe_ratio"), 0)), "non_retryable": s.get("non_retryable") is True,
            "since": num(s.get("since"), 0), "forced_by": s.get("forced_by") if isinstance(s.get("forced_by"), str) else None}


class BreakerView:
    """A map of non-closed breakers; `status(keys)` is the most restrictive among them."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}

    def set(self, status: dict[str, Any]) -> None:
        if status["phase"] == "closed":
            self.states.pop(status["key"], None)
        else:
            self.states[status["key"]] = status

    def status(self, keys: Iterable[str]) -> dict[str, Any] | None:
        worst = None
        states = self.states
        for k in keys:
            s = states.get(k)
            if s is not None and (worst is None or _RANK[s["phase"]] > _RANK[worst["phase"]]):
                worst = s
        return worst


class BreakerWatch(BreakerView):
    """A BreakerView kept current from a KV watch (on the NatsLink loop). Each (re)watch collects the
    bucket's current values into a fresh map and swaps it in once complete, so keys deleted while
    disconnected disappear too. Restarted after a reconnect and whenever it fails; retried until the
    bucket exists. A malformed value is skipped and logged, never raised into a task."""

    def __init__(self, link: Any, bucket: str = BREAKER_BUCKET, retry_s: float = 1.0) -> None:
        super().__init__()
        self.link = link
        self.bucket = bucket
        self.retry_s = retry_s
        self._init()
        os.register_at_fork(after_in_child=self._init)

    def _init(self) -> None:
        self.states = {}
        self._loaded = threading.Event()
        self._task: Any = None
        self._started = False
        self._closed = False
        self.counts = {"applied": 0, "watches": 0, "errors": 0}

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.link.on_reconnect.append(self._restart)
        loop = self.link.loop()
        loop.call_soon_threadsafe(lambda: setattr(self, "_task", loop.create_task(self._run())))

    def ready(self, timeout: float = 10.0) -> bool:
        """True once the bucket's values were loaded the first time (False at the timeout)."""
        return self._loaded.wait(timeout)

    def _restart(self) -> None:
        t = self._task
        if t is not None and not self._closed:
            t.cancel()
            loop = self.link.loop()
            self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        backoff = self.retry_s
        while not self._closed:
            try:
                await self._watch_once()
                backoff = self.retry_s
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001
                self.counts["errors"] += 1
                log.debug("warden: breaker watch: %s", e)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _watch_once(self) -> None:
        nc = await self.link.connection()
        js = nc.jetstream(timeout=self.link.timeout)
        kv = await js.key_value(self.bucket)  # raises while the bucket does not exist
        watcher = await kv.watchall()
        self.counts["watches"] += 1
        fresh: dict[str, dict[str, Any]] = {}
        initial = True
        try:
            while not self._closed:
                try:
                    e = await watcher.updates(timeout=30)
                except Exception as err:  # a quiet bucket times out; anything else ends this watch
                    if "timeout" in type(err).__name__.lower():
                        continue
                    raise
                if e is None:
                    if initial:
                        initial = False
                        self.states = fresh
                        self._loaded.set()
                    continue
                if isinstance(e, type(watcher.STOP_ITER)):
                    return
                self._apply(fresh if initial else self.states, e)
        finally:
            try:
                await watcher.stop()
            except Exception:
                pass

    def _apply(self, target: dict[str, dict[str, Any]], e: Any) -> None:
        self.counts["applied"] += 1
        if e.operation is not None:  # DEL or PURGE
            target.pop(e.key, None)
            return
        try:
            s = parse_status(e.key, e.value or b"")
        except Exception as err:  # noqa: BLE001
            target.pop(e.key, None)
            self.counts["errors"] += 1
            log.warning("warden: %s", err)
            return
        if s["phase"] == "closed":
            target.pop(e.key, None)
        else:
            target[e.key] = s

    def close(self) -> None:
        self._closed = True
        t = self._task
        if t is not None:
            try:
                self.link.loop().call_soon_threadsafe(t.cancel)
            except Exception:
                pass
