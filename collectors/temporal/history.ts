/**
 * One closed run's history as WardenEvents, in the shapes the hooks produce (hooks/temporal/sinks.ts,
 * activity.ts): its `workflow.started`, its terminal record (`workflow.completed|failed`), and each
 * activity's final outcome (`activity.completed|failed`, attempt = ActivityTaskStarted.attempt). Every
 * event is marked `attrs.from_history` and has an event ID derived from the source identity
 * (namespace, workflow ID, run ID, history event ID), so a rescan makes the same IDs. Pure: no I/O.
 *
 * What history cannot give: per-attempt records of retried activities (history keeps one
 * ActivityTaskStarted per activity, for the last attempt, and the last failure), signals, approvals,
 * rejected updates and local activities (markers); result-derived attrs (output paths, served model)
 * need the hooks' options.
 */
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { makeEvent, type EventAttrs, type WardenEvent } from '../../core/event.js';
import { derivedEventId, stableSpanId, traceIdForCorrelation } from '../../core/ids.js';
import { normalizeInput, type InputLimits } from '../../core/input.js';
import type { Redactor } from '../../core/redact.js';
import { stampFromValue, workflowRunSpanId, type WardenTemporalStamp } from '../../core/temporal-stamp.js';
import { parseTraceparent } from '../../core/traceparent.js';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
type Failure = temporal.api.failure.v1.IFailure | null | undefined;

/** The header a Warden client or workflow stamps on a start (hooks/temporal/headers.ts WARDEN_HEADER). */
export const WARDEN_HEADER = 'warden';

/** Error texts are capped as the hooks cap them (hooks/temporal/options.ts MAX_ERROR_CHARS). */
const MAX_ERROR_CHARS = 4096;

export interface RunIdentity {
  namespace: string;
  workflowId: string;
  runId: string;
}

export interface HistoryMapping {
  redactor: Redactor;
  inputLimits: InputLimits;
}

/** `{seconds, nanos}` (seconds a Long or number) as epoch ms; null when absent. */
export function timestampMs(t: { seconds?: unknown; nanos?: number | null } | null | undefined): number | null {
  if (!t) return null;
  const s = t.seconds as { toNumber?: () => number } | number | string | null | undefined;
  const seconds = typeof s === 'number' ? s : typeof s === 'string' ? Number(s) : s?.toNumber?.() ?? 0;
  return seconds * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
}

/**
 * A ULID named by the history event it was rebuilt from: the event's time, then 80 bits of
 * sha256(namespace, workflow, run, history event id, what). Rebuilt again after a crash, it is the
 * same ID, so the sidecar's ingest dedupe drops it.
 */
export function historyEventId(run: RunIdentity, eventId: number | string, what: string, ts: number): string {
  return derivedEventId(ts, 'warden.temporal.history', run.namespace, run.workflowId, run.runId, eventId, what);
}

function decodePayloads(payloads: Payload[] | null | undefined): { ok: true; values: unknown[] } | { ok: false } {
  try {
    return { ok: true, values: (payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p)) };
  } catch {
    return { ok: false }; // an encrypted or custom-encoded payload: no input in the record
  }
}

function failureText(f: Failure): { message: string; type: string | null } {
  if (!f) return { message: '', type: null };
  const type = f.applicationFailureInfo?.type || (f.timeoutFailureInfo ? 'TimeoutFailure' : f.canceledFailureInfo ? 'CancelledFailure' : f.terminatedFailureInfo ? 'TerminatedFailure' : null);
  // An activity failure wraps the real cause; the hooks record the activity's own message.
  if (f.activityFailureInfo && f.cause) return failureText(f.cause);
  return { message: f.message ?? '', type };
}

function errorText(r: Redactor, message: string): string {
  const text = r.redactText(message);
  return text.length <= MAX_ERROR_CHARS ? text : `${text.slice(0, MAX_ERROR_CHARS)}… (${text.length - MAX_ERROR_CHARS} more characters)`;
}

function eventNum(e: HistoryEvent): number {
  const id = e.eventId as unknown as { toNumber?: () => number } | number | string | null | undefined;
  return typeof id === 'number' ? id : typeof id === 'string' ? Number(id) : id?.toNumber?.() ?? 0;
}

/**
 * The records one closed run's history proves. `events` is the complete history, in order. Returns an
 * empty list for a history without a start event (not a run's history).
 */
export function eventsFromHistory(run: RunIdentity, events: HistoryEvent[], m: HistoryMapping): WardenEvent[] {
  const start = events.find((e) => e.workflowExecutionStartedEventAttributes);
  const sa = start?.workflowExecutionStartedEventAttributes;
  if (!start || !sa) return [];
  const startMs = timestampMs(start.eventTime) ?? 0;

  let stamp: WardenTemporalStamp | undefined;
  const header = sa.header?.fields?.[WARDEN_HEADER] as Payload | undefined;
  if (header) {
    try { stamp = stampFromValue(defaultPayloadConverter.fromPayload(header)); } catch { stamp = undefined; }
  }
  const cid = stamp?.cid ?? `temporal:${run.workflowId}`;
  const tp = stamp?.tp ? parseTraceparent(stamp.tp) : null;
  const traceId = tp?.traceId ?? traceIdForCorrelation(cid);
  const parentSpanId = tp?.spanId ?? stamp?.psid ?? null;
  const runSpan = workflowRunSpanId(run.workflowId, run.runId);
  const workflowType = sa.workflowType?.name ?? null;
  const taskQueue = sa.taskQueue?.name ?? null;
  const r = m.redactor;
  const base = {
    source: 'temporal' as const, correlation_id: cid, trace_id: traceId, queue: taskQueue, workflow_id: run.workflowId, run_id: run.runId,
    model: stamp?.model ?? null, model_version: stamp?.model_version ?? null, policy: stamp?.policy ?? null, policy_version: stamp?.policy_version ?? null,
  };
  const runAttrs = (): EventAttrs => {
    const a: EventAttrs = { from_history: true, namespace: run.namespace, history_event_id: 0 };
    if (workflowType) a.workflow_type = workflowType;
    if (parentSpanId) a.parent_span_id = parentSpanId;
    if (sa.parentWorkflowExecution?.workflowId) a.parent_workflow_id = sa.parentWorkflowExecution.workflowId;
    return a;
  };
  const out: WardenEvent[] = [];

  // The start.
  const args = decodePayloads(sa.input?.payloads as Payload[] | undefined);
  const input = args.ok ? normalizeInput(args.values, r, m.inputLimits) : { input: null, input_digest: null };
  out.push(makeEvent({
    ...base, kind: 'workflow.started', ts: startMs, event_id: historyEventId(run, eventNum(start), 'workflow.started', startMs),
    span_id: runSpan, job_name: workflowType, attempt: sa.attempt ?? 1, input: input.input, input_digest: input.input_digest,
    attrs: { ...runAttrs(), history_event_id: eventNum(start), ...(args.ok ? {} : { input_undecodable: true }) },
  }));

  // Activities: scheduled -> (last) started -> outcome.
  const scheduled = new Map<number, HistoryEvent>();
  const started = new Map<number, HistoryEvent>();
  for (const e of events) {
    const id = eventNum(e);
    if (e.activityTaskScheduledEventAttributes) { scheduled.set(id, e); continue; }
    if (e.activityTaskStartedEventAttributes) { started.set(eventNum({ eventId: e.activityTaskStartedEventAttributes.scheduledEventId } as HistoryEvent), e); continue; }
    const done = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes ?? e.activityTaskTimedOutEventAttributes ?? e.activityTaskCanceledEventAttributes;
    if (!done) continue;
    const schedId = eventNum({ eventId: done.scheduledEventId } as HistoryEvent);
    const sched = scheduled.get(schedId);
    const st = started.get(schedId);
    const schedAttrs = sched?.activityTaskScheduledEventAttributes;
    if (!schedAttrs) continue;
    const ts = timestampMs(e.eventTime) ?? startMs;
    const stMs = timestampMs(st?.eventTime);
    const attempt = st?.activityTaskStartedEventAttributes?.attempt ?? 1;
    const activityId = schedAttrs.activityId ?? String(schedId);
    const activityInput = decodePayloads(schedAttrs.input?.payloads as Payload[] | undefined);
    const ain = activityInput.ok ? normalizeInput(activityInput.values, r, m.inputLimits) : { input: null, input_digest: null };
    const attrs: EventAttrs = {
      from_history: true, namespace: run.namespace, history_event_id: id, activity_id: activityId,
      parent_span_id: runSpan, in_process_span: false,
      ...(workflowType ? { workflow_type: workflowType } : {}),
    };
    let kind: 'activity.completed' | 'activity.failed' = 'activity.failed';
    let error: string | null = null;
    if (e.activityTaskCompletedEventAttributes) {
      kind = 'activity.completed';
    } else {
      const f = e.activityTaskFailedEventAttributes?.failure ?? e.activityTaskTimedOutEventAttributes?.failure ?? null;
      const ft = failureText(f);
      error = errorText(r, ft.message || (e.activityTaskTimedOutEventAttributes ? 'activity timed out' : e.activityTaskCanceledEventAttributes ? 'activity canceled' : 'activity failed'));
      const type = ft.type ?? (e.activityTaskTimedOutEventAttributes ? 'TimeoutFailure' : e.activityTaskCanceledEventAttributes ? 'CancelledFailure' : null);
      if (type) attrs.error_type = type;
      const retry = e.activityTaskFailedEventAttributes?.retryState;
      if (retry !== undefined && retry !== null) attrs.retry_state = retry;
    }
    out.push(makeEvent({
      ...base, kind, ts, event_id: historyEventId(run, id, kind, ts),
      span_id: stableSpanId('temporal', 'activity', run.workflowId, run.runId, activityId, attempt),
      activity_type: schedAttrs.activityType?.name ?? null, attempt, duration_ms: stMs === null ? null : Math.max(0, ts - stMs),
      input: ain.input, input_digest: ain.input_digest, error, attrs,
    }));
  }

  // The end.
  const end = events[events.length - 1];
  const endMs = timestampMs(end?.eventTime) ?? startMs;
  const endId = end ? eventNum(end) : 0;
  const terminal = (kind: 'workflow.completed' | 'workflow.failed', extra: { error?: string; attrs?: EventAttrs }) => {
    out.push(makeEvent({
      ...base, kind, ts: endMs, event_id: historyEventId(run, endId, kind, endMs), span_id: runSpan, job_name: workflowType,
      attempt: sa.attempt ?? 1, duration_ms: Math.max(0, endMs - startMs), error: extra.error ?? null,
      attrs: { ...runAttrs(), history_event_id: endId, ...extra.attrs },
    }));
  };
  if (end?.workflowExecutionCompletedEventAttributes) {
    terminal('workflow.completed', { attrs: { close_status: 'completed' } });
  } else if (end?.workflowExecutionContinuedAsNewEventAttributes) {
    terminal('workflow.completed', { attrs: { close_status: 'continued_as_new', continued_as_new: true } });
  } else if (end?.workflowExecutionFailedEventAttributes) {
    const ft = failureText(end.workflowExecutionFailedEventAttributes.failure);
    terminal('workflow.failed', { error: errorText(r, ft.message), attrs: { close_status: 'failed', ...(ft.type ? { error_type: ft.type } : {}) } });
  } else if (end?.workflowExecutionTimedOutEventAttributes) {
    terminal('workflow.failed', { error: 'workflow timed out', attrs: { close_status: 'timed_out', error_type: 'TimeoutFailure' } });
  } else if (end?.workflowExecutionTerminatedEventAttributes) {
    const reason = end.workflowExecutionTerminatedEventAttributes.reason ?? '';
    terminal('workflow.failed', { error: errorText(r, `terminated${reason ? `: ${reason}` : ''}`), attrs: { close_status: 'terminated', error_type: 'TerminatedFailure' } });
  } else if (end?.workflowExecutionCanceledEventAttributes) {
    terminal('workflow.failed', { error: 'workflow canceled', attrs: { close_status: 'canceled', error_type: 'CancelledFailure' } });
  }
  return out;
}
