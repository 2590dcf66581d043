import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { WorkflowInfo } from '@temporalio/workflow';
import { describe, expect, it } from 'vitest';
import { EventSpanBuilder } from '../../agent/spans.js';
import type { WardenEvent } from '../../core/event.js';
import { wardenActivityInterceptors } from '../../hooks/temporal/index.js';
import { withStamp, workflowRunSpanId } from '../../hooks/temporal/headers.js';
import { workflowRecordToEvent } from '../../hooks/temporal/sinks.js';
import { resolveOptions } from '../../hooks/temporal/options.js';
import type { WorkflowRecord } from '../../hooks/temporal/records.js';
import { CollectingEmitter, headerInjector } from '../harness/temporal/helpers.js';

const TRACE = '5b8aa5a2d2c872e8321cf37308d69df2';
const CLIENT_SPAN = '051581bf3cb55c13';
const WF = { workflowId: 'claim-9', runId: 'run-9' };
const RUN_SPAN = workflowRunSpanId(WF.workflowId, WF.runId);
const info = { ...WF, workflowType: 'claimWorkflow', taskQueue: 'claims', attempt: 1 } as WorkflowInfo;

function record(kind: WorkflowRecord['kind'], ts: number, over: Partial<WorkflowRecord> = {}): WorkflowRecord {
  return {
    kind, seq: ts % 1000, ts, cid: 'wc_9', traceparent: `00-${TRACE}-${CLIENT_SPAN}-01`, span_id: RUN_SPAN, parent_span_id: CLIENT_SPAN,
    model: null, model_version: null, policy: null, policy_version: null, args: [], name: null, message_cid: null, client_recorded: false,
    result: null, error: null, error_type: null, duration_ms: null, continued_as_new: false, ...over,
  };
}

/** Activity events exactly as the interceptor makes them, with no OTel SDK installed (nothing traced in-process). */
async function activityEvents(): Promise<WardenEvent[]> {
  const em = new CollectingEmitter();
  const headers = withStamp({}, { cid: 'wc_9', tp: `00-${TRACE}-${RUN_SPAN}-01` });
  const mk = (attempt: number) => new MockActivityEnvironment({ activityType: 'scoreClaim', activityId: '1', taskQueue: 'claims', workflowType: 'claimWorkflow', workflowExecution: WF, attempt, retryPolicy: { maximumAttempts: 3 } } as never,
    { interceptors: [headerInjector(headers), wardenActivityInterceptors({ emitter: em })], logger: new DefaultLogger('ERROR') });
  await mk(1).run(async () => { throw new Error('flaky'); }).catch(() => undefined);
  await mk(2).run(async () => 'ok');
  return em.events;
}

function builder() {
  const exporter = new InMemorySpanExporter();
  return { exporter, spans: new EventSpanBuilder(new SimpleSpanProcessor(exporter), resourceFromAttributes({ 'service.name': 'warden-test' })) };
}

describe('sidecar spans rebuilt from Temporal events', () => {
  it('a workflow run span (the parent the sandbox handed out), attempt spans under it, the approval under the run: one trace', async () => {
    const r = resolveOptions({});
    const t0 = Date.now() - 5000;
    const events = [
      workflowRecordToEvent(info, record('workflow.started', t0), r)!,
      ...(await activityEvents()),
      workflowRecordToEvent(info, record('signal', t0 + 3000, { name: 'approve', args: [{ actor: 'alice' }] }), r)!,
      workflowRecordToEvent(info, record('workflow.completed', t0 + 4000, { duration_ms: 4000 }), r)!,
    ];
    const { exporter, spans } = builder();
    for (const ev of events) spans.observe(ev, false);
    const out = exporter.getFinishedSpans();
    expect(out.map((s) => s.name).sort()).toEqual(['activity scoreClaim', 'activity scoreClaim', 'approval approve', 'workflow claimWorkflow']);
    for (const s of out) expect(s.spanContext().traceId).toBe(TRACE);
    const run = out.find((s) => s.name === 'workflow claimWorkflow')!;
    expect(run.spanContext().spanId).toBe(RUN_SPAN);
    expect(run.parentSpanContext?.spanId).toBe(CLIENT_SPAN);
    expect(run.attributes['messaging.system']).toBe('temporal');
    expect(run.endTime[0] - run.startTime[0]).toBeGreaterThanOrEqual(3);
    const attempts = out.filter((s) => s.name === 'activity scoreClaim');
    for (const a of attempts) expect(a.parentSpanContext?.spanId).toBe(RUN_SPAN);
    expect(attempts.map((a) => a.attributes['warden.attempt']).sort()).toEqual([1, 2]);
    expect(attempts.find((a) => a.attributes['warden.attempt'] === 1)!.status.code).toBe(2);
    const approval = out.find((s) => s.name === 'approval approve')!;
    expect(approval.parentSpanContext?.spanId).toBe(RUN_SPAN);
    expect(approval.attributes['warden.approval.decision']).toBe('granted');
  });

  it('does not rebuild attempt spans the activity interceptor already made', () => {
    const r = resolveOptions({});
    const { exporter, spans } = builder();
    const ev = { ...workflowRecordToEvent(info, record('workflow.started', Date.now()), r)!, kind: 'activity.completed' as const, activity_type: 'x', span_id: 'aaaaaaaaaaaaaaaa', job_name: null, duration_ms: 5, attrs: { in_process_span: true, parent_span_id: RUN_SPAN } };
    spans.observe(ev, false);
    expect(exporter.getFinishedSpans()).toHaveLength(0);
    spans.observe({ ...ev, attrs: { in_process_span: false, parent_span_id: RUN_SPAN } }, false);
    expect(exporter.getFinishedSpans()).toHaveLength(1);
  });
});
