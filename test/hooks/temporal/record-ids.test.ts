/**
 * Sink record IDs: a record re-sent by a later workflow task (measured on a real server with
 * `maxCachedWorkflows: 0`: a signal's record came again with every later task, at that task's time)
 * keeps its event ID; a validator's refusal is named by its update ID and takes no place in the
 * replayed sequence.
 */
import type { WorkflowInfo } from '@temporalio/workflow';
import { describe, expect, it } from 'vitest';
import { resolveOptions } from '../../../hooks/temporal/options.js';
import type { WorkflowRecord } from '../../../hooks/temporal/records.js';
import { recordEventId, workflowRecordToEvent } from '../../../hooks/temporal/sinks.js';

const info = { workflowId: 'order-1', runId: 'run-1', workflowType: 'orderWorkflow', taskQueue: 'orders', attempt: 1, startTime: new Date(1_800_000_000_000) } as unknown as WorkflowInfo;
const rec = (over: Partial<WorkflowRecord>): WorkflowRecord => ({
  kind: 'signal', seq: 1, ts: 1_800_000_005_000, cid: 'wc_X', traceparent: null, span_id: '0123456789abcdef', parent_span_id: null,
  model: null, model_version: null, policy: null, policy_version: null, args: [{ actor: 'alice' }], name: 'approve', message_cid: null,
  client_recorded: false, result: null, error: null, error_type: null, duration_ms: null, continued_as_new: false, ...over,
});

describe('workflow record event IDs', () => {
  it('the same record re-sent at a later workflow time keeps its ID; another position or run gets another', () => {
    const first = recordEventId(info, rec({}));
    expect(recordEventId(info, rec({ ts: 1_800_000_009_999 }))).toBe(first);
    expect(recordEventId(info, rec({ seq: 2 }))).not.toBe(first);
    expect(recordEventId({ ...info, runId: 'run-2' }, rec({}))).not.toBe(first);
    // Records of a run sort by their position.
    expect(recordEventId(info, rec({ seq: 0 })) < first).toBe(true);
  });

  it('a refused update is named by its update ID, carries the validator error and no record_seq', () => {
    const r = resolveOptions({});
    const refused = rec({ kind: 'update', name: 'approveLimit', update_id: 'u-1', rejected: true, error: 'limit over cap', error_type: 'Error' });
    const ev = workflowRecordToEvent(info, refused, r)!;
    expect(ev).toMatchObject({ kind: 'signal.received', error: 'limit over cap' });
    expect(ev.attrs).toMatchObject({ update_id: 'u-1', update_outcome: 'rejected', rejected_by: 'validator', message_type: 'update' });
    expect(ev.attrs.record_seq).toBeUndefined();
    expect(recordEventId(info, { ...refused, seq: 7 })).toBe(ev.event_id);
    expect(recordEventId(info, { ...refused, update_id: 'u-2' })).not.toBe(ev.event_id);
    // The accepted update of an approval name is an approval, with its update ID.
    const accepted = workflowRecordToEvent(info, rec({ kind: 'update', name: 'approve', update_id: 'u-3' }), r)!;
    expect(accepted).toMatchObject({ kind: 'approval.granted', actor: 'alice' });
    expect(accepted.attrs).toMatchObject({ update_id: 'u-3', record_seq: 1 });
  });
});
