/**
 * Stitching: a BullMQ job (real Redis) whose processor starts a Temporal workflow and queues an
 * approval job, whose processor sends the approval signal. The requests the Temporal client encodes
 * become the history the workflow replays; the headers the workflow hands to its activities and its
 * child run those. Every record and span must share one correlation ID and one trace.
 */
import { fileURLToPath } from 'node:url';
import { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker as TemporalWorker } from '@temporalio/worker';
import type { WorkflowInfo } from '@temporalio/workflow';
import { Queue, Worker, type Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wardenProcessor, withWarden } from '../../../collectors/bullmq/index.js';
import type { WardenEvent } from '../../../collectors/event.js';
import { readStamp, WARDEN_WORKFLOW_MODULE, wardenActivityInterceptors, wardenClientInterceptors, workflowRecordToEvent } from '../../../collectors/temporal/index.js';
import { resolveOptions } from '../../../collectors/temporal/options.js';
import type { WorkflowRecord } from '../../../collectors/temporal/records.js';
import { startRedis, type RedisServer } from '../../harness/index.js';
import { connectionFor, until } from '../bullmq/helpers.js';
import { RecordingConnection } from './connection.js';
import { CollectingEmitter, headerInjector, installOtel } from './helpers.js';
import { HistoryBuilder } from './history.js';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));
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
    const connection = connectionFor(redis.url);
    const em = new CollectingEmitter();
    const temporalConn = new RecordingConnection();
    const client = new Client({ connection: temporalConn, interceptors: wardenClientInterceptors({ emitter: em }) });
    const intake = withWarden(new Queue('intake', { connection }), { model: 'claims-llm', model_version: '2024-06' });
    const approvals = withWarden(new Queue('approvals', { connection }));
    const claim = { id: 'C-7', contact: 'jane@example.com' };

    const w1 = new Worker('intake', wardenProcessor(async (job: Job) => {
      await client.workflow.start('claimWorkflow', { taskQueue: 'claims', workflowId: `claim-${job.data.id}`, args: [job.data] });
      await approvals.add('review', { workflowId: `claim-${job.data.id}` });
    }), { connection });
    const w2 = new Worker('approvals', wardenProcessor(async (job: Job) => {
      await client.workflow.getHandle(job.data.workflowId).signal('approve', { actor: 'alice', reason: 'documents verified' });
    }), { connection });
    const job = await intake.add('claim', claim);
    await until(async () => temporalConn.of('SignalWorkflowExecution').length === 1, 15_000, 'approval signal sent');
    const jobCid = ((await intake.getJob(job.id!))!.opts as Record<string, any>).warden.cid as string;
    expect(jobCid).toMatch(/^wc_/);
    await Promise.all([w1.close(), w2.close()]);
    await Promise.all([intake.close(), approvals.close()]);
    const bullSpans = otel.exporter.getFinishedSpans().filter((s) => s.instrumentationScope.name === 'warden/bullmq');
    const trace = bullSpans.find((s) => s.name === 'send intake')!.spanContext().traceId;

    // The workflow replays the history a server would have written from these very requests.
    const start = temporalConn.of('StartWorkflowExecution')[0];
    const signal = temporalConn.of('SignalWorkflowExecution')[0];
    const RUN = 'run-1';
    const history = new HistoryBuilder().started('claimWorkflow', [claim], { runId: RUN, header: start.header.fields })
      .activity('1', 'scoreClaim', { score: 0.9 }).child('fraud-C-7', 'fraudCheck', 'child-run', [claim], 'clean')
      .signal('approve', [{ actor: 'alice', reason: 'documents verified' }], signal.header.fields)
      .activity('2', 'payClaim', 'paid').completed({ score: 0.9, fraud: 'clean', paid: 'paid' });
    const bundle = await bundleWorkflowCode({ workflowsPath: here('./workflows.ts'), workflowInterceptorModules: [WARDEN_WORKFLOW_MODULE, here('./header-probe.ts')], logger: new DefaultLogger('WARN') });
    const records: { info: WorkflowInfo; rec: WorkflowRecord }[] = [];
    const commands: { command: string; target: string; headers: Record<string, Payload> }[] = [];
    const sinks = {
      warden: { record: { fn: (info: WorkflowInfo, rec: WorkflowRecord) => { records.push({ info, rec }); }, callDuringReplay: true } },
      probe: { headers: { fn: (_i: WorkflowInfo, command: string, target: string, headers: Record<string, Payload>) => { commands.push({ command, target, headers }); }, callDuringReplay: true } },
    };
    await TemporalWorker.runReplayHistory({ workflowBundle: bundle, sinks: sinks as never }, history, 'claim-C-7');

    // The child run, started with the header the parent handed it.
    const childHeader = commands.find((c) => c.command === 'child')!.headers;
    await TemporalWorker.runReplayHistory({ workflowBundle: bundle, sinks: sinks as never },
      new HistoryBuilder().started('fraudCheck', [claim], { runId: 'child-run', header: childHeader, parent: { workflowId: 'claim-C-7', runId: RUN } }).completed('clean'), 'fraud-C-7');

    const r = resolveOptions({});
    const workflowEvents = records.map(({ info, rec }) => workflowRecordToEvent(info, rec, r)).filter((e): e is WardenEvent => e !== null);

    // Activities run with the headers the workflow gave them.
    const activityEm = new CollectingEmitter();
    for (const c of commands.filter((x) => x.command === 'activity')) {
      await new MockActivityEnvironment({ activityType: c.target, activityId: c.target, taskQueue: 'claims', workflowType: 'claimWorkflow', workflowExecution: { workflowId: 'claim-C-7', runId: RUN } } as never,
        { interceptors: [headerInjector(c.headers), wardenActivityInterceptors({ emitter: activityEm })], logger: new DefaultLogger('ERROR') }).run(async () => 'done');
    }

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
