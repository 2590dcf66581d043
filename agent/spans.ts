/**
 * Rebuilds OpenTelemetry spans from events, for jobs the sidecar sees but no in-process hook traced.
 * Spans carry the events' real start and end times and the IDs the events already hold (trace ID
 * from the job's trace context or derived from its correlation ID; span IDs stable per job and
 * attempt), so a rebuilt span and a ledger record point at each other.
 *
 * Per job: one `job <queue>` span from added to terminal, and one `process <queue>` consumer span per
 * attempt as its child (skipped where a wrapped worker already makes attempt spans).
 */
import { SpanKind, SpanStatusCode, TraceFlags, type Attributes, type HrTime, type SpanContext } from '@opentelemetry/api';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Resource } from '@opentelemetry/resources';
import type { WardenEvent } from '../collectors/event.js';
import { stableSpanId } from '../collectors/ids.js';
import * as sc from '../collectors/semconv.js';

interface OpenJob { startMs: number; attempts: Map<number, number> }

const SCOPE = { name: 'warden-sidecar', version: '0.1.0' };
const MAX_OPEN_JOBS = 200_000;

const hr = (ms: number): HrTime => [Math.floor(ms / 1000), Math.round((ms % 1000) * 1e6)];

export class EventSpanBuilder {
  private readonly open = new Map<string, OpenJob>();

  constructor(private readonly processor: SpanProcessor, private readonly resource: Resource) {}

  /** `instrumented`: a wrapped worker makes this queue's attempt spans; only the job span is rebuilt. */
  observe(ev: WardenEvent, instrumented: boolean): void {
    if (ev.source !== 'bullmq' || !ev.queue || !ev.job_id || !ev.trace_id) return;
    const key = `${ev.queue}\0${ev.job_id}`;
    let job = this.open.get(key);
    if (!job) {
      job = { startMs: ev.ts, attempts: new Map() };
      this.open.set(key, job);
      if (this.open.size > MAX_OPEN_JOBS) this.open.delete(this.open.keys().next().value!);
    }
    const jobSpanId = stableSpanId('bullmq', ev.queue, ev.job_id);
    switch (ev.kind) {
      case 'job.started':
        if (ev.attempt !== null) job.attempts.set(ev.attempt, ev.ts);
        break;
      case 'job.attempt_failed':
      case 'job.completed':
      case 'job.failed': {
        const started = ev.attempt !== null ? job.attempts.get(ev.attempt) : undefined;
        if (!instrumented && ev.attempt !== null && (started !== undefined || ev.duration_ms !== null)) {
          const startMs = started ?? ev.ts - (ev.duration_ms ?? 0);
          this.emit(ev, `process ${ev.queue}`, SpanKind.CONSUMER, stableSpanId('bullmq', ev.queue, ev.job_id, ev.attempt), jobSpanId, startMs, ev.ts, {
            [sc.MESSAGING_OPERATION_TYPE]: 'process',
            [sc.MESSAGING_OPERATION_NAME]: 'process',
            [sc.WARDEN_ATTEMPT]: ev.attempt,
          });
          job.attempts.delete(ev.attempt);
        }
        if (ev.kind !== 'job.attempt_failed') {
          this.open.delete(key);
          const parent = typeof ev.attrs.parent_span_id === 'string' ? ev.attrs.parent_span_id : undefined;
          this.emit(ev, `job ${ev.queue}`, SpanKind.INTERNAL, jobSpanId, parent, Math.min(job.startMs, ev.ts - (ev.duration_ms ?? 0)), ev.ts, {
            'warden.job.outcome': ev.kind === 'job.completed' ? 'completed' : 'failed',
            [sc.WARDEN_ATTEMPT]: ev.attempt ?? undefined,
          });
        }
        break;
      }
      case 'job.removed':
        this.open.delete(key);
        break;
    }
  }

  private emit(ev: WardenEvent, name: string, kind: SpanKind, spanId: string, parentSpanId: string | undefined, startMs: number, endMs: number, extra: Attributes): void {
    const failed = ev.kind === 'job.failed' || ev.kind === 'job.attempt_failed';
    const ctx: SpanContext = { traceId: ev.trace_id!, spanId, traceFlags: TraceFlags.SAMPLED, isRemote: false };
    const attributes: Attributes = {
      [sc.MESSAGING_SYSTEM]: 'bullmq',
      [sc.MESSAGING_DESTINATION]: ev.queue!,
      [sc.MESSAGING_MESSAGE_ID]: ev.job_id!,
      ...(ev.correlation_id ? { [sc.WARDEN_CORRELATION_ID]: ev.correlation_id, [sc.MESSAGING_CONVERSATION_ID]: ev.correlation_id } : {}),
      ...(ev.job_name ? { [sc.WARDEN_JOB_NAME]: ev.job_name } : {}),
      ...(ev.model ? { [sc.WARDEN_MODEL]: ev.model } : {}),
      ...(ev.model_version ? { [sc.WARDEN_MODEL_VERSION]: ev.model_version } : {}),
      ...(ev.policy_version ? { [sc.WARDEN_POLICY_VERSION]: ev.policy_version } : {}),
      'warden.rebuilt': true,
      ...extra,
    };
    for (const k of Object.keys(attributes)) if (attributes[k] === undefined) delete attributes[k];
    const start = hr(startMs);
    const end = hr(Math.max(endMs, startMs));
    const durMs = Math.max(0, endMs - startMs);
    const span: ReadableSpan = {
      name,
      kind,
      spanContext: () => ctx,
      parentSpanContext: parentSpanId ? { traceId: ev.trace_id!, spanId: parentSpanId, traceFlags: TraceFlags.SAMPLED, isRemote: true } : undefined,
      startTime: start,
      endTime: end,
      duration: hr(durMs),
      status: failed ? { code: SpanStatusCode.ERROR, message: ev.error ?? undefined } : { code: SpanStatusCode.UNSET },
      attributes,
      links: [],
      events: failed && ev.error ? [{ name: 'exception', time: end, attributes: { 'exception.message': ev.error } }] : [],
      ended: true,
      resource: this.resource,
      instrumentationScope: SCOPE,
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0,
    };
    this.processor.onEnd(span);
  }
}
