/**
 * Activity interceptor: one span per attempt (tracer `warden/temporal`), activity.* events with
 * attempt, duration, input digest and redacted input, and breaker enforcement: while the breaker of
 * the activity type, its task queue or its model is open, an attempt fails fast with an
 * ApplicationFailure whose retry delay follows the breaker (or non-retryably when the policy says
 * retrying is pointless), and an event says why. Telemetry never throws into the activity.
 */
import { context, propagation, ROOT_CONTEXT, type Attributes, SpanKind, SpanStatusCode, trace, TraceFlags, type Context as OtelContext, type Span } from '@opentelemetry/api';
import type { Context as ActivityContext, Info } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, ActivityInterceptorsFactory, Next } from '@temporalio/worker';
import { breakerKey, type BreakerStatus } from '../../core/breakers.js';
import { currentCorrelationId, runWithCorrelation } from '../correlation.js';
import { remoteParent } from '../trace-context.js';
import { type EventAttrs, type EventKind, type WardenEvent } from '../../core/event.js';
import { newEventId, stableSpanId, traceIdForCorrelation } from '../../core/ids.js';
import { normalizeInput } from '../../core/input.js';
import * as sc from '../../core/semconv.js';
import { incomingTrace, parseTraceparent, readStamp, WARDEN_HEADER, workflowRunSpanId, type WardenTemporalStamp } from './headers.js';
import { stampFromValue } from '../../core/temporal-stamp.js';
import { errorText, metadataFrom, resultAttrs, type Resolved } from './options.js';

export const TRACER_NAME = 'warden/temporal';
export const BREAKER_FAILURE_TYPE = 'WardenBreakerOpen';

// Once per provider (as hooks/bullmq does): getTracer through the API's proxy is measurable per call.
let cachedTracer: { provider: unknown; tracer: ReturnType<typeof trace.getTracer> } | null = null;
const tracer = () => {
  const provider = trace.getTracerProvider();
  if (cachedTracer?.provider !== provider) cachedTracer = { provider, tracer: provider.getTracer(TRACER_NAME, '0.1.0') };
  return cachedTracer.tracer;
};

export function activityInterceptorsFor(r: Resolved): ActivityInterceptorsFactory {
  return (ctx) => ({ inbound: new WardenActivityInbound(ctx, r) });
}

/** One attempt's telemetry: everything decided before the activity runs. */
class Attempt {
  readonly started = performance.now();

  /** `first` is the attempt's first event, complete; later events copy it (cheaper than building each anew). */
  constructor(readonly r: Resolved, readonly info: Info, readonly span: Span, readonly ctx: OtelContext, readonly cid: string, private readonly first: WardenEvent) {}

  event(kind: EventKind, extra: Partial<Pick<WardenEvent, 'duration_ms' | 'error' | 'reason'>> = {}, attrs: EventAttrs | null = null): void {
    if (kind === 'activity.started') { this.r.emit(this.first); return; }
    const ts = Date.now();
    const f = this.first;
    this.r.emit({
      ...f, event_id: newEventId(ts), ts, kind,
      duration_ms: extra.duration_ms ?? null, error: extra.error ?? null, reason: extra.reason ?? f.reason,
      attrs: attrs ? { ...f.attrs, ...attrs } : { ...f.attrs },
    });
  }

  elapsed(): number {
    return Math.max(0, performance.now() - this.started);
  }

  completed(result: unknown): void {
    this.span.setStatus({ code: SpanStatusCode.OK });
    this.span.end();
    const attrs = this.r.opts.resultPaths || this.r.opts.servedModelPaths ? resultAttrs(result, this.r) : null;
    this.event('activity.completed', { duration_ms: this.elapsed() }, attrs);
  }

  failed(err: unknown): void {
    const message = errorText(this.r, String((err as Error)?.message ?? err));
    const final = isFinal(err, this.info);
    this.span.recordException({ name: (err as Error)?.name, message });
    this.span.setStatus({ code: SpanStatusCode.ERROR, message });
    this.span.end();
    const type = err instanceof ApplicationFailure ? err.type : (err as Error)?.name;
    this.event(final ? 'activity.failed' : 'activity.attempt_failed', { duration_ms: this.elapsed(), error: message }, type ? { error_type: type } : null);
  }
}

/** Whether Temporal will not retry after this error (so the attempt ends the activity). */
function isFinal(err: unknown, info: Info): boolean {
  if (err instanceof ApplicationFailure && err.nonRetryable) return true;
  if (err instanceof CancelledFailure) return true;
  const max = info.retryPolicy?.maximumAttempts;
  if (max && max > 0 && info.attempt >= max) return true;
  const type = err instanceof ApplicationFailure ? err.type : (err as Error)?.name;
  return !!type && !!info.retryPolicy?.nonRetryableErrorTypes?.includes(type);
}

function parentContext(headers: ActivityExecuteInput['headers'], stamp: WardenTemporalStamp | undefined, cid: string, info: Info): OtelContext {
  const carrier = incomingTrace(headers, stamp);
  const psid = stamp?.psid;
  if (carrier) {
    // A bare traceparent (Warden's stamp, or the official interceptors' header under W3C): parsed once,
    // here; a tracestate needs the propagator's TraceState.
    const direct = carrier.tracestate === undefined ? remoteParent(ROOT_CONTEXT, carrier.traceparent) : undefined;
    if (direct) return direct;
    const extracted = propagation.extract(ROOT_CONTEXT, carrier);
    const found = trace.getSpanContext(extracted);
    if (found && trace.isSpanContextValid(found)) return extracted;
    // No propagator registered (no OTel SDK in the app): the span context still carries on.
    // (incomingTrace returns only a carrier whose traceparent parses; parsed here, off the hot path.)
    const parsed = parseTraceparent(carrier.traceparent);
    if (parsed) return trace.setSpanContext(ROOT_CONTEXT, { traceId: parsed.traceId, spanId: parsed.spanId, traceFlags: parsed.flags & 1, isRemote: true });
  }
  const wf = info.workflowExecution;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: traceIdForCorrelation(cid),
    spanId: psid ?? (wf ? workflowRunSpanId(wf.workflowId, wf.runId) : stableSpanId('temporal', 'activity', info.activityId)),
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
  });
}

const JSON_PLAIN = Buffer.from('json/plain');

/**
 * Decoded stamps by their payload text: every attempt of a workflow run carries the same stamp, so
 * most attempts skip the parse. Frozen (shared between attempts); bounded in count and text size.
 */
const stampCache = new Map<string, Readonly<WardenTemporalStamp>>();
const MAX_CACHED_STAMPS = 1024;
const MAX_CACHED_STAMP_CHARS = 1024;

/**
 * readStamp for the worker side: a `json/plain` payload (what every Warden hook writes) is decoded
 * with Buffer instead of the payload converter's sandbox-safe JavaScript UTF-8 decoder; anything
 * else goes through readStamp. Same result either way; never throws.
 */
function readStampFast(headers: ActivityExecuteInput['headers']): Readonly<WardenTemporalStamp> | undefined {
  const p = headers?.[WARDEN_HEADER];
  const enc = p?.metadata?.encoding;
  const data = p?.data;
  if (!enc || !data || !JSON_PLAIN.equals(enc)) return readStamp(headers);
  try {
    const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
    const cached = stampCache.get(text);
    if (cached) return cached;
    const stamp = stampFromValue(JSON.parse(text));
    if (stamp && text.length <= MAX_CACHED_STAMP_CHARS) {
      if (stampCache.size >= MAX_CACHED_STAMPS) stampCache.clear();
      stampCache.set(text, Object.freeze(stamp));
    }
    return stamp;
  } catch {
    return undefined;
  }
}

/**
 * The breaker keys an attempt checks, remembered per activity type, task queue and model (a worker
 * runs a handful of each; bounded so a stream of distinct names cannot grow it).
 */
const breakerKeyCache = new Map<string, readonly string[]>();
const MAX_BREAKER_KEY_SETS = 1024;
function breakerKeysFor(activityType: string, taskQueue: string, model: string | null): readonly string[] {
  const id = `${activityType}\0${taskQueue}\0${model ?? ''}`;
  let keys = breakerKeyCache.get(id);
  if (keys) return keys;
  const k = [breakerKey({ system: 'temporal', kind: 'activity', name: activityType }), breakerKey({ system: 'temporal', kind: 'task_queue', name: taskQueue })];
  if (model) k.push(breakerKey({ system: 'any', kind: 'model', name: model }));
  keys = k;
  if (breakerKeyCache.size >= MAX_BREAKER_KEY_SETS) breakerKeyCache.clear();
  breakerKeyCache.set(id, keys);
  return keys;
}

class WardenActivityInbound implements ActivityInboundCallsInterceptor {
  constructor(private readonly ctx: ActivityContext, private readonly r: Resolved) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    let attempt: Attempt | undefined;
    let failFast: ApplicationFailure | undefined;
    try {
      ({ attempt, failFast } = this.begin(input));
    } catch {
      attempt = undefined; // telemetry broke: run the activity untraced
    }
    if (failFast) throw failFast;
    if (!attempt) return next(input);
    const a = attempt;
    let result: unknown;
    try {
      result = await runWithCorrelation(a.ctx, a.cid, () => next(input));
    } catch (err) {
      try { a.failed(err); } catch { /* never mask the activity's error */ }
      throw err;
    }
    try { a.completed(result); } catch { /* the result stands */ }
    return result;
  }

  private begin(input: ActivityExecuteInput): { attempt?: Attempt; failFast?: ApplicationFailure } {
    const info = this.ctx.info;
    const r = this.r;
    const stamp = readStampFast(input.headers);
    const wf = info.workflowExecution;
    const cid = stamp?.cid ?? currentCorrelationId() ?? `temporal:${wf?.workflowId ?? info.activityId}`;
    const parent = parentContext(input.headers, stamp, cid, info);
    const parentSpan = trace.getSpanContext(parent)!;
    const meta = metadataFrom(stamp, input.args, r);
    const spanAttrs: Attributes = {
      [sc.MESSAGING_SYSTEM]: 'temporal',
      [sc.MESSAGING_DESTINATION]: info.taskQueue,
      [sc.MESSAGING_OPERATION_TYPE]: 'process',
      [sc.MESSAGING_OPERATION_NAME]: 'activity',
      [sc.MESSAGING_MESSAGE_ID]: info.activityId,
      [sc.MESSAGING_CONVERSATION_ID]: cid,
      [sc.WARDEN_CORRELATION_ID]: cid,
      [sc.WARDEN_JOB_NAME]: info.activityType,
      [sc.WARDEN_ATTEMPT]: info.attempt,
      'temporal.workflow.id': wf?.workflowId ?? '',
      'temporal.workflow.type': info.workflowType ?? '',
    };
    if (meta.model) spanAttrs[sc.WARDEN_MODEL] = meta.model;
    if (meta.model_version) spanAttrs[sc.WARDEN_MODEL_VERSION] = meta.model_version;
    if (meta.policy) spanAttrs[sc.WARDEN_POLICY] = meta.policy;
    if (meta.policy_version) spanAttrs[sc.WARDEN_POLICY_VERSION] = meta.policy_version;
    const norm = normalizeInput(input.args, r.redactor, r.opts.inputLimits);
    if (norm.input_digest) spanAttrs[sc.WARDEN_INPUT_DIGEST] = norm.input_digest;
    const span = tracer().startSpan(`activity ${info.activityType}`, { kind: SpanKind.CONSUMER, attributes: spanAttrs }, parent);
    const recording = span.isRecording();
    const spanCtx = span.spanContext();
    // Without an SDK the span is a no-op carrying its parent's IDs: describe the attempt with a stable
    // span ID instead, and let the sidecar rebuild it.
    const spanId = recording ? spanCtx.spanId : stableSpanId('temporal', 'activity', wf?.workflowId ?? '', wf?.runId ?? '', info.activityId, info.attempt);
    const wid = wf?.workflowId ?? null;
    const attrs: EventAttrs = { workflow_type: info.workflowType ?? null, activity_id: info.activityId, parent_span_id: parentSpan.spanId, in_process_span: recording };
    if (info.isLocal) attrs.local = true;
    const ts = Date.now();
    // The attempt's first event as one literal (every field of the one event type; see core/event.ts makeEvent).
    const first: WardenEvent = {
      event_id: newEventId(ts), ts, kind: 'activity.started', source: 'temporal',
      correlation_id: cid, trace_id: parentSpan.traceId, span_id: spanId, queue: info.taskQueue, job_id: null, job_name: null,
      workflow_id: wid, run_id: wf?.runId ?? null, activity_type: info.activityType, attempt: info.attempt, duration_ms: null,
      input_digest: norm.input_digest, input: norm.input,
      model: meta.model, model_version: meta.model_version, policy: meta.policy, policy_version: meta.policy_version,
      actor: null, decision: null, reason: null, error: null, attrs,
    };
    // Work started inside the attempt (a BullMQ job, a child) hangs under the attempt's span: without
    // an SDK that is the stable span ID the sidecar rebuilds, not the no-op span's (its parent's) IDs.
    const inner = recording ? trace.setSpan(parent, span) : trace.setSpanContext(parent, { traceId: parentSpan.traceId, spanId, traceFlags: parentSpan.traceFlags, isRemote: false });
    const attempt = new Attempt(r, info, span, inner, cid, first);

    const breaker = this.breakerFor(info, meta.model);
    if (breaker) {
      const failure = ApplicationFailure.create({
        message: `Warden breaker ${breaker.key} is ${breaker.phase}: ${breaker.reason}`,
        type: BREAKER_FAILURE_TYPE,
        nonRetryable: breaker.non_retryable,
        ...(breaker.non_retryable ? {} : { nextRetryDelay: Math.max(1, breaker.retry_after_ms) }),
      });
      span.setAttribute('warden.breaker.key', breaker.key);
      span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message });
      span.end();
      attempt.event(breaker.non_retryable || isFinal(failure, info) ? 'activity.failed' : 'activity.attempt_failed', {
        duration_ms: 0, error: errorText(r, failure.message), reason: r.redactor.redactText(breaker.reason),
      }, {
        fail_fast: true, error_type: BREAKER_FAILURE_TYPE, breaker_key: breaker.key, breaker_phase: breaker.phase,
        breaker_policy: breaker.policy, breaker_policy_version: breaker.policy_version,
        next_retry_delay_ms: breaker.non_retryable ? null : Math.max(1, breaker.retry_after_ms),
      });
      return { failFast: failure };
    }
    attempt.event('activity.started');
    return { attempt };
  }

  /** The breaker that stops this attempt, if any (half-open lets a share of attempts through as probes). */
  private breakerFor(info: Info, model: string | null): BreakerStatus | undefined {
    const view = this.r.opts.breakers;
    if (!view) return undefined;
    const keys = breakerKeysFor(info.activityType, info.taskQueue, model);
    const status = view.status(keys.slice()); // a copy: a view must not be able to change the cached set
    if (!status || status.phase === 'closed') return undefined;
    if (status.phase === 'half_open' && Math.random() < status.probe_ratio) return undefined;
    return status;
  }
}
