import { fileURLToPath } from 'node:url';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { WorkflowInfo } from '@temporalio/workflow';
import { beforeAll, describe, expect, it } from 'vitest';
import { WardenEventSchema } from '../../../core/event.js';
import { newEventId, traceIdForCorrelation } from '../../../core/ids.js';
import { WARDEN_WORKFLOW_MODULE, wardenWorker } from '../../../hooks/temporal/index.js';
import { readStamp, readTracerData, withStamp, withTracerData, workflowRunSpanId } from '../../../hooks/temporal/headers.js';
import { workflowRecordToEvent } from '../../../hooks/temporal/sinks.js';
import { resolveOptions } from '../../../hooks/temporal/options.js';
import type { WorkflowRecord } from '../../../hooks/temporal/records.js';
import { CollectingEmitter } from '../../harness/temporal/helpers.js';
import { HistoryBuilder } from '../../harness/temporal/history.js';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
const WORKFLOWS = here('../../harness/temporal/workflows.ts');
const PROBE = here('../../harness/temporal/header-probe.ts');

const TRACE = '0af7651916cd43dd8448eb211c80319c';
const CLIENT_SPAN = 'b7ad6b7169203331';
const RUN = '6a1f0c55-0000-4000-8000-00000000c1a1';
const CHILD_RUN = '6a1f0c55-0000-4000-8000-00000000f4a0';
const WF_ID = 'claim-C-7';
const claim = { id: 'C-7', contact: 'jane@example.com' };
const approval = { actor: 'alice@ops', reason: 'documents verified', subject: 'payout C-7' };

/** What a Warden client stamps on start (it recorded workflow.started itself: rec=1). */
const clientHeader = withStamp({}, { cid: 'wc_BULLMQ_JOB_42', tp: `00-${TRACE}-${CLIENT_SPAN}-01`, model: 'claims-llm', model_version: '2024-06', rec: 1 });
const approverHeader = withStamp({}, { cid: 'wc_APPROVER_UI', rec: 1 });

function claimHistory(opts: { header?: Record<string, Payload>; signalFirst?: boolean } = {}) {
  const h = new HistoryBuilder().started('claimWorkflow', [claim], {
    runId: RUN, header: opts.header, signalsFirst: opts.signalFirst ? [{ name: 'approve', args: [approval], header: approverHeader }] : undefined,
  });
  h.activity('1', 'scoreClaim', { score: 0.82 }).child(`fraud-${claim.id}`, 'fraudCheck', CHILD_RUN, [claim], 'clean');
  if (!opts.signalFirst) h.signal('approve', [approval], approverHeader);
  return h.activity('2', 'payClaim', 'paid-C-7').completed({ score: 0.82, fraud: 'clean', paid: 'paid-C-7' });
}

interface Captured { records: { info: WorkflowInfo; rec: WorkflowRecord }[]; headers: { command: string; target: string; headers: Record<string, Payload> }[] }

/** Sinks called during replay too: they count what the interceptors hand out, once per record. */
function countingSinks(c: Captured) {
  return {
    warden: { record: { fn: (info: WorkflowInfo, rec: WorkflowRecord) => { c.records.push({ info, rec }); }, callDuringReplay: true } },
    probe: { headers: { fn: (_i: WorkflowInfo, command: string, target: string, headers: Record<string, Payload>) => { c.headers.push({ command, target, headers }); }, callDuringReplay: true } },
  };
}

let instrumented: WorkflowBundleWithSourceMap;
let plain: WorkflowBundleWithSourceMap;
let meddling: WorkflowBundleWithSourceMap;
/** Built from dist/ (what `warden/temporal/workflow` resolves to once published); global setup builds it. */
let published: WorkflowBundleWithSourceMap;
let bundleMs = 0;

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const t = performance.now();
  // One bundle per configuration, reused by every replay in this file (bundling is the slow part).
  [instrumented, plain, meddling, published] = await Promise.all([
    bundleWorkflowCode({ workflowsPath: WORKFLOWS, workflowInterceptorModules: [WARDEN_WORKFLOW_MODULE, PROBE], logger: new DefaultLogger('WARN') }),
    bundleWorkflowCode({ workflowsPath: WORKFLOWS, workflowInterceptorModules: [PROBE], logger: new DefaultLogger('WARN') }),
    bundleWorkflowCode({ workflowsPath: WORKFLOWS, workflowInterceptorModules: [here('./meddling-interceptor.ts')], logger: new DefaultLogger('WARN') }),
    bundleWorkflowCode({ workflowsPath: WORKFLOWS, workflowInterceptorModules: [here('../../../dist/hooks/temporal/workflow.js'), PROBE], logger: new DefaultLogger('WARN') }),
  ]);
  bundleMs = performance.now() - t;
  console.log(`bundled four workflow bundles in ${Math.round(bundleMs)} ms`);
});

async function replay(bundle: WorkflowBundleWithSourceMap, history: ReturnType<typeof claimHistory>, workflowId = WF_ID, sinks?: object): Promise<Captured> {
  const c: Captured = { records: [], headers: [] };
  await Worker.runReplayHistory({ workflowBundle: bundle, sinks: (sinks ?? countingSinks(c)) as never }, history, workflowId);
  return c;
}

describe('warden/temporal workflow interceptors under replay of built histories', () => {
  it('the same history replays with and without the interceptors (no nondeterminism), issuing the same commands', async () => {
    const without = await replay(plain, claimHistory({ header: clientHeader }));
    const withW = await replay(instrumented, claimHistory({ header: clientHeader }));
    expect(without.records).toHaveLength(0);
    expect(withW.headers.map((h) => `${h.command}:${h.target}`)).toEqual(without.headers.map((h) => `${h.command}:${h.target}`));
    expect(withW.headers.map((h) => `${h.command}:${h.target}`)).toEqual(['activity:scoreClaim', 'child:fraudCheck', 'activity:payClaim']);
    expect(bundleMs).toBeLessThan(45_000);
  });

  it('the replay check is real: an interceptor that adds a timer is caught as nondeterministic on the same history', async () => {
    await expect(replay(meddling, claimHistory({ header: clientHeader }))).rejects.toThrow(/[Nn]ondetermin/);
  });

  it('records each thing once: the approval signal and the outcome (the client recorded the start)', async () => {
    const c = await replay(instrumented, claimHistory({ header: clientHeader }));
    expect(c.records.map((r) => r.rec.kind)).toEqual(['signal', 'workflow.completed']);
    expect(c.records.map((r) => r.rec.seq)).toEqual([0, 1]);
    const runSpan = workflowRunSpanId(WF_ID, RUN);
    for (const { rec, info } of c.records) {
      expect(info.workflowId).toBe(WF_ID);
      expect(rec).toMatchObject({ cid: 'wc_BULLMQ_JOB_42', span_id: runSpan, parent_span_id: CLIENT_SPAN, model: 'claims-llm', model_version: '2024-06' });
    }
    expect(c.records[0].rec).toMatchObject({ name: 'approve', args: [approval], client_recorded: true, message_cid: 'wc_APPROVER_UI' });
    expect(c.records[1].rec.result).toEqual({ score: 0.82, fraud: 'clean', paid: 'paid-C-7' });
    expect(c.records[1].rec.duration_ms).toBeGreaterThan(0);

    // The worker sink turns them into events: an approval with actor, reason, subject, and the outcome.
    const em = new CollectingEmitter();
    const r = resolveOptions({ emitter: em, resultPaths: { score: 'score' } });
    const events = c.records.map(({ info, rec }) => workflowRecordToEvent(info, rec, r)!);
    expect(events.map((e) => e.kind)).toEqual(['approval.granted', 'workflow.completed']);
    const [granted, done] = events;
    expect(granted).toMatchObject({
      source: 'temporal', correlation_id: 'wc_BULLMQ_JOB_42', trace_id: TRACE, span_id: runSpan, queue: c.records[0].info.taskQueue, job_name: 'claimWorkflow',
      workflow_id: WF_ID, run_id: RUN, decision: 'granted', actor: 'alice@ops', reason: 'documents verified',
    });
    expect(granted.attrs).toMatchObject({ subject: 'payout C-7', signal_name: 'approve', message_correlation_id: 'wc_APPROVER_UI', parent_span_id: CLIENT_SPAN });
    expect(done.attrs['output.score']).toBe(0.82);
    expect(done.duration_ms).toBeGreaterThan(0);
  });

  it('headers reach every activity and the child: one correlation ID, the run span as parent, _tracer-data for the official interceptors', async () => {
    const c = await replay(instrumented, claimHistory({ header: clientHeader }));
    const runSpan = workflowRunSpanId(WF_ID, RUN);
    expect(c.headers).toHaveLength(3);
    for (const h of c.headers) {
      const stamp = readStamp(h.headers)!;
      expect(stamp).toMatchObject({ cid: 'wc_BULLMQ_JOB_42', tp: `00-${TRACE}-${runSpan}-01`, model: 'claims-llm', model_version: '2024-06' });
      expect(stamp.rec).toBeUndefined(); // children record their own start
      expect(readTracerData(h.headers)?.traceparent).toBe(`00-${TRACE}-${runSpan}-01`);
    }
  });

  it('without a Warden start header: the run records its own start, correlation from the workflow ID, trace derived from it', async () => {
    const c = await replay(instrumented, claimHistory());
    expect(c.records.map((r) => r.rec.kind)).toEqual(['workflow.started', 'signal', 'workflow.completed']);
    const cid = `temporal:${WF_ID}`;
    expect(c.records[0].rec).toMatchObject({ cid, traceparent: null, parent_span_id: null, args: [claim] });
    const runSpan = workflowRunSpanId(WF_ID, RUN);
    for (const h of c.headers) expect(readStamp(h.headers)).toMatchObject({ cid, psid: runSpan });
    const r = resolveOptions({});
    const started = workflowRecordToEvent(c.records[0].info, c.records[0].rec, r)!;
    expect(started.trace_id).toBe(traceIdForCorrelation(cid));
    expect(started.input_digest).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(started.input)).not.toContain('jane@example.com');
  });

  it('a run started by a client with only the official interceptors continues its _tracer-data trace', async () => {
    const officialOnly = withTracerData({}, { traceparent: `00-${TRACE}-${CLIENT_SPAN}-01` });
    const c = await replay(instrumented, claimHistory({ header: officialOnly }));
    expect(c.records.map((r) => r.rec.kind)).toEqual(['workflow.started', 'signal', 'workflow.completed']);
    expect(c.records[0].rec).toMatchObject({ cid: `temporal:${WF_ID}`, traceparent: `00-${TRACE}-${CLIENT_SPAN}-01`, parent_span_id: CLIENT_SPAN });
    const runSpan = workflowRunSpanId(WF_ID, RUN);
    for (const h of c.headers) expect(readTracerData(h.headers)?.traceparent).toBe(`00-${TRACE}-${runSpan}-01`);
  });

  it('an approval sent as an update is recorded once, through handleUpdate', async () => {
    const history = new HistoryBuilder().started('limitWorkflow', [500], { runId: RUN, header: clientHeader })
      .update('upd-1', 'approve', [{ actor: 'carol', reason: 'within budget' }], 'accepted', approverHeader).completed(500);
    const c = await replay(instrumented, history, 'limit-1');
    expect(c.records.map((r) => r.rec.kind)).toEqual(['update', 'workflow.completed']);
    const ev = workflowRecordToEvent(c.records[0].info, c.records[0].rec, resolveOptions({}))!;
    expect(ev).toMatchObject({ kind: 'approval.granted', actor: 'carol', reason: 'within budget', correlation_id: 'wc_BULLMQ_JOB_42' });
    expect(ev.attrs).toMatchObject({ message_type: 'update', signal_name: 'approve' });
    // Same history without Warden: replays too.
    await replay(plain, history, 'limit-1');
  });

  it('a signal delivered with the start (signalWithStart) is recorded once, with the run correlation ID', async () => {
    const c = await replay(instrumented, claimHistory({ header: clientHeader, signalFirst: true }));
    expect(c.records.map((r) => r.rec.kind)).toEqual(['signal', 'workflow.completed']);
    expect(c.records[0].rec.cid).toBe('wc_BULLMQ_JOB_42');
  });

  it('the production sink emits nothing while replaying', async () => {
    const em = new CollectingEmitter();
    const parts = wardenWorker({ emitter: em });
    const c: Captured = { records: [], headers: [] };
    await replay(instrumented, claimHistory({ header: clientHeader }), WF_ID, { ...countingSinks(c), ...parts.sinks });
    expect(c.headers).toHaveLength(3); // the replay really ran the workflow
    expect(em.events).toHaveLength(0);
  });

  it('a child run started by an instrumented parent records its start under the parent run span (module bundled from dist/)', async () => {
    const parentSpan = workflowRunSpanId(WF_ID, RUN);
    const fromParent = withStamp({}, { cid: 'wc_BULLMQ_JOB_42', tp: `00-${TRACE}-${parentSpan}-01` });
    const history = new HistoryBuilder().started('fraudCheck', [claim], { runId: CHILD_RUN, header: fromParent, parent: { workflowId: WF_ID, runId: RUN } }).completed('clean');
    const c = await replay(published, history, `fraud-${claim.id}`);
    expect(c.records.map((r) => r.rec.kind)).toEqual(['workflow.started', 'workflow.completed']);
    const ev = workflowRecordToEvent(c.records[0].info, c.records[0].rec, resolveOptions({}))!;
    expect(ev).toMatchObject({ kind: 'workflow.started', correlation_id: 'wc_BULLMQ_JOB_42', trace_id: TRACE, job_name: 'fraudCheck', span_id: workflowRunSpanId(`fraud-${claim.id}`, CHILD_RUN) });
    expect(ev.attrs).toMatchObject({ parent_span_id: parentSpan, parent_workflow_id: WF_ID });
  });

  it('continue-as-new hands the correlation ID and the original parent to the next run, and records the run as continued', async () => {
    const history = new HistoryBuilder().started('batchWorkflow', [0], { runId: RUN, header: clientHeader }).continuedAsNew('batchWorkflow', [1], CHILD_RUN);
    const c = await replay(instrumented, history, 'batch-1');
    expect(c.records.map((r) => r.rec.kind)).toEqual(['workflow.completed']);
    expect(c.records[0].rec.continued_as_new).toBe(true);
    const next = c.headers.find((h) => h.command === 'continueAsNew')!;
    expect(readStamp(next.headers)).toMatchObject({ cid: 'wc_BULLMQ_JOB_42', tp: `00-${TRACE}-${CLIENT_SPAN}-01` });
  });

  it('a reject signal becomes approval.denied; a payload with approved:false overrides the name', () => {
    const r = resolveOptions({ approvals: ['approve', 'reject'] });
    const info = { workflowId: WF_ID, runId: RUN, workflowType: 'claimWorkflow', taskQueue: 'claims', attempt: 1 } as WorkflowInfo;
    const base: WorkflowRecord = {
      kind: 'signal', seq: 3, ts: Date.now(), cid: 'wc_X', traceparent: null, span_id: workflowRunSpanId(WF_ID, RUN), parent_span_id: null,
      model: null, model_version: null, policy: null, policy_version: null, args: [{ actor: 'bob', reason: 'missing receipt' }], name: 'reject',
      message_cid: null, client_recorded: true, result: null, error: null, error_type: null, duration_ms: null, continued_as_new: false,
    };
    const denied = workflowRecordToEvent(info, base, r)!;
    expect(denied).toMatchObject({ kind: 'approval.denied', decision: 'denied', actor: 'bob', reason: 'missing receipt' });
    expect(denied.attrs.subject).toBe(`claimWorkflow:${WF_ID}`);
    expect(workflowRecordToEvent(info, { ...base, name: 'approve', args: [{ approved: false, actor: 'bob' }] }, r)!.kind).toBe('approval.denied');
    // A record sent again by a replay of the same history keeps its event ID; another record of the run does not.
    expect(() => WardenEventSchema.parse(denied)).not.toThrow();
    expect(workflowRecordToEvent(info, base, r)!.event_id).toBe(denied.event_id);
    expect(denied.attrs.record_seq).toBe(3); // with workflow_id and run_id: which record of the run this is
    expect(workflowRecordToEvent(info, { ...base, seq: 4 }, r)!.event_id).not.toBe(denied.event_id);
    expect(denied.event_id.slice(0, 10)).toBe(newEventId(base.ts).slice(0, 10)); // time-ordered like any ULID
    // Not an approval and already recorded by the sending client: nothing more.
    expect(workflowRecordToEvent(info, { ...base, name: 'note' }, r)).toBeNull();
    expect(workflowRecordToEvent(info, { ...base, name: 'note', client_recorded: false }, r)!.kind).toBe('signal.received');
  });
});
