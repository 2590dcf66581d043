/**
 * One correlation ID and one trace across three job systems, all real: a Celery task (PyPI celery 5.7,
 * prefork worker instrumented with `warden_celery.instrument(app)`) starts a Temporal workflow on a
 * real dev server through the Temporal Python SDK with `WardenTemporalInterceptor`; a TypeScript
 * Temporal worker (`wardenWorker()`, `configureWarden({ nats })`, an OTel SDK exporting over OTLP) runs
 * it; its activity adds a BullMQ job through `withWarden(queue)` (the activity's correlation scope
 * carries over); a `wardenProcessor` worker runs the job. A real `warden start` reads the Celery
 * broker's events, the BullMQ queue's stream and the hook events on NATS, and exports rebuilt spans to
 * the same OTLP receiver. Then `warden ledger lineage <cid>` (the CLI, against the stopped sidecar's
 * data dir) returns the three systems' records under one correlation ID, and the receiver holds one
 * trace in which each span hangs under the one that started its work.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue, Worker as BullWorker } from 'bullmq';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { WardenEvent } from '../../core/event.js';
import { stableSpanId, traceIdForCorrelation } from '../../core/ids.js';
import { workflowRunSpanId } from '../../hooks/temporal/headers.js';
import { configureWarden, wardenWorker, type WardenHandle } from '../../hooks/temporal/index.js';
import { wardenProcessor, withWarden } from '../../hooks/bullmq/index.js';
import { lineage } from '../../ledger/spool/query.js';
import { ensurePyVenv, PY_PINS, startNats, startOtlpReceiver, startRedis, startTemporal, tempDir, until, type NatsServer, type OtlpReceiver, type PyVenv, type RedisServer, type TemporalServer, type TempDir } from '../harness/index.js';
import { runPython, startCeleryWorker, type CeleryWorker } from '../harness/celery.js';
import { connectionFor } from '../harness/bullmq.js';
import { startSidecarProcess, sumMetric, type SidecarProcess } from '../harness/sidecar.js';
import { installOtel } from '../harness/temporal/helpers.js';

const CLI = resolve('dist/agent/cli.js');
const TASK_QUEUE = 'orders-tq';
const BULL_QUEUE = 'shipments';
const CELERY_QUEUE = 'orders';

/** The Celery app: instrumented where it is defined, so the producer script and the worker both get the hook. */
const TASKS = `
import asyncio, os
from celery import Celery
import warden_celery
app = Celery('tasks', broker=os.environ['BROKER_URL'], backend=os.environ['RESULT_BACKEND'])
app.conf.update(task_send_sent_event=True, worker_send_task_events=True, result_extended=True, task_default_queue='${CELERY_QUEUE}',
                worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)
warden = warden_celery.instrument(app)

@app.task(bind=True)
def place_order(self, order_id):
    from temporalio.client import Client
    from warden_celery.temporal import WardenTemporalInterceptor
    async def go():
        client = await Client.connect(os.environ['TEMPORAL_ADDRESS'], interceptors=[WardenTemporalInterceptor()])
        handle = await client.start_workflow('orderWorkflow', order_id, id='order-' + self.request.id, task_queue='${TASK_QUEUE}')
        return {'run_id': handle.result_run_id, 'result': await asyncio.wait_for(handle.result(), 60)}
    out = asyncio.run(go())
    return {**out, 'cid': warden_celery.current_correlation_id(), 'stamp': warden_celery.current_stamp()}
`;

let redis: RedisServer;
let nats: NatsServer;
let temporal: TemporalServer;
let otlp: OtlpReceiver;
let dir: TempDir;
let venv: PyVenv;
let sidecar: SidecarProcess;
let celery: CeleryWorker;
let warden: WardenHandle;
let otel: ReturnType<typeof installOtel>;
let env: Record<string, string>;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  [redis, nats, temporal, otlp, dir, venv] = await Promise.all([
    startRedis(), startNats(), startTemporal(), startOtlpReceiver(), tempDir('warden-e2e-ctb'),
    ensurePyVenv('celery-trace', PY_PINS.celeryHook, [`${resolve('hooks/celery')}[nats,temporal]`]),
  ]);
  writeFileSync(join(dir.path, 'tasks.py'), TASKS);
  env = { BROKER_URL: `${redis.url}/0`, RESULT_BACKEND: `${redis.url}/1`, TEMPORAL_ADDRESS: temporal.address, WARDEN_NATS_URL: nats.url };
  sidecar = await startSidecarProcess({
    redisUrl: redis.url, dataDir: join(dir.path, 'warden'), queues: [BULL_QUEUE], otlp: otlp.url,
    env: { WARDEN_CLICKHOUSE: 'off', WARDEN_NATS_URL: nats.url, WARDEN_CELERY_BROKER_URL: `${redis.url}/0`, WARDEN_CELERY_RESULT_BACKEND: `${redis.url}/1` },
  });
  celery = await startCeleryWorker({ venv, dir: dir.path, name: 'orders', queues: [CELERY_QUEUE], concurrency: 1, env });

  // The TypeScript side: an OTel SDK exporting to the same receiver, hook events over NATS.
  otel = installOtel({ url: otlp.url, serviceName: 'orders-ts-worker' });
  warden = configureWarden({ nats: { url: nats.url } });
  try { Runtime.install({ logger: new DefaultLogger('WARN') }); } catch { /* installed by another file in this process */ }
  const connection = connectionFor(redis.url);
  const shipments = withWarden(new Queue(BULL_QUEUE, { connection }));
  const bull = new BullWorker(BULL_QUEUE, wardenProcessor(async (job) => ({ shipped: (job.data as { orderId: string }).orderId })), { connection });
  const nc = await NativeConnection.connect({ address: temporal.address });
  const worker = await Worker.create({
    connection: nc, namespace: 'default', taskQueue: TASK_QUEUE,
    workflowsPath: fileURLToPath(new URL('./fixtures/order-workflows.ts', import.meta.url)),
    activities: {
      async enqueueShipment(orderId: string): Promise<string> {
        const job = await shipments.add('ship', { orderId });
        return job.id!;
      },
    },
    ...wardenWorker(),
  });
  const running = worker.run();
  closers.push(async () => { worker.shutdown(); await running; await nc.close(); }, () => bull.close(), () => shipments.close());
}, 240_000);

afterAll(async () => {
  for (const c of closers) await c().catch(() => undefined);
  await warden?.close(2000);
  await otel?.dispose();
  await celery?.stop();
  await sidecar?.proc.stop();
  await otlp?.close();
  await Promise.all([temporal?.dispose(), nats?.dispose(), redis?.dispose()]);
  await dir?.cleanup();
});

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args, '--data-dir', join(dir.path, 'warden', 'data')], { env: { PATH: process.env.PATH }, timeout: 30_000 }, (err, stdout, stderr) =>
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

const EXPECTED = [
  'bullmq job.added', 'bullmq job.completed', 'bullmq job.started',
  'celery job.added', 'celery job.completed', 'celery job.started',
  'temporal activity.completed', 'temporal activity.started', 'temporal workflow.completed', 'temporal workflow.started',
];

it('a Celery task -> Temporal workflow -> BullMQ job: one correlation ID in `warden ledger lineage`, one trace with parent links at the OTLP receiver', async () => {
  const out = JSON.parse(await runPython(venv, dir.path, `
import json, tasks
r = tasks.place_order.delay('A-17')
print(json.dumps({'id': r.id, 'value': r.get(timeout=90)}))
`, env)) as { id: string; value: { run_id: string; result: string; cid: string; stamp: { cid: string; tp: string } } };
  const taskId = out.id;
  const cid = taskId; // no scope at the producer: the correlation ID is Celery's root_id, what the sidecar uses too
  expect(out.value.cid).toBe(cid);
  expect(out.value.result).toMatch(/^shipped A-17 as job \d+$/);
  const traceId = traceIdForCorrelation(cid);
  const celeryTaskSpan = stableSpanId('celery', 'task', taskId, 0);
  expect(out.value.stamp.tp).toBe(`00-${traceId}-${celeryTaskSpan}-01`); // what the hook hands on

  const dataDir = join(dir.path, 'warden', 'data');
  const story = () => lineage(dataDir, cid).then((evs) => evs.map((r) => `${r.event.source} ${r.event.kind}`));
  await until(async () => { const have = await story(); return EXPECTED.every((k) => have.includes(k)); }, 30_000, 'the three systems in the ledger')
    .catch(async (err) => { throw new Error(`${(err as Error).message}: ${(await story()).join(', ')}`); });

  // Spans: the sidecar's (rebuilt Celery, workflow, BullMQ job) and the TS worker's (activity, send, process).
  const wfId = `order-${taskId}`;
  const wfSpan = workflowRunSpanId(wfId, out.value.run_id);
  const named = (name: string) => otlp.spans.filter((s) => s.traceId === traceId && s.name === name);
  await otel.provider.forceFlush();
  await until(() => ['job orders', 'process orders', 'workflow orderWorkflow', 'activity enqueueShipment', `send ${BULL_QUEUE}`, `job ${BULL_QUEUE}`, `process ${BULL_QUEUE}`]
    .every((n) => named(n).length > 0), 30_000, 'spans of all three systems at the receiver')
    .catch((err) => { throw new Error(`${(err as Error).message}: ${otlp.spans.map((s) => `${s.traceId.slice(0, 6)} ${s.name}`).join(', ')}`); });

  // Metrics: the same families for the three systems (the SRE dashboard's `system` variable is label_values(warden_jobs_total, system)).
  const metrics = await sidecar.metrics();
  expect(sumMetric(metrics, 'warden_jobs_total', { system: 'celery', queue: CELERY_QUEUE, outcome: 'completed' })).toBe(1);
  expect(sumMetric(metrics, 'warden_jobs_total', { system: 'temporal', outcome: 'completed' })).toBeGreaterThanOrEqual(1);
  expect(sumMetric(metrics, 'warden_jobs_total', { system: 'bullmq', queue: BULL_QUEUE, outcome: 'completed' })).toBe(1);
  expect(sumMetric(metrics, 'warden_job_duration_seconds_count', { system: 'celery', queue: CELERY_QUEUE })).toBe(1);

  // The whole story is stable once the sidecar stops: the CLI reads its data dir.
  await sidecar.proc.stop();
  const res = await cli(['ledger', 'lineage', cid, '--format', 'jsonl']);
  expect(res.code, res.stderr).toBe(0);
  const recs = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as WardenEvent);
  expect(new Set(recs.map((e) => e.correlation_id))).toEqual(new Set([cid]));
  expect(recs.map((e) => `${e.source} ${e.kind}`).filter((k) => EXPECTED.includes(k)).sort()).toEqual(EXPECTED);
  expect(new Set(recs.map((e) => e.trace_id))).toEqual(new Set([traceId]));
  const rec = (source: string, kind: string) => recs.find((e) => e.source === source && e.kind === kind)!;
  expect(rec('celery', 'job.completed').job_id).toBe(taskId);
  expect(rec('celery', 'job.started').span_id).toBe(celeryTaskSpan); // the span the hook ran the task under
  expect(rec('temporal', 'workflow.started').workflow_id).toBe(wfId);
  expect(rec('temporal', 'workflow.started').attrs.parent_span_id).toBe(celeryTaskSpan);
  expect(rec('bullmq', 'job.completed').queue).toBe(BULL_QUEUE);
  for (let i = 1; i < recs.length; i++) expect(recs[i].ts).toBeGreaterThanOrEqual(recs[i - 1].ts);

  // One trace; each span under the one whose code started its work.
  const one = (name: string) => { const s = named(name); expect(s, name).toHaveLength(1); return s[0]; };
  const celeryJob = one(`job ${CELERY_QUEUE}`);
  const celeryRun = one(`process ${CELERY_QUEUE}`);
  const wf = one('workflow orderWorkflow');
  const act = one('activity enqueueShipment');
  const send = one(`send ${BULL_QUEUE}`);
  const bullJob = one(`job ${BULL_QUEUE}`);
  const bullRun = one(`process ${BULL_QUEUE}`);
  expect(celeryJob.attributes['messaging.system']).toBe('celery');
  expect(celeryJob.parentSpanId).toBe('');
  expect(celeryRun.spanId).toBe(celeryTaskSpan);
  expect(celeryRun.parentSpanId).toBe(celeryJob.spanId);
  expect(wf.spanId).toBe(wfSpan);
  expect(wf.parentSpanId).toBe(celeryTaskSpan); // the Python client's header carried the task's span
  expect(act.parentSpanId).toBe(wfSpan);
  expect(send.parentSpanId).toBe(act.spanId); // withWarden(queue).add inside the activity
  expect(bullJob.parentSpanId).toBe(send.spanId);
  expect(bullRun.parentSpanId).toBe(send.spanId);
  expect(new Set([celeryJob, celeryRun, wf, bullJob].map((s) => s.serviceName)).size).toBe(1); // rebuilt by the sidecar
  expect(act.serviceName).toBe('orders-ts-worker');
  expect(otlp.errors).toEqual([]);
}, 150_000);
