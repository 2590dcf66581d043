/**
 * Activity interceptor: one span per attempt (tracer `warden/temporal`), activity.* events with
 * attempt, duration, input digest and redacted input, and breaker enforcement: while the breaker of
 * the activity type, its task queue or its model is open, an attempt fails fast with an
 * ApplicationFailure whose retry delay follows the breaker (or non-retryably when the policy says
 * retrying is pointless), and an event says why. Telemetry never throws into the activity.
 */
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Context as OtelContext, type Span } from '@opentelemetry/api';
import type { Context as ActivityContext, Info } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { ActivityExecuteInput, ActivityInboundCallsInterceptor, ActivityInterceptorsFactory, Next } from '@temporalio/worker';
import { breakerKey, type BreakerStatus } from '../../core/breakers.js';
import { currentCorrelationId, withCorrelation } from '../correlation.js';
import { makeEvent, type EventAttrs, type EventKind, type WardenEvent } from '../../core/event.js';
import { newEventId, stableSpanId, traceIdForCorrelation } from '../../core/ids.js';
import { normalizeInput } from '../../core/input.js';
import * as sc from '../../core/semconv.js';
import { incomingTrace, parseTraceparent, readStamp, workflowRunSpanId, type WardenTemporalStamp } from './headers.js';
import { errorText, metadataFrom, resultAttrs, type Resolved } from './options.js';

export const TRACER_NAME = 'warden/temporal';
export const BREAKER_FAILURE_TYPE = 'WardenBreakerOpen';

const tracer = () => trace.getTracer(TRACER_NAME, '0.1.0');

export function activityInterceptorsFor(r: Resolved): ActivityInterceptorsFactory {
  return (ctx) => ({ inbound: new WardenActivityInbound(ctx, r) });
}

type Base = Omit<Parameters<typeof makeEvent>[0], 'kind'>;

/** One attempt's telemetry: everything decided before the activity runs. */
class Attempt {
  readonly started = performance.now();
  /** The attempt's first event, complete; later events copy it (cheaper than building each anew). */
  private readonly first: WardenEvent;

  constructor(readonly r: Resolved, readonly info: Info, readonly span: Span, readonly ctx: OtelContext, readonly cid: string, base: Base) {
    this.first = makeEvent({ ...base, kind: 'activity.started' });
  }

  event(kind: EventKind, extra: Partial<WardenEvent> = {}, attrs: EventAttrs = {}): void {
    if (kind === 'activity.started') { this.r.emit(this.first); return; }
    const ts = Date.now();
    this.r.emit({ ...this.first, event_id: newEventId(ts), ts, ...extra, kind, attrs: { ...this.first.attrs, ...attrs } });
  }

  elapsed(): number {
    return Math.max(0, performance.now() - this.started);
  }

  completed(result: unknown): void {
    this.span.setStatus({ code: SpanStatusCode.OK });
    this.span.end();
    this.event('activity.completed', { duration_ms: this.elapsed() }, resultAttrs(result, this.r));
  }

  failed(err: unknown): void {
    const message = errorText(this.r, String((err as Error)?.message ?? err));
    const final = isFinal(err, this.info);
    this.span.recordException({ name: (err as Error)?.name, message });
    this.span.setStatus({ code: SpanStatusCode.ERROR, message });
    this.span.end();
    const type = err instanceof ApplicationFailure ? err.type : (err as Error)?.name;
    this.event(final ? 'activity.failed' : 'activity.attempt_failed', { duration_ms: this.elapsed(), error: message }, type ? { error_type: type } : {});
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
  const parsed = parseTraceparent(carrier?.traceparent);
  if (carrier && parsed) {
    const extracted = propagation.extract(ROOT_CONTEXT, carrier);
    if (trace.isSpanContextValid(trace.getSpanContext(extracted) ?? { traceId: '', spanId: '', traceFlags: 0 })) return extracted;
    // No propagator registered (no OTel SDK in the app): the span context still carries on.
    return trace.setSpanContext(ROOT_CONTEXT, { traceId: parsed.traceId, spanId: parsed.spanId, traceFlags: parsed.flags & 1, isRemote: true });
  }
  const wf = info.workflowExecution;
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: traceIdForCorrelation(cid),
    spanId: psid ?? (wf ? workflowRunSpanId(wf.workflowId, wf.runId) : stableSpanId('temporal', 'activity', info.activityId)),
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
  });
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
      result = await context.with(a.ctx, () => withCorrelation(a.cid, () => next(input)));
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
    const stamp = readStamp(input.headers);
    const wf = info.workflowExecution;
    const cid = stamp?.cid ?? currentCorrelationId() ?? `temporal:${wf?.workflowId ?? info.activityId}`;
    const parent = parentContext(input.headers, stamp, cid, info);
    const parentSpan = trace.getSpanContext(parent)!;
    const meta = metadataFrom(stamp, input.args, r);
    const span = tracer().startSpan(`activity ${info.activityType}`, {
      kind: SpanKind.CONSUMER,
      attributes: {
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
        ...(meta.model ? { [sc.WARDEN_MODEL]: meta.model } : {}),
        ...(meta.model_version ? { [sc.WARDEN_MODEL_VERSION]: meta.model_version } : {}),
        ...(meta.policy ? { [sc.WARDEN_POLICY]: meta.policy } : {}),
        ...(meta.policy_version ? { [sc.WARDEN_POLICY_VERSION]: meta.policy_version } : {}),
      },
    }, parent);
    const recording = span.isRecording();
    const spanCtx = span.spanContext();
    // Without an SDK the span is a no-op carrying its parent's IDs: describe the attempt with a stable
    // span ID instead, and let the sidecar rebuild it.
    const spanId = recording ? spanCtx.spanId : stableSpanId('temporal', 'activity', wf?.workflowId ?? '', wf?.runId ?? '', info.activityId, info.attempt);
    const norm = normalizeInput(input.args, r.redactor, r.opts.inputLimits);
    if (norm.input_digest) span.setAttribute(sc.WARDEN_INPUT_DIGEST, norm.input_digest);
    const base: Base = {
      source: 'temporal', correlation_id: cid, trace_id: parentSpan.traceId, span_id: spanId,
      queue: info.taskQueue, job_name: null, workflow_id: wf?.workflowId ?? null, run_id: wf?.runId ?? null,
      activity_type: info.activityType, attempt: info.attempt, input: norm.input, input_digest: norm.input_digest, ...meta,
      attrs: {
        workflow_type: info.workflowType ?? null, activity_id: info.activityId, parent_span_id: parentSpan.spanId,
        in_process_span: recording, ...(info.isLocal ? { local: true } : {}),
      },
    };
    // Work started inside the attempt (a BullMQ job, a child) hangs under the attempt's span: without
    // an SDK that is the stable span ID the sidecar rebuilds, not the no-op span's (its parent's) IDs.
    const inner = recording ? trace.setSpan(parent, span) : trace.setSpanContext(parent, { traceId: parentSpan.traceId, spanId, traceFlags: parentSpan.traceFlags, isRemote: false });
    const attempt = new Attempt(r, info, span, inner, cid, base);

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
    const keys = [breakerKey({ system: 'temporal', kind: 'activity', name: info.activityType }), breakerKey({ system: 'temporal', kind: 'task_queue', name: info.taskQueue })];
    if (model) keys.push(breakerKey({ system: 'any', kind: 'model', name: model }));
    const status = view.status(keys);
    if (!status || status.phase === 'closed') return undefined;
    if (status.phase === 'half_open' && Math.random() < status.probe_ratio) return undefined;
    return status;
  }
}
