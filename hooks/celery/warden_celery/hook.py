"""`instrument(app)`: Warden's hook inside a Celery app (producer and worker).

On publish (`before_task_publish`) it stamps the message with a `warden` header
`{cid, tp?, tst?, model?, model_version?, policy?, policy_version?}` (the field names of the BullMQ
`opts.warden` stamp) and, when it knows one, the W3C `traceparent` header that
opentelemetry-instrumentation-celery also uses. The correlation ID is the scope's (a task being run,
`with_correlation`), else OTel baggage `warden.correlation_id`, else the message's `root_id`, which
is what the sidecar's Celery collector uses, so both agree without a word exchanged.

Around execution it restores that scope (and an OTel context carrying the task's span and the
baggage), so tasks, Temporal workflows (warden_celery.temporal) and BullMQ jobs started inside carry
the same correlation ID and trace on. Where asked (`enforce_breakers`) a task whose breaker is open
does not run: it is retried after the breaker's delay (or failed, when the policy says retrying is
pointless).

Events: the sidecar reads Celery's own task events, so the hook sends only what it cannot see, all
with source `celery` and kind `job.annotated` (counted by no metric and no policy):
- `attrs.note = "link"`, once per execution, only when the execution tells something the sidecar
  cannot derive: a correlation ID other than the root_id, a trace that did not start from the
  correlation ID, or model/policy metadata; with input digest and redacted input;
- `attrs.note = "fail_fast"`, when a breaker stopped an execution: breaker key, phase, policy,
  policy version, retry delay.
Plus `collector.gap` when the outbox had to drop events.
"""
from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from typing import Any, Callable, Iterable

from .breakers import BREAKER_BUCKET, BreakerView, BreakerWatch, breaker_key
from .canonical import input_digest
from .context import CORRELATION_BAGGAGE_KEY, METADATA_KEYS, Scope, _pop, _push, current_correlation_id, current_scope, current_trace
from .event import make_event
from .ids import format_traceparent, parse_traceparent, stable_span_id, trace_id_for_correlation
from .outbox import Outbox, Transport
from .redact import Redactor, redact_event
from .transport import HttpTransport, NatsLink, NatsTransport

log = logging.getLogger("warden_celery")

HEADER = "warden"
BREAKER_FAILURE_TYPE = "WardenBreakerOpen"
STAMP_KEYS = ("cid", "tp", "tst") + METADATA_KEYS
MAX_INPUT_BYTES = 8192


class WardenConfigError(ValueError):
    """instrument() was given (or found in the environment) an unusable transport setting."""


class WardenBreakerOpen(Exception):
    """Raised instead of running a task whose Warden breaker is open."""


def read_stamp(value: Any) -> dict[str, str] | None:
    """A `warden` stamp from a header value (dict, or JSON text); None when absent or malformed."""
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict) or not isinstance(value.get("cid"), str) or not value["cid"]:
        return None
    return {k: value[k] for k in STAMP_KEYS if isinstance(value.get(k), str)}


def task_span_id(task_id: str, retries: int) -> str:
    """The span ID of one execution of a Celery task when no OTel SDK made one:
    stableSpanId('celery', 'task', task_id, retries), so the sidecar can rebuild the same span."""
    return stable_span_id("celery", "task", task_id, retries)


class _Unconfigured:
    name = "none"

    def __init__(self) -> None:
        self.dropped = 0

    def emit(self, event: dict[str, Any]) -> None:
        self.dropped += 1

    def stats(self) -> dict[str, Any]:
        return {"transport": "none", "sent": 0, "dropped": self.dropped, "buffered": 0}

    def flush(self, timeout: float = 5.0) -> bool:
        return True

    def close(self, timeout: float = 5.0) -> bool:
        return True


class WardenCelery:
    """The handle instrument() returns."""

    def __init__(self, app: Any, *, emitter: Any, link: NatsLink | None, breakers: BreakerView | None,
                 redactor: Redactor, send_input: bool, breaker_ready_timeout: float) -> None:
        self.app = app
        self.emitter = emitter
        self.link = link
        self.breakers = breakers
        self.redactor = redactor
        self.send_input = send_input
        self.breaker_ready_timeout = breaker_ready_timeout
        self._closed = False

    # -- public ------------------------------------------------------------------------------------

    @property
    def transport(self) -> str:
        return getattr(getattr(self.emitter, "transport", None), "name", None) or getattr(self.emitter, "name", "none")

    def stats(self) -> dict[str, Any]:
        return self.emitter.stats()

    def flush(self, timeout: float = 5.0) -> bool:
        return self.emitter.flush(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Flushes (bounded), stops the breaker watch and the NATS connection."""
        if self._closed:
            return True
        self._closed = True
        ok = self.emitter.close(timeout)
        if isinstance(self.breakers, BreakerWatch):
            self.breakers.close()
        if self.link is not None:
            self.link.close()
        return ok

    def emit(self, event: dict[str, Any]) -> None:
        """Sends an event redacted as the sidecar redacts it (redact_event: every string field, attrs,
        input; join keys such as the correlation ID keep a digest so they still join)."""
        try:
            self.emitter.emit(redact_event(event, self.redactor))
        except Exception:
            pass

    def record_approval(self, *, granted: bool, actor: str, task_id: str | None = None, reason: str | None = None,
                        decision: str | None = None, correlation_id: str | None = None, **metadata: str) -> None:
        """Records a human approval or denial (something no broker sees) as `approval.granted|denied`."""
        try:
            cid = correlation_id or current_correlation_id()
            tp, _ = current_trace()
            p = parse_traceparent(tp)
            r = self.redactor
            self.emit(make_event("approval.granted" if granted else "approval.denied", correlation_id=cid,
                                 trace_id=p[0] if p else (trace_id_for_correlation(cid) if cid else None), span_id=p[1] if p else None,
                                 job_id=task_id, actor=r.redact_text(actor), reason=r.redact_text(reason) if reason else None,
                                 decision=decision or ("approved" if granted else "denied"),
                                 **{k: v for k, v in metadata.items() if k in METADATA_KEYS}))
        except Exception:
            pass

    # -- publish side --------------------------------------------------------------------------------

    def on_publish(self, headers: dict[str, Any] | None) -> None:
        if not isinstance(headers, dict) or "id" not in headers:
            return  # protocol 1 or not a task message
        given = read_stamp(headers.get(HEADER))
        stamp: dict[str, str] = dict(given) if given else {}
        if "cid" not in stamp:
            stamp["cid"] = current_correlation_id() or headers.get("root_id") or headers["id"]
        if "tp" not in stamp:
            incoming = headers.get("traceparent")
            if parse_traceparent(incoming):
                stamp["tp"] = incoming
                if isinstance(headers.get("tracestate"), str):
                    stamp["tst"] = headers["tracestate"]
            else:
                tp, ts = current_trace()
                if tp:
                    stamp["tp"] = tp
                    if ts:
                        stamp["tst"] = ts
        s = current_scope()
        if s is not None:
            for k, v in s.metadata.items():
                stamp.setdefault(k, v)
        headers[HEADER] = stamp
        if "tp" in stamp and not parse_traceparent(headers.get("traceparent")):
            headers["traceparent"] = stamp["tp"]
            if "tst" in stamp:
                headers["tracestate"] = stamp["tst"]

    # -- worker side -----------------------------------------------------------------------------------

    def run(self, task: Any, call: Callable[[], Any], args: tuple, kwargs: dict) -> Any:
        try:
            plan = self._begin(task, args, kwargs)
        except Exception:  # noqa: BLE001 (telemetry broke: run the task untouched)
            log.debug("warden: could not prepare task %s", getattr(task, "name", "?"), exc_info=True)
            plan = None
        if plan is None:
            return call()
        scope, otel_ctx, blocked = plan
        if blocked is not None:
            self._fail_fast(task, scope, blocked)
        token = _push(scope)
        otel_token = None
        if otel_ctx is not None:
            try:
                from opentelemetry import context as otel_context

                otel_token = otel_context.attach(otel_ctx)
            except Exception:
                otel_token = None
        try:
            return call()
        finally:
            if otel_token is not None:
                try:
                    from opentelemetry import context as otel_context

                    otel_context.detach(otel_token)
                except Exception:
                    pass
            _pop(token)

    def _begin(self, task: Any, args: tuple, kwargs: dict) -> tuple[Scope, Any, dict[str, Any] | None] | None:
        req = task.request
        task_id = getattr(req, "id", None)
        if not task_id:
            return None
        stamp = read_stamp(getattr(req, HEADER, None))
        root_id = getattr(req, "root_id", None) or task_id
        cid = stamp["cid"] if stamp else root_id
        retries = int(getattr(req, "retries", 0) or 0)
        incoming_tp = stamp.get("tp") if stamp and parse_traceparent(stamp.get("tp")) else None
        incoming_ts = stamp.get("tst") if incoming_tp else None
        if incoming_tp is None and parse_traceparent(getattr(req, "traceparent", None)):
            incoming_tp = req.traceparent
            incoming_ts = getattr(req, "tracestate", None) if isinstance(getattr(req, "tracestate", None), str) else None
        parent = parse_traceparent(incoming_tp)
        trace_id = parent[0] if parent else trace_id_for_correlation(cid)
        metadata = {k: stamp[k] for k in METADATA_KEYS if stamp and k in stamp}

        # An OTel span already running for this execution (opentelemetry-instrumentation-celery
        # starts one in task_prerun) is the task's span; otherwise the derived one.
        otel_tp, otel_ts = None, None
        recording = False
        try:
            from opentelemetry import trace as otel_trace

            cur = otel_trace.get_current_span()
            sc = cur.get_span_context()
            if sc.is_valid:
                otel_tp = format_traceparent(f"{sc.trace_id:032x}", f"{sc.span_id:016x}", bool(sc.trace_flags & 1))
                otel_ts = sc.trace_state.to_header() or None
                recording = cur.is_recording()
        except Exception:
            pass
        if otel_tp:
            own = parse_traceparent(otel_tp)
            trace_id, span_id = own[0], own[1]  # type: ignore[index]
            scope_tp, scope_ts = otel_tp, otel_ts
        else:
            span_id = task_span_id(task_id, retries)
            scope_tp, scope_ts = format_traceparent(trace_id, span_id, parent[2] & 1 == 1 if parent else True), incoming_ts
        scope = Scope(cid, scope_tp, scope_ts, metadata)
        otel_ctx = _otel_context(cid, trace_id, span_id, parent[2] if parent else 1, scope_ts, keep_span=bool(otel_tp))

        delivery = getattr(req, "delivery_info", None) or {}
        queue = delivery.get("routing_key") if isinstance(delivery, dict) else None
        blocked = None
        if self.breakers is not None and not getattr(req, "is_eager", False):
            keys = [breaker_key("celery", "task", task.name)]
            if queue:
                keys.append(breaker_key("celery", "queue", queue))
            if metadata.get("model"):
                keys.append(breaker_key("any", "model", metadata["model"]))
            st = self.breakers.status(keys)
            if st is not None and st["phase"] != "closed" and not (st["phase"] == "half_open" and random.random() < st["probe_ratio"]):
                blocked = st

        base = dict(correlation_id=cid, trace_id=trace_id, span_id=span_id, queue=queue, job_id=task_id, job_name=task.name,
                    attempt=retries + 1, **metadata)
        attrs = {"root_id": root_id, "parent_id": getattr(req, "parent_id", None), "parent_span_id": parent[1] if parent else None,
                 "in_process_span": recording, "hostname": getattr(req, "hostname", None)}
        scope_info = (base, attrs)
        # Derivable by the sidecar (nothing to send): cid = root_id, trace from the cid, parent span
        # = task_span_id(parent_id, ...) of a parent run by this hook, no metadata, no OTel span.
        external_trace = parent is not None and parent[0] != trace_id_for_correlation(cid)
        if blocked is None and (cid != root_id or external_trace or metadata or otel_tp):
            ev = make_event("job.annotated", **base, attrs={"note": "link", **attrs}, **self._input(args, kwargs))
            self.emit(ev)
        _tls.info = scope_info  # for _fail_fast, on this thread
        return scope, otel_ctx, blocked

    def _input(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        if not self.send_input:
            return {}
        raw = {"args": list(args), "kwargs": dict(kwargs)}
        digest = input_digest(raw)
        red = self.redactor.redact_value(raw)
        try:
            text = json.dumps(red, ensure_ascii=False, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            return {"input_digest": digest, "input": {"$unserializable": str(e)}}
        n = len(text.encode("utf-8", "surrogatepass"))
        if n > MAX_INPUT_BYTES:
            red = {"$truncated": True, "bytes": n, "preview": text[: MAX_INPUT_BYTES // 2]}
        return {"input_digest": digest, "input": red}

    def _fail_fast(self, task: Any, scope: Scope, st: dict[str, Any]) -> None:
        """Records the fail-fast, then raises Retry (after the breaker's delay) or WardenBreakerOpen."""
        message = f"Warden breaker {st['key']} is {st['phase']}: {st['reason']}"
        exc = WardenBreakerOpen(message)
        delay_ms = max(1, st["retry_after_ms"])
        try:
            base, attrs = getattr(_tls, "info", ({}, {}))
            r = self.redactor
            self.emit(make_event("job.annotated", **base, duration_ms=0, error=r.redact_text(message), reason=r.redact_text(st["reason"]), attrs={
                "note": "fail_fast", **attrs, "fail_fast": True, "error_type": BREAKER_FAILURE_TYPE, "breaker_key": st["key"],
                "breaker_phase": st["phase"], "breaker_policy": r.redact_text(st["policy"]),
                "breaker_policy_version": r.redact_text(st["policy_version"]),
                "next_retry_delay_ms": None if st["non_retryable"] else delay_ms}))
        except Exception:
            pass
        if st["non_retryable"]:
            raise exc
        raise task.retry(exc=exc, countdown=delay_ms / 1000)

    # -- worker life cycle -----------------------------------------------------------------------------

    def start_breakers(self) -> None:
        if isinstance(self.breakers, BreakerWatch):
            self.breakers.start()
            if not self.breakers.ready(self.breaker_ready_timeout):
                log.warning("warden: breaker states from NATS KV %s not loaded within %.1fs; enforcing once they arrive",
                            self.breakers.bucket, self.breaker_ready_timeout)


_tls = threading.local()


def _otel_context(cid: str, trace_id: str, span_id: str, flags: int, tracestate: str | None, keep_span: bool) -> Any:
    """An OTel context with the baggage and (unless a real span is active) the task's span as parent."""
    try:
        from opentelemetry import baggage, context as otel_context, trace as otel_trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

        ctx = otel_context.get_current()
        if not keep_span:
            ts = TraceState.from_header([tracestate]) if tracestate else None
            sc = SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(flags & 1), trace_state=ts)
            ctx = otel_trace.set_span_in_context(NonRecordingSpan(sc), ctx)
        return baggage.set_baggage(CORRELATION_BAGGAGE_KEY, cid, ctx)
    except Exception:
        return None


def _env_list(v: str | None) -> list[str]:
    return [u.strip() for u in (v or "").split(",") if u.strip()]


def instrument(app: Any, *, nats_url: str | Iterable[str] | None = None, ingest_url: str | None = None,
               ingest_token: str | None = None, transport: Transport | None = None,
               enforce_breakers: bool | None = None, breaker_bucket: str = BREAKER_BUCKET,
               breaker_view: BreakerView | None = None, breaker_ready_timeout: float = 5.0,
               redaction_paths: Iterable[str] = (), send_input: bool = True, outbox: dict[str, Any] | None = None,
               timeout: float = 5.0, env: dict[str, str] | None = None) -> WardenCelery:
    """Instruments a Celery app (call it where the app is defined, so producers and workers both get it).

    Transport: `nats_url` / WARDEN_NATS_URL (comma-separated servers) for NATS JetStream, else
    `ingest_url` + `ingest_token` / WARDEN_INGEST_URL + WARDEN_INGEST_TOKEN for HTTP ingest, else none
    (headers are still stamped and scopes restored; events are counted as dropped).
    Breakers: enforced when `enforce_breakers` (or WARDEN_ENFORCE_BREAKERS=1) and NATS is configured,
    from KV bucket `breaker_bucket` (WARDEN_BREAKERS); or from `breaker_view` (tests)."""
    from celery import signals

    e = os.environ if env is None else env
    urls = ([nats_url] if isinstance(nats_url, str) else list(nats_url)) if nats_url else _env_list(e.get("WARDEN_NATS_URL"))
    for u in urls:
        if not (u.startswith(("nats://", "tls://", "ws://", "wss://")) and len(u) > 7 and " " not in u):
            raise WardenConfigError(f"nats_url (or WARDEN_NATS_URL) must be a nats:// or tls:// URL, not {u!r}")
    link = NatsLink(urls, timeout) if urls else None
    if transport is None:
        if link is not None:
            transport = NatsTransport(link)
        else:
            url = ingest_url or e.get("WARDEN_INGEST_URL") or None
            if url:
                if not url.startswith(("http://", "https://")):
                    raise WardenConfigError(f"ingest_url (or WARDEN_INGEST_URL) must be the sidecar's http:// or https:// base URL, not {url!r}")
                token = ingest_token or e.get("WARDEN_INGEST_TOKEN") or None
                if not token:
                    raise WardenConfigError('HTTP ingest needs a token with role "ingest": set ingest_token or WARDEN_INGEST_TOKEN')
                transport = HttpTransport(url, token, timeout * 2)
    emitter: Any = Outbox(transport, **(outbox or {})) if transport is not None else _Unconfigured()
    if transport is None:
        log.warning("warden: no transport to the sidecar (WARDEN_NATS_URL, or WARDEN_INGEST_URL + WARDEN_INGEST_TOKEN); "
                    "correlation headers are stamped, events are not sent")
    if enforce_breakers is None:
        enforce_breakers = e.get("WARDEN_ENFORCE_BREAKERS", "").lower() in ("1", "true", "yes")
    breakers: BreakerView | None = breaker_view
    if breakers is None and enforce_breakers:
        if link is None:
            raise WardenConfigError("enforce_breakers needs NATS (nats_url or WARDEN_NATS_URL): breaker states live in NATS KV")
        breakers = BreakerWatch(link, breaker_bucket)
    w = WardenCelery(app, emitter=emitter, link=link, breakers=breakers, redactor=Redactor(redaction_paths),
                     send_input=send_input, breaker_ready_timeout=breaker_ready_timeout)

    def before_publish(sender: Any = None, headers: Any = None, **_: Any) -> None:
        try:
            w.on_publish(headers)
        except Exception:
            log.debug("warden: could not stamp a task message", exc_info=True)

    def patch_all(*_: Any, **__: Any) -> None:
        for t in list(app.tasks.values()):
            _patch_task(w, t)

    def process_init(*_: Any, **__: Any) -> None:
        patch_all()
        w.start_breakers()

    def process_shutdown(*_: Any, **__: Any) -> None:
        w.close(timeout)

    signals.before_task_publish.connect(before_publish, weak=False)
    app.on_after_finalize.connect(patch_all, weak=False)
    signals.worker_init.connect(patch_all, weak=False)
    signals.worker_process_init.connect(process_init, weak=False)
    signals.worker_process_shutdown.connect(process_shutdown, weak=False)
    signals.worker_shutdown.connect(process_shutdown, weak=False)
    # solo/threads pools run tasks in the main process: no worker_process_init there.
    def ready(sender: Any = None, **_: Any) -> None:
        if "prefork" not in type(getattr(sender, "pool", None)).__module__:
            w.start_breakers()

    signals.worker_ready.connect(ready, weak=False)
    if getattr(app, "finalized", False):
        patch_all()
    w._patch_all = patch_all  # type: ignore[attr-defined]
    return w


def _patch_task(w: WardenCelery, task: Any) -> None:
    from celery.app.task import Task

    if task.name.startswith("celery."):
        return
    cls = type(task)
    orig = cls.__call__
    if getattr(orig, "_warden", False):
        return
    base_call = Task.__call__

    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.request.called_directly:
            return orig(self, *args, **kwargs)
        # Task.__call__ would push a second request without the message's fields; run the body as the
        # worker does for a task without a custom __call__.
        call = (lambda: self.run(*args, **kwargs)) if orig is base_call else (lambda: orig(self, *args, **kwargs))
        return w.run(self, call, args, kwargs)

    __call__._warden = True  # type: ignore[attr-defined]
    cls.__call__ = __call__
