/**
 * Rebuilds OpenTelemetry spans from events, for jobs the sidecar sees but no in-process hook traced.
 * Spans carry the events' real start and end times and the IDs the events already hold (trace ID
 * from the job's trace context or derived from its correlation ID; span IDs stable per job and
 * attempt), so a rebuilt span and a ledger record point at each other.
 *
 * Per job: one `job <queue>` span from added to terminal, and one `process <queue>` consumer span per
 * attempt as its child (skipped where a wrapped worker already makes attempt spans).
 *
 * Per Temporal workflow run: one `workflow <type>` span (its ID is the one the workflow sandbox handed
 * its activities and children as their parent), one `activity <type>` span per attempt unless the
 * activity interceptor already made it (`attrs.in_process_span`), and a zero-length span per signal
 * or approval, all in the trace the events carry.
 */
import { SpanKind, SpanStatusCode, TraceFlags, type Attributes, type HrTime, type SpanContext } from '@opentelemetry/api';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Resource } from '@opentelemetry/resources';
import type { WardenEvent } from '../core/event.js';
import { stableSpanId } from '../core/ids.js';
import * as sc from '../core/semconv.js';
import { ACTIVITY_ATTEMPT_END_KINDS } from '../core/kinds.js';

/**
 * A job (or run) whose span is still open. One attempt runs at a time, so its start is kept inline;
 * a Map appears only when an attempt starts while an earlier one is still open (its end unseen).
 * Every open job lives until its end is read (seconds, in a backlog), so this is per-job old space.
 */
interface OpenJob { startMs: number; attempt: number | null; attemptStartMs: number; earlier: Map<number, number> | null }

const openJob = (startMs: number): OpenJob => ({ startMs, attempt: null, attemptStartMs: 0, earlier: null });

function attemptStarted(job: OpenJob, attempt: number, ms: number): void {
  if (job.attempt !== null && job.attempt !== attempt) (job.earlier ??= new Map()).set(job.attempt, job.attemptStartMs);
  job.attempt = attempt;
  job.attemptStartMs = ms;
}

/** When the attempt started (undefined if its start was not seen); forgets it. */
function attemptEnded(job: OpenJob, attempt: number): number | undefined {
  if (job.attempt === attempt) { job.attempt = null; return job.attemptStartMs; }
  const ms = job.earlier?.get(attempt);
  job.earlier?.delete(attempt);
  return ms;
}

const SCOPE = { name: 'warden-sidecar', version: '0.1.0' };
const MAX_OPEN_JOBS = 200_000;

const hr = (ms: number): HrTime => [Math.floor(ms / 1000), Math.round((ms % 1000) * 1e6)];

export class EventSpanBuilder {
  private readonly open = new Map<string, OpenJob>();

  constructor(private readonly processor: SpanProcessor, private readonly resource: Resource) {}

  /** `instrumented`: a wrapped worker makes this queue's attempt spans; only the job span is rebuilt. */
  observe(ev: WardenEvent, instrumented: boolean): void {
    if (ev.source === 'temporal') return this.observeTemporal(ev);
    if ((ev.source !== 'bullmq' && ev.source !== 'celery') || !ev.queue || !ev.job_id || !ev.trace_id) return;
    const key = `${ev.queue}\0${ev.job_id}`;
    let job = this.open.get(key);
    if (!job) {
      job = openJob(ev.ts);
      this.open.set(key, job);
      if (this.open.size > MAX_OPEN_JOBS) this.open.delete(this.open.keys().next().value!);
    }
    switch (ev.kind) {
      case 'job.started':
        if (ev.attempt !== null) attemptStarted(job, ev.attempt, ev.ts);
        break;
      case 'job.attempt_failed':
      case 'job.completed':
      case 'job.failed': {
        // Only the events that end something need the job's span ID (one sha256 per job, not per event).
        const jobSpanId = stableSpanId(ev.source, ev.queue, ev.job_id);
        const started = ev.attempt !== null ? attemptEnded(job, ev.attempt) : undefined;
        if (!instrumented && ev.attempt !== null && (started !== undefined || ev.duration_ms !== null)) {
          const startMs = started ?? ev.ts - (ev.duration_ms ?? 0);
          // Celery attempts keep the span ID the worker hook ran them under (the event's span_id).
          const attemptSpanId = ev.source === 'celery' && ev.span_id ? ev.span_id : stableSpanId(ev.source, ev.queue, ev.job_id, ev.attempt);
          this.emit(ev, `process ${ev.queue}`, SpanKind.CONSUMER, attemptSpanId, jobSpanId, startMs, ev.ts, {
            [sc.MESSAGING_OPERATION_TYPE]: 'process',
            [sc.MESSAGING_OPERATION_NAME]: 'process',
            [sc.WARDEN_ATTEMPT]: ev.attempt,
          });
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

  /** Temporal events: keyed by run (workflow) and by activity attempt; IDs come from the events. */
  private observeTemporal(ev: WardenEvent): void {
    if (!ev.trace_id || !ev.span_id || !ev.workflow_id) return;
    const parent = typeof ev.attrs.parent_span_id === 'string' ? ev.attrs.parent_span_id : undefined;
    const runKey = `temporal\0${ev.workflow_id}\0${ev.run_id ?? ''}`;
    const remember = (key: string) => {
      this.open.set(key, openJob(ev.ts));
      if (this.open.size > MAX_OPEN_JOBS) this.open.delete(this.open.keys().next().value!);
    };
    const startOf = (key: string) => {
      const started = this.open.get(key)?.startMs;
      this.open.delete(key);
      return Math.min(started ?? Infinity, ev.ts - (ev.duration_ms ?? 0));
    };
    switch (ev.kind) {
      case 'workflow.started':
        remember(runKey);
        break;
      case 'workflow.completed':
      case 'workflow.failed':
        this.emit(ev, `workflow ${ev.job_name ?? ''}`, SpanKind.INTERNAL, ev.span_id, parent, startOf(runKey), ev.ts, {
          'warden.workflow.outcome': ev.kind === 'workflow.completed' ? (ev.attrs.continued_as_new ? 'continued_as_new' : 'completed') : 'failed',
        });
        break;
      case 'activity.started':
        if (ev.attrs.in_process_span !== true) remember(`${runKey}\0${ev.span_id}`);
        break;
      case 'signal.received':
      case 'approval.granted':
      case 'approval.denied': {
        const name = String(ev.attrs.signal_name ?? '');
        // Workflow-side approvals carry the run's span ID: the approval hangs under the run.
        const own = ev.kind === 'signal.received' ? ev.span_id : stableSpanId('temporal', 'approval', ev.event_id);
        this.emit(ev, ev.kind === 'signal.received' ? `signal ${name}` : `approval ${name}`, SpanKind.INTERNAL, own, ev.kind === 'signal.received' ? parent : ev.span_id, ev.ts, ev.ts, {
          ...(ev.decision ? { 'warden.approval.decision': ev.decision } : {}),
          ...(ev.actor ? { 'warden.approval.actor': ev.actor } : {}),
        });
        break;
      }
      default:
        if (ACTIVITY_ATTEMPT_END_KINDS.has(ev.kind) && ev.attrs.in_process_span !== true) {
          this.emit(ev, `activity ${ev.activity_type ?? ''}`, SpanKind.CONSUMER, ev.span_id, parent, startOf(`${runKey}\0${ev.span_id}`), ev.ts, {
            [sc.MESSAGING_OPERATION_TYPE]: 'process',
            [sc.WARDEN_ATTEMPT]: ev.attempt ?? undefined,
          });
        }
    }
  }

  private emit(ev: WardenEvent, name: string, kind: SpanKind, spanId: string, parentSpanId: string | undefined, startMs: number, endMs: number, extra: Attributes): void {
    const failed = ev.kind === 'job.failed' || ev.kind === 'job.attempt_failed' || ev.kind.endsWith('.failed') || ev.kind === 'activity.attempt_failed';
    const ctx: SpanContext = { traceId: ev.trace_id!, spanId, traceFlags: TraceFlags.SAMPLED, isRemote: false };
    const temporal = ev.source === 'temporal';
    // Assigned, not spread and then pruned with delete: a deleted key turns the object into a slow
    // dictionary, and two spans per job are built here. Same keys, order and values as before.
    const attributes: Attributes = { [sc.MESSAGING_SYSTEM]: ev.source };
    if (ev.queue !== null) attributes[sc.MESSAGING_DESTINATION] = ev.queue;
    attributes[sc.MESSAGING_MESSAGE_ID] = temporal ? (ev.activity_type ? String(ev.attrs.activity_id ?? '') : ev.workflow_id!) : ev.job_id!;
    if (temporal) {
      attributes['temporal.workflow.id'] = ev.workflow_id!;
      if (ev.run_id !== null) attributes['temporal.run.id'] = ev.run_id;
      const type = ev.job_name ?? (typeof ev.attrs.workflow_type === 'string' ? ev.attrs.workflow_type : undefined);
      if (type !== undefined) attributes['temporal.workflow.type'] = type;
    }
    if (ev.activity_type) attributes['temporal.activity.type'] = ev.activity_type;
    if (ev.correlation_id) { attributes[sc.WARDEN_CORRELATION_ID] = ev.correlation_id; attributes[sc.MESSAGING_CONVERSATION_ID] = ev.correlation_id; }
    if (ev.job_name) attributes[sc.WARDEN_JOB_NAME] = ev.job_name;
    if (ev.model) attributes[sc.WARDEN_MODEL] = ev.model;
    if (ev.model_version) attributes[sc.WARDEN_MODEL_VERSION] = ev.model_version;
    if (ev.policy_version) attributes[sc.WARDEN_POLICY_VERSION] = ev.policy_version;
    attributes['warden.rebuilt'] = true;
    for (const k in extra) if (extra[k] !== undefined) attributes[k] = extra[k];
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
