/**
 * The worker side of the workflow interceptors: records leave the sandbox through a sink and become
 * WardenEvents here (ULIDs, input digests and redaction need crypto, which the sandbox lacks). The
 * sink is not called during replay, but a real worker still hands some records over again (see
 * recordEventId): each record has one event ID, so the ledger keeps it once.
 */
import type { InjectedSinks } from '@temporalio/worker';
import type { WorkflowInfo } from '@temporalio/workflow';
import { makeEvent, type EventAttrs, type WardenEvent } from '../../core/event.js';
import { ulid } from 'ulid';
import { sha256Hex } from '../../core/hash.js';
import { traceIdForCorrelation } from '../../core/ids.js';
import { normalizeInput } from '../../core/input.js';
import { parseTraceparent } from './headers.js';
import { errorText, resultAttrs, scalarText, type ApprovalDecision, type Resolved } from './options.js';
import { WARDEN_SINK, type WardenWorkflowSinks, type WorkflowRecord } from './records.js';

/** Sinks to pass to `Worker.create({ sinks })`; `wardenWorker()` includes them. */
export function wardenSinksFor(r: Resolved): InjectedSinks<WardenWorkflowSinks> {
  return {
    [WARDEN_SINK]: {
      record: {
        fn: (info: WorkflowInfo, rec: WorkflowRecord) => {
          try {
            const ev = workflowRecordToEvent(info, rec, r);
            if (ev) r.emit(ev);
          } catch { /* a malformed record is dropped, never thrown into the worker */ }
        },
        callDuringReplay: false,
      },
    },
  };
}

/**
 * A ULID named by the record alone: its time part is the run's start (the WorkflowExecutionStarted
 * event's time, the same on every replay) plus the record's position, its 80 random bits come from
 * sha256(workflow, run, seq). A record re-sent keeps its event ID, so the duplicate is dropped
 * downstream. Re-sends happen on a real worker: measured against a real server with
 * `maxCachedWorkflows: 0`, a signal's record was handed to the sink again with every later workflow
 * task, each time at that task's workflow time (so `rec.ts` cannot name it), and a task retried after
 * a worker crash re-sends what the lost task sent. (`runStartTime`, the first activation's time, is
 * not used: measured to differ between replays of one history.)
 */
export function recordEventId(info: WorkflowInfo, rec: WorkflowRecord): string {
  // A rejected update has no place in the replayed sequence: its update ID names it.
  const name = rec.rejected ? `update\0${rec.update_id ?? ''}` : String(rec.seq);
  const hex = sha256Hex(`warden.temporal.record\0${info.workflowId}\0${info.runId}\0${name}`);
  const start = info.startTime instanceof Date ? info.startTime.getTime() : NaN;
  const time = Number.isFinite(start) && start > 0 ? start + (rec.rejected ? 0 : rec.seq) : rec.ts;
  let i = 0;
  // ulid draws one value per character (16): each takes one byte of the hash.
  return ulid(time, () => parseInt(hex.slice(2 * (i % 32), 2 * (i++ % 32) + 2), 16) / 256);
}

/** One sandbox record as a WardenEvent; null for a signal a Warden client already recorded. */
export function workflowRecordToEvent(info: WorkflowInfo, rec: WorkflowRecord, r: Resolved): WardenEvent | null {
  const attrs: EventAttrs = rec.rejected ? { workflow_type: info.workflowType } : { workflow_type: info.workflowType, record_seq: rec.seq };
  if (rec.parent_span_id) attrs.parent_span_id = rec.parent_span_id;
  if (info.parent) attrs.parent_workflow_id = info.parent.workflowId;
  const base = {
    source: 'temporal' as const, ts: rec.ts, event_id: recordEventId(info, rec), correlation_id: rec.cid,
    trace_id: parseTraceparent(rec.traceparent)?.traceId ?? traceIdForCorrelation(rec.cid), span_id: rec.span_id,
    queue: info.taskQueue, job_name: info.workflowType, workflow_id: info.workflowId, run_id: info.runId, attempt: info.attempt,
    model: rec.model, model_version: rec.model_version, policy: rec.policy, policy_version: rec.policy_version,
  };
  switch (rec.kind) {
    case 'workflow.started': {
      const input = normalizeInput(rec.args, r.redactor, r.opts.inputLimits);
      return makeEvent({ ...base, kind: 'workflow.started', input: input.input, input_digest: input.input_digest, attrs });
    }
    case 'workflow.completed':
      if (rec.continued_as_new) attrs.continued_as_new = true;
      return makeEvent({ ...base, kind: 'workflow.completed', duration_ms: rec.duration_ms, attrs: { ...attrs, ...resultAttrs(rec.result, r) } });
    case 'workflow.failed':
      if (rec.error_type) attrs.error_type = rec.error_type;
      return makeEvent({ ...base, kind: 'workflow.failed', duration_ms: rec.duration_ms, error: errorText(r, rec.error ?? ''), attrs });
    case 'signal':
    case 'update': {
      const name = rec.name ?? '';
      attrs.signal_name = r.redactor.redactText(name);
      attrs.message_type = rec.kind;
      if (rec.message_cid) attrs.message_correlation_id = rec.message_cid;
      if (rec.update_id) attrs.update_id = r.redactor.redactText(rec.update_id);
      const input = normalizeInput(rec.args, r.redactor, r.opts.inputLimits);
      if (rec.rejected) {
        // Refused by the workflow's validator: not an approval (nobody decided), and the client's own
        // record (if any) cannot know why. Recorded whether or not a Warden client sent it.
        attrs.update_outcome = 'rejected';
        attrs.rejected_by = 'validator';
        if (rec.error_type) attrs.error_type = rec.error_type;
        return makeEvent({ ...base, kind: 'signal.received', error: errorText(r, rec.error ?? ''), input: input.input, input_digest: input.input_digest, attrs });
      }
      const configured = r.approvals.get(name);
      if (configured) {
        const payload = (Array.isArray(rec.args) ? rec.args[0] : undefined) as Record<string, unknown> | undefined;
        const p = payload && typeof payload === 'object' ? payload : {};
        const decision: ApprovalDecision = typeof p.approved === 'boolean' ? (p.approved ? 'granted' : 'denied') : configured;
        const actor = scalarText(p.actor ?? p.user ?? p.by);
        const reason = scalarText(p.reason ?? p.comment);
        attrs.subject = r.redactor.redactText(scalarText(p.subject) ?? `${info.workflowType}:${info.workflowId}`);
        return makeEvent({
          ...base, kind: decision === 'granted' ? 'approval.granted' : 'approval.denied', decision,
          actor: actor === undefined ? null : r.redactor.redactText(actor), reason: reason === undefined ? null : r.redactor.redactText(reason),
          input: input.input, input_digest: input.input_digest, attrs,
        });
      }
      if (rec.client_recorded) return null;
      return makeEvent({ ...base, kind: 'signal.received', input: input.input, input_digest: input.input_digest, attrs });
    }
    default:
      return null;
  }
}
