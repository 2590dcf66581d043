/**
 * End to end, through the real sidecar: a real BullMQ job (real Redis) starts a Temporal workflow;
 * the workflow runs (replayed, one workflow task at a time, from histories built out of the client's
 * real requests), its activities run with the headers it handed out, a reviewer's job sends the
 * approval signal, the workflow pays and completes. The worker side installs the real transport
 * (`configureWarden({ nats })`: hook events over NATS JetStream) and a real OTel SDK exporting over
 * OTLP/HTTP; a real `warden start` process watches the BullMQ queues, consumes the hook events and
 * exports its rebuilt spans to the same OTLP receiver. Then `warden ledger lineage` tells the story
 * in order under one correlation ID, every span received is in one trace, the metrics have the
 * Temporal series, and `warden ledger verify` passes.
 */
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { Client } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../core/event.js';
import { configureWarden, wardenActivityInterceptors, wardenClientInterceptors, wardenSinks, type WardenHandle } from '../../hooks/temporal/index.js';
import { readStamp } from '../../hooks/temporal/headers.js';
import { lineage } from '../../ledger/spool/query.js';
import { startNats, startOtlpReceiver, startRedis, tempDir, type NatsServer, type OtlpReceiver, type RedisServer, type TempDir } from '../harness/index.js';
import { startSidecarProcess, sumMetric, type SidecarProcess } from '../harness/sidecar.js';
import { connectionFor, until } from '../harness/bullmq.js';
import { APPROVAL, bundleClaimWorkflows, CHILD_ID, CHILD_RUN, CLAIM, claimQueues, replay, runActivity, RUN, TASK_QUEUE, WORKFLOW_ID } from '../harness/temporal/claim-flow.js';
import { RecordingConnection } from '../harness/temporal/connection.js';
import { installOtel } from '../harness/temporal/helpers.js';
import { HistoryBuilder } from '../harness/temporal/history.js';

const CLI = resolve('dist/agent/cli.js');

let redis: RedisServer;
let nats: NatsServer;
let otlp: OtlpReceiver;
let dir: TempDir;
let sidecar: SidecarProcess;
let dataDir: string;
let otel: ReturnType<typeof installOtel>;
let warden: WardenHandle;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args, '--data-dir', dataDir], { env: { PATH: process.env.PATH }, timeout: 20_000 }, (err, stdout, stderr) =>
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

beforeAll(async () => {
  [redis, nats, otlp, dir] = await Promise.all([startRedis(), startNats(), startOtlpReceiver(), tempDir('warden-e2e-stitching')]);
  sidecar = await startSidecarProcess({
    redisUrl: redis.url, dataDir: dir.path, queues: ['intake', 'approvals'], otlp: otlp.url,
    env: { WARDEN_NATS_URL: nats.url, WARDEN_CLICKHOUSE: 'off' },
  });
  dataDir = join(dir.path, 'data');
  // The worker process: its OTel SDK exports to the same receiver; its hooks publish to NATS.
  otel = installOtel({ url: otlp.url, serviceName: 'claims-worker' });
  warden = configureWarden({ nats: { url: nats.url } });
  Runtime.install({ logger: new DefaultLogger('WARN') });
});
afterAll(async () => {
  await warden?.close(2000);
  await otel?.dispose();
  await sidecar?.proc.stop();
  await otlp?.close();
  await Promise.all([nats?.dispose(), redis?.dispose()]);
  await dir?.cleanup();
});

const EXPECTED_KINDS = [
  'activity.completed', 'activity.completed', 'activity.started', 'activity.started', 'approval.granted',
  'job.added', 'job.added', 'job.completed', 'job.completed', 'job.started', 'job.started',
  'signal.received', 'workflow.completed', 'workflow.completed', 'workflow.started', 'workflow.started',
];

describe('BullMQ job -> Temporal workflow -> activities -> approval, through the real sidecar', () => {
  it('lineage returns the whole story in order under one correlation ID, the OTLP receiver sees one trace, metrics show Temporal', async () => {
    const temporalConn = new RecordingConnection();
    // Client, activities and the workflow sink all emit through the process-wide emitter configureWarden installed.
    const client = new Client({ connection: temporalConn, interceptors: wardenClientInterceptors() });
    const queues = claimQueues(connectionFor(redis.url), client);
    const bundle = await bundleClaimWorkflows();
    // Warden's real sink (record -> event -> transport). A replay worker polls a made-up task queue
    // (`fake_replay_queue-N`) and reports it in WorkflowInfo; a live worker reports its own, the
    // workflow's task queue, so that is what the sink is given.
    const wardenRecord = wardenSinks().warden.record.fn;
    let sinkCalls = 0;
    const sink: typeof wardenRecord = (info, rec) => { sinkCalls++; wardenRecord({ ...info, taskQueue: TASK_QUEUE }, rec); };
    const activities = wardenActivityInterceptors();

    // 1. The intake job starts the workflow (and queues the review, which waits for a reviewer).
    queues.startIntakeWorker();
    const job = await queues.intake.add('claim', CLAIM);
    await until(() => temporalConn.of('StartWorkflowExecution').length === 1, 10_000, 'workflow started');
    const cid = ((await queues.intake.getJob(job.id!))!.opts as Record<string, any>).warden.cid as string;
    expect(cid).toMatch(/^wc_/);

    // 2. Workflow tasks, as a worker would run them: each replays the history so far and runs the
    // newest task as new work. Workflow time follows the real clock (1 ms between history events).
    const start = temporalConn.of('StartWorkflowExecution')[0];
    const history = new HistoryBuilder(TASK_QUEUE, temporalConn.timeOf('StartWorkflowExecution'), 1)
      .started('claimWorkflow', [CLAIM], { runId: RUN, header: start.header.fields });
    const task = async (build: (h: HistoryBuilder) => unknown) => {
      build(history.at(Date.now()));
      return replay(bundle, history.pendingTask(), WORKFLOW_ID, sink);
    };
    const activityOf = (cmds: Awaited<ReturnType<typeof task>>, type: string) => cmds.find((c) => c.command === 'activity' && c.target === type)!;

    let cmds = await task(() => undefined);
    await runActivity(activityOf(cmds, 'scoreClaim'), activities, { score: 0.9 });

    cmds = await task((h) => h.activity('1', 'scoreClaim', { score: 0.9 }));
    const child = cmds.find((c) => c.command === 'child')!;
    // The child run, with the header its parent handed it (it records its own start).
    const childHistory = new HistoryBuilder(TASK_QUEUE, Date.now(), 1)
      .started('fraudCheck', [CLAIM], { runId: CHILD_RUN, header: child.headers, parent: { workflowId: WORKFLOW_ID, runId: RUN } });
    await replay(bundle, childHistory.pendingTask(), CHILD_ID, sink);
    history.at(Date.now()).child(CHILD_ID, 'fraudCheck', CHILD_RUN, [CLAIM], 'clean');

    // 3. The reviewer comes online and approves by signal; the workflow takes it and pays.
    queues.startApprovalsWorker();
    await until(() => temporalConn.of('SignalWorkflowExecution').length === 1, 10_000, 'approval signal sent');
    const signal = temporalConn.of('SignalWorkflowExecution')[0];
    expect(readStamp(signal.header.fields)?.cid).toBe(cid);
    cmds = await task((h) => h.signal('approve', [APPROVAL], signal.header.fields));
    await runActivity(activityOf(cmds, 'payClaim'), activities, 'paid');
    await task((h) => h.activity('2', 'payClaim', 'paid')); // the last task completes the run

    // Everything reaches the sidecar: BullMQ events from the queues' streams, hook events over NATS.
    await until(async () => (await lineage(dataDir, cid)).length >= EXPECTED_KINDS.length, 15_000, 'the whole story in the ledger');
    await queues.close();

    // `warden ledger lineage`: the real CLI against the sidecar's data dir.
    const res = await cli(['ledger', 'lineage', cid, '--format', 'jsonl']);
    expect(res.code, res.stderr).toBe(0);
    const story = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as WardenEvent & { seq: number });
    expect(story.map((e) => e.kind).sort()).toEqual(EXPECTED_KINDS); // each once: replays re-send records, the ledger keeps one
    expect(new Set(story.map((e) => e.event_id)).size).toBe(story.length);
    // Each replay re-ran the earlier tasks and re-sent their records (same event IDs, dropped as
    // duplicates): 4 workflow records are in the ledger (the child's start and end, the approval, the
    // parent's end), from more sink calls.
    expect(sinkCalls).toBeGreaterThan(story.filter((e) => e.source === 'temporal' && e.attrs.recorded_by !== 'client' && e.workflow_id && !e.activity_type).length);
    expect(new Set(story.map((e) => e.correlation_id))).toEqual(new Set([cid]));
    // (A client signalling a handle does not know the task queue: its signal.received has none.)
    expect(new Set(story.filter((e) => e.source === 'temporal' && e.kind !== 'signal.received').map((e) => e.queue))).toEqual(new Set([TASK_QUEUE]));
    for (let i = 1; i < story.length; i++) expect(story[i].ts).toBeGreaterThanOrEqual(story[i - 1].ts);

    const at = (pred: (e: WardenEvent) => boolean, what: string) => {
      const i = story.findIndex(pred);
      expect(i, `${what} in the lineage`).toBeGreaterThanOrEqual(0);
      return i;
    };
    const intakeJob = (kind: string) => at((e) => e.kind === kind && e.queue === 'intake' && e.job_id === job.id, `intake ${kind}`);
    const wf = (kind: string, id: string) => at((e) => e.kind === kind && e.workflow_id === id, `${id} ${kind}`);
    const act = (kind: string, type: string) => at((e) => e.kind === kind && e.activity_type === type, `${type} ${kind}`);
    const order: [string, number][] = [
      ['intake job.added', intakeJob('job.added')],
      ['intake job.started', intakeJob('job.started')],
      ['workflow.started', wf('workflow.started', WORKFLOW_ID)],
      ['intake job.completed', intakeJob('job.completed')],
      ['scoreClaim started', act('activity.started', 'scoreClaim')],
      ['scoreClaim completed', act('activity.completed', 'scoreClaim')],
      ['child workflow.started', wf('workflow.started', CHILD_ID)],
      ['child workflow.completed', wf('workflow.completed', CHILD_ID)],
      ['approvals job.started', at((e) => e.kind === 'job.started' && e.queue === 'approvals', 'approvals job.started')],
      ['signal.received', at((e) => e.kind === 'signal.received', 'signal.received')],
      ['approval.granted', at((e) => e.kind === 'approval.granted', 'approval.granted')],
      ['payClaim started', act('activity.started', 'payClaim')],
      ['payClaim completed', act('activity.completed', 'payClaim')],
      ['workflow.completed', wf('workflow.completed', WORKFLOW_ID)],
    ];
    const positions = order.map(([, i]) => i);
    expect(positions, order.map(([n, i]) => `${i}:${n}`).join(', ')).toEqual([...positions].sort((a, b) => a - b));
    expect(story.find((e) => e.kind === 'approval.granted')).toMatchObject({ actor: 'alice', reason: 'documents verified', decision: 'granted', workflow_id: WORKFLOW_ID });
    // The sidecar read the producer's stamp from the job hash; the workflow's start names its task queue and type.
    expect(story[order[0][1]]).toMatchObject({ source: 'bullmq', model: 'claims-llm', model_version: '2024-06' });
    expect(story[order[2][1]]).toMatchObject({ source: 'temporal', queue: TASK_QUEUE, job_name: 'claimWorkflow', run_id: RUN });

    // The claim's contact (an email) was redacted at the source: not on disk, not in any span.
    expect(res.stdout).not.toContain(CLAIM.contact);
    expect(story.find((e) => e.kind === 'job.added' && e.queue === 'intake')!.input_digest).toMatch(/^[0-9a-f]{64}$/);

    // One trace: the BullMQ producer span's, for every span the receiver got (sidecar and worker).
    await otel.provider.forceFlush();
    const trace = otel.exporter.getFinishedSpans().find((s) => s.name === 'send intake')!.spanContext().traceId;
    const sidecarSpans = ['job intake', 'job approvals', 'workflow claimWorkflow', 'workflow fraudCheck', 'signal approve', 'approval approve'];
    const workerSpans = ['send intake', 'process intake', 'send approvals', 'process approvals', 'activity scoreClaim', 'activity payClaim'];
    const names = () => new Set(otlp.spans.map((s) => s.name));
    await until(() => [...sidecarSpans, ...workerSpans].every((n) => names().has(n)), 10_000, `spans ${[...sidecarSpans, ...workerSpans].filter((n) => !names().has(n)).join(', ')}`);
    expect(otlp.errors).toEqual([]);
    expect(otlp.rawBodies.join('\n')).not.toContain(CLAIM.contact);
    const bySource = (service: string) => otlp.spans.filter((s) => s.serviceName === service).map((s) => s.name);
    expect(bySource('claims-worker').sort()).toEqual([...workerSpans].sort());
    // The worker traced the attempts in-process (wrapped processor, activity interceptor): the sidecar
    // rebuilds only what it alone knows, so no attempt is traced twice, not even the first on a queue.
    expect(bySource('warden').sort()).toEqual([...sidecarSpans].sort());
    expect(new Set(otlp.spans.map((s) => s.traceId))).toEqual(new Set([trace]));
    // And one tree: every span's parent is a span the receiver got, except the producer's root.
    const ids = new Set(otlp.spans.map((s) => s.spanId));
    const orphans = otlp.spans.filter((s) => s.parentSpanId && !ids.has(s.parentSpanId)).map((s) => s.name);
    expect(orphans).toEqual([]);
    expect(otlp.spans.filter((s) => !s.parentSpanId).map((s) => s.name)).toEqual(['send intake']);

    // Metrics: the Temporal events are counted with system="temporal".
    const metrics = await sidecar.metrics();
    expect(sumMetric(metrics, 'warden_jobs_total', { system: 'temporal', queue: TASK_QUEUE, name: 'scoreClaim', outcome: 'completed' })).toBe(1);
    expect(sumMetric(metrics, 'warden_jobs_total', { system: 'temporal', queue: TASK_QUEUE, name: 'payClaim', outcome: 'completed' })).toBe(1);
    expect(sumMetric(metrics, 'warden_jobs_total', { system: 'temporal', queue: TASK_QUEUE, name: 'claimWorkflow', outcome: 'completed' })).toBe(1);
    expect(sumMetric(metrics, 'warden_jobs_total', { system: 'temporal', queue: TASK_QUEUE, name: 'fraudCheck', outcome: 'completed' })).toBe(1);
    expect(metrics).toMatch(/warden_job_duration_seconds_count\{system="temporal",queue="claims",name="claimWorkflow"\} 1/);
    expect(sumMetric(metrics, 'warden_jobs_total', { system: 'bullmq', queue: 'intake', outcome: 'completed' })).toBe(1);

    // The ledger verifies after a graceful stop (which writes the final signed checkpoint).
    await sidecar.proc.stop();
    const verify = await cli(['ledger', 'verify']);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(verify.stdout).toMatch(/ledger intact/);
  });
});
