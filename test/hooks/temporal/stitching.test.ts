/**
 * Stitching: a BullMQ job (real Redis) whose processor starts a Temporal workflow and queues an
 * approval job, whose processor sends the approval signal. The requests the Temporal client encodes
 * become the history the workflow replays; the headers the workflow hands to its activities and its
 * child run those. Every record and span must share one correlation ID and one trace. (The same
 * scenario through the real sidecar, NATS and OTLP: test/e2e/stitching-sidecar.test.ts.)
 */
import { Client } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { WorkflowInfo } from '@temporalio/workflow';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../../core/event.js';
import { wardenActivityInterceptors, wardenClientInterceptors } from '../../../hooks/temporal/index.js';
import { readStamp } from '../../../hooks/temporal/headers.js';
import { workflowRecordToEvent } from '../../../hooks/temporal/sinks.js';
import { resolveOptions } from '../../../hooks/temporal/options.js';
import type { WorkflowRecord } from '../../../hooks/temporal/records.js';
import { startRedis, type RedisServer } from '../../harness/index.js';
import { connectionFor, until } from '../../harness/bullmq.js';
import { APPROVAL, bundleClaimWorkflows, CHILD_ID, CHILD_RUN, CLAIM, claimQueues, replay, runActivity, RUN, WORKFLOW_ID } from '../../harness/temporal/claim-flow.js';
import { RecordingConnection } from '../../harness/temporal/connection.js';
import { CollectingEmitter, installOtel } from '../../harness/temporal/helpers.js';
import { HistoryBuilder } from '../../harness/temporal/history.js';

let redis: RedisServer;
let otel: ReturnType<typeof installOtel>;

beforeAll(async () => {
  redis = await startRedis();
  otel = installOtel();
  Runtime.install({ logger: new DefaultLogger('WARN') });
});
afterAll(async () => {
  await otel?.dispose();
  await redis?.dispose();
});

describe('BullMQ -> Temporal stitching', () => {
  it('one correlation ID and one trace across the job, the workflow, its activities, its child and the approval signal', async () => {
    const em = new CollectingEmitter();
    const temporalConn = new RecordingConnection();
    const client = new Client({ connection: temporalConn, interceptors: wardenClientInterceptors({ emitter: em }) });
    const queues = claimQueues(connectionFor(redis.url), client);
    queues.startIntakeWorker();
    queues.startApprovalsWorker();
    const job = await queues.intake.add('claim', CLAIM);
    await until(async () => temporalConn.of('SignalWorkflowExecution').length === 1, 15_000, 'approval signal sent');
    const jobCid = ((await queues.intake.getJob(job.id!))!.opts as Record<string, any>).warden.cid as string;
    expect(jobCid).toMatch(/^wc_/);
    await queues.close();
    const bullSpans = otel.exporter.getFinishedSpans().filter((s) => s.instrumentationScope.name === 'warden/bullmq');
    const trace = bullSpans.find((s) => s.name === 'send intake')!.spanContext().traceId;

    // The workflow replays the history a server would have written from these very requests.
    const start = temporalConn.of('StartWorkflowExecution')[0];
    const signal = temporalConn.of('SignalWorkflowExecution')[0];
    const history = new HistoryBuilder().started('claimWorkflow', [CLAIM], { runId: RUN, header: start.header.fields })
      .activity('1', 'scoreClaim', { score: 0.9 }).child(CHILD_ID, 'fraudCheck', CHILD_RUN, [CLAIM], 'clean')
      .signal('approve', [APPROVAL], signal.header.fields)
      .activity('2', 'payClaim', 'paid').completed({ score: 0.9, fraud: 'clean', paid: 'paid' });
    const bundle = await bundleClaimWorkflows();
    const records: { info: WorkflowInfo; rec: WorkflowRecord }[] = [];
    const keep = (info: WorkflowInfo, rec: WorkflowRecord) => { records.push({ info, rec }); };
    const commands = await replay(bundle, history, WORKFLOW_ID, keep);

    // The child run, started with the header the parent handed it.
    const childHeader = commands.find((c) => c.command === 'child')!.headers;
    await replay(bundle, new HistoryBuilder().started('fraudCheck', [CLAIM], { runId: CHILD_RUN, header: childHeader, parent: { workflowId: WORKFLOW_ID, runId: RUN } }).completed('clean'), CHILD_ID, keep);

    const r = resolveOptions({});
    const workflowEvents = records.map(({ info, rec }) => workflowRecordToEvent(info, rec, r)).filter((e): e is WardenEvent => e !== null);

    // Activities run with the headers the workflow gave them.
    const activityEm = new CollectingEmitter();
    for (const c of commands.filter((x) => x.command === 'activity')) await runActivity(c, wardenActivityInterceptors({ emitter: activityEm }));

    const all = [...em.events, ...workflowEvents, ...activityEm.events];
    expect(all.map((e) => e.kind).sort()).toEqual([
      'activity.completed', 'activity.completed', 'activity.started', 'activity.started',
      'approval.granted', 'signal.received', 'workflow.completed', 'workflow.completed', 'workflow.started', 'workflow.started',
    ]);
    expect(new Set(all.map((e) => e.correlation_id))).toEqual(new Set([jobCid]));
    expect(new Set(all.map((e) => e.trace_id))).toEqual(new Set([trace]));
    expect(readStamp(signal.header.fields)?.cid).toBe(jobCid);
    expect(all.find((e) => e.kind === 'approval.granted')).toMatchObject({ actor: 'alice', reason: 'documents verified', decision: 'granted' });

    const spans = otel.exporter.getFinishedSpans();
    const activitySpans = spans.filter((s) => s.instrumentationScope.name === 'warden/temporal');
    expect(activitySpans).toHaveLength(2);
    expect(bullSpans.length).toBeGreaterThanOrEqual(4); // send + process for both queues
    expect(new Set([...bullSpans, ...activitySpans].map((s) => s.spanContext().traceId))).toEqual(new Set([trace]));
  });
});
