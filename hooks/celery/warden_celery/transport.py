"""Transports to the sidecar, the same wire as hooks/transport/{nats,http}.ts.

- NATS JetStream: each event published to `warden.events.<source>` on stream WARDEN_EVENTS with
  header `Nats-Msg-Id` = event_id (JetStream drops a resend inside its duplicate window). The stream
  is created when missing, as core/event-stream.ts does (file storage, 2 min duplicate window, 7 days).
- HTTP ingest: `POST <url>/v1/events`, body `{"events":[...]}`, `Authorization: Bearer <token>`.
  Network errors, timeouts, 408, 429 and 5xx are retried (after Retry-After when given); any other
  4xx is final, a 400 naming one bad event drops only that one, a 413 makes batches smaller.
"""
from __future__ import annotations

import asyncio
import json
import os
import threading
import urllib.error
import urllib.request
from typing import Any, Awaitable, Callable, TypeVar

from .outbox import OutboxItem, TransportBusy, TransportRejected

EVENT_STREAM = "WARDEN_EVENTS"
EVENT_SUBJECT_PREFIX = "warden.events"

T = TypeVar("T")


class HttpTransport:
    name = "http"

    def __init__(self, url: str, token: str, timeout: float = 10.0) -> None:
        self.endpoint = url.rstrip("/") + "/v1/events"
        self.token = token
        self.timeout = timeout

    def send(self, items: list[OutboxItem]) -> None:
        body = ('{"events":[' + ",".join(i.json for i in items) + "]}").encode("utf-8", "surrogatepass")
        req = urllib.request.Request(self.endpoint, data=body, method="POST", headers={
            "content-type": "application/json", "authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                res.read()
                return
        except urllib.error.HTTPError as e:
            status = e.code
            text = e.read().decode("utf-8", "replace") if e.fp else ""
            retry_after = e.headers.get("retry-after") if e.headers else None
        try:
            detail = json.loads(text)
            if not isinstance(detail, dict):
                detail = {}
        except ValueError:
            detail = {}
        msg = f"HTTP {status} from {self.endpoint}: {detail.get('error') or text[:200]}"
        try:
            ra = float(retry_after) if retry_after else 0.0
        except ValueError:
            ra = 0.0
        if status in (429, 503) and ra > 0:
            raise TransportBusy(msg, ra * 1000)
        if status in (408, 429) or status >= 500:
            raise ConnectionError(msg)
        index = detail.get("index") if status == 400 and isinstance(detail.get("index"), int) else None
        raise TransportRejected(msg, index, status == 413)

    def close(self) -> None:
        pass


class NatsLink:
    """One NATS connection on a private asyncio loop in a daemon thread, shared by the event transport
    and the breaker watch. Callers on task threads wait on futures with timeouts; nothing here runs on
    a task's thread. Fork-safe: a child process gets a fresh loop and connection on first use."""

    def __init__(self, servers: list[str], timeout: float = 5.0) -> None:
        self.servers = servers
        self.timeout = timeout
        self._init()
        os.register_at_fork(after_in_child=self._init)

    def _init(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._nc: Any = None
        self._connecting: asyncio.Future[Any] | None = None
        self.on_reconnect: list[Callable[[], None]] = []

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="warden-nats", daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop())  # type: ignore[arg-type]
        try:
            return fut.result(timeout if timeout is not None else self.timeout * 2)
        except BaseException:
            fut.cancel()
            raise

    async def connection(self) -> Any:
        """The connection (on the loop); connects once, then the client reconnects by itself."""
        import nats  # the `nats` extra

        if self._nc is not None and not self._nc.is_closed:
            return self._nc

        async def reconnected() -> None:
            for cb in list(self.on_reconnect):
                try:
                    cb()
                except Exception:
                    pass

        self._nc = await nats.connect(servers=self.servers, name="warden-celery", connect_timeout=self.timeout,
                                      allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.25,
                                      reconnected_cb=reconnected)
        return self._nc

    def close(self) -> None:
        loop = self._loop
        if loop is None:
            return
        nc = self._nc
        self._nc = None
        if nc is not None:
            try:
                asyncio.run_coroutine_threadsafe(nc.close(), loop).result(2)
            except Exception:
                pass
        loop.call_soon_threadsafe(loop.stop)
        self._loop = None


class NatsTransport:
    name = "nats"

    def __init__(self, link: NatsLink, stream: str = EVENT_STREAM, subject_prefix: str = EVENT_SUBJECT_PREFIX,
                 duplicate_window_s: float = 120.0, max_age_s: float = 7 * 24 * 3600.0) -> None:
        self.link = link
        self.stream = stream
        self.prefix = subject_prefix
        self.duplicate_window_s = duplicate_window_s
        self.max_age_s = max_age_s
        self._js: Any = None
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._js = None

    def send(self, items: list[OutboxItem]) -> None:
        self.link.run(self._send(items), timeout=self.link.timeout * 3)

    async def _ready(self) -> Any:
        nc = await self.link.connection()
        if self._js is not None:
            return self._js
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import BadRequestError, NotFoundError

        js = nc.jetstream(timeout=self.link.timeout)
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            try:
                await js.add_stream(StreamConfig(name=self.stream, subjects=[f"{self.prefix}.>"], storage=StorageType.FILE,
                                                 duplicate_window=self.duplicate_window_s, max_age=self.max_age_s))
            except BadRequestError as e:  # created by someone else meanwhile
                if "already in use" not in str(e):
                    raise
        self._js = js
        return js

    async def _send(self, items: list[OutboxItem]) -> None:
        js = await self._ready()
        max_payload = getattr(self.link._nc, "max_payload", None) if self.link._nc is not None else None
        if max_payload:
            for i, it in enumerate(items):
                if len(it.json.encode("utf-8", "surrogatepass")) > max_payload - 512:
                    raise TransportRejected(f"event {it.id} is over the NATS server's max_payload of {max_payload}", i)
        try:
            await asyncio.gather(*(js.publish(f"{self.prefix}.{it.source}", it.json.encode("utf-8", "surrogatepass"),
                                              timeout=self.link.timeout, headers={"Nats-Msg-Id": it.id}) for it in items))
        except Exception as e:
            # No stream answers (deleted, or a restarted server lost it): check it again before the resend.
            if any(s in f"{type(e).__name__} {e}".lower() for s in ("no responders", "noresponders", "not found", "503")):
                self._js = None
            raise ConnectionError(f"NATS publish failed: {type(e).__name__}: {e}") from e

    def close(self) -> None:
        pass  # the link is closed by its owner
