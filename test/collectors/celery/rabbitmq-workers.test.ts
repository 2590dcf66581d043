// Real Celery workers (PyPI celery 5.7) on a private RabbitMQ broker (Debian rabbitmq-server 3.10)
// with a Redis result backend, the real sidecar (dist/agent/cli.js) reading the durable path: its own
// durable queue bound to `celeryev`. Hundreds of tasks over three queues with random failures and
// both kinds of retries; the sidecar killed -9 mid-run and restarted after the broker kept the events
// for it. Every task ends with exactly one terminal record whose attempt matches Celery's retries,
// one attempt_failed record per retry, nothing reconciled and no gap (nothing was lost); metrics equal
// Celery's own counts; the secret in the task kwargs never reaches the ledger or a label.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import amqp from 'amqplib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ensurePyVenv, PY_PINS, startRabbitMq, startRedis, sumMetric, tempDir, until, type PyVenv, type RabbitMqServer, type RedisServer, type TempDir } from '../../harness/index.js';
import { celeryByTask, celeryTruth as celeryTruth_, ledgerEvents, producerScript, runPython, startCeleryWorker, TASKS_MODULE, type CeleryWorker } from '../../harness/celery.js';
import { startSidecarProcess, type SidecarProcess } from '../../harness/sidecar.js';
import type { WardenEvent } from '../../../core/event.js';

const SECRET = 'hunter2-celery-amqp-51c2';
const QUEUE = 'warden.celeryev';
let redis: RedisServer;
let rmq: RabbitMqServer;
let tmp: TempDir;
let worker: CeleryWorker;
let sidecar: SidecarProcess;
let venv: PyVenv;
let env: Record<string, string>;

beforeAll(async () => {
  venv = await ensurePyVenv('celery', PY_PINS.celery);
  [redis, rmq] = await Promise.all([startRedis(), startRabbitMq()]);
  tmp = await tempDir('celery-rabbitmq');
  writeFileSync(join(tmp.path, 'tasks.py'), TASKS_MODULE);
  env = { BROKER_URL: rmq.url, RESULT_BACKEND: `${redis.url}/1` };
  writeFileSync(join(tmp.path, 'warden.yaml'), 'celery:\n  reconcileIntervalMs: 1000\n  reconcileGraceMs: 3000\n  metadata:\n    model_version: kwargs.model_version\n');
  // The sidecar first: its durable queue exists before the first event is published.
  sidecar = await startSidecarProcess({
    redisUrl: redis.url, dataDir: join(tmp.path, 'warden'), config: join(tmp.path, 'warden.yaml'),
    env: { WARDEN_CLICKHOUSE: 'off', WARDEN_CELERY_BROKER_URL: rmq.url, WARDEN_CELERY_RESULT_BACKEND: `${redis.url}/1` },
  });
  worker = await startCeleryWorker({ venv, dir: tmp.path, name: 'w1', queues: ['q1', 'q2', 'q3'], concurrency: 4, env });
}, 240_000);

afterAll(async () => {
  await sidecar?.proc.stop();
  await worker?.stop();
  await rmq?.dispose();
  await redis?.stop();
  await tmp?.cleanup();
});

const producer = (n: number, start: number, pauseS: number) =>
  producerScript({ n, start, pauseS, kwargs: { secret: SECRET }, modelVersions: true });
const celeryTruth = (ids: string[]) => celeryTruth_(`${redis.url}/1`, ids);
const ledger = () => ledgerEvents(join(tmp.path, 'warden', 'data'));
const byTask = celeryByTask;

/** Messages waiting in the sidecar's durable queue (asked of the broker). */
async function queueDepth(): Promise<number> {
  const c = await amqp.connect(rmq.amqplibUrl);
  try {
    const ch = await c.createChannel();
    return (await ch.checkQueue(QUEUE)).messageCount;
  } finally {
    await c.close().catch(() => undefined);
  }
}

it('kill -9 of the sidecar mid-run: the durable queue keeps the events; one terminal record per task, attempts match Celery, nothing lost, duplicated or reconciled', async () => {
  const sending = runPython(venv, tmp.path, producer(300, 0, 0.02), env);
  await new Promise((r) => setTimeout(r, 2500));
  await sidecar.proc.kill9();
  await new Promise((r) => setTimeout(r, 3000));
  const keptWhileAway = await queueDepth();
  expect(keptWhileAway).toBeGreaterThan(0); // events published while no sidecar ran were kept for it
  await sidecar.proc.start();
  const ids = JSON.parse(await sending) as string[];
  expect(ids).toHaveLength(300);
  const truth = await celeryTruth(ids);
  expect([...truth.values()].some((m) => m.retries > 0)).toBe(true);
  expect([...truth.values()].some((m) => m.status === 'FAILURE')).toBe(true);

  let events: WardenEvent[] = [];
  await until(async () => { events = await ledger(); return ids.every((id) => byTask(events, ['job.completed', 'job.failed']).has(id)); }, 90_000, 'a terminal record for every task');
  await until(async () => (await queueDepth()) === 0, 30_000, 'the durable queue to drain');
  events = await ledger();
  const terminals = byTask(events, ['job.completed', 'job.failed']);
  const attemptFailures = byTask(events, ['job.attempt_failed']);
  const added = byTask(events, ['job.added']);
  for (const id of ids) {
    const recs = terminals.get(id)!;
    expect(recs, id).toHaveLength(1);
    const m = truth.get(id)!;
    expect(recs[0].kind, id).toBe(m.status === 'SUCCESS' ? 'job.completed' : 'job.failed');
    expect(recs[0].attempt, id).toBe(m.retries + 1);
    expect(recs[0].queue, id).toBe(m.queue);
    expect(recs[0].attrs.reconciled, id).toBeUndefined(); // from the live event, kept by the broker
    // One attempt failure per retry, none twice (a message redelivered after the kill is recognised).
    expect((attemptFailures.get(id) ?? []).map((e) => e.attempt).sort(), id).toEqual(Array.from({ length: m.retries }, (_, i) => i + 1));
    expect(added.get(id), id).toHaveLength(1);
  }
  expect(events.filter((e) => e.kind === 'collector.gap')).toEqual([]); // the durable path needs no gap
  expect(new Set(events.map((e) => e.event_id)).size).toBe(events.length);
  const retries = [...truth.values()].reduce((s, m) => s + m.retries, 0);
  console.log(`celery rabbitmq kill -9: ${ids.length} tasks, ${retries} retries, ${keptWhileAway} event messages kept in ${QUEUE} while the sidecar was down, 0 reconciled, 0 gaps`);
}, 300_000);

it('metrics equal Celery\'s own counts; the secret reaches no ledger file and no label', async () => {
  const before = await sidecar.metrics();
  const count = (text: string, outcome: string) => sumMetric(text, 'warden_jobs_total', { system: 'celery', outcome });
  const ids = JSON.parse(await runPython(venv, tmp.path, producer(150, 1000, 0.005), env)) as string[];
  const truth = await celeryTruth(ids);
  const want = {
    completed: [...truth.values()].filter((m) => m.status === 'SUCCESS').length,
    failed: [...truth.values()].filter((m) => m.status === 'FAILURE').length,
    attempt_failed: [...truth.values()].reduce((s, m) => s + m.retries, 0),
  };
  await until(async () => {
    const now = await sidecar.metrics();
    return (['completed', 'failed', 'attempt_failed'] as const).every((o) => count(now, o) - count(before, o) === want[o]);
  }, 60_000, `celery metrics deltas to equal ${JSON.stringify(want)}`);
  const after = await sidecar.metrics();
  expect(after).not.toContain(SECRET);
  const dataDir = join(tmp.path, 'warden', 'data');
  const files = readdirSync(dataDir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile());
  for (const f of files) expect(readFileSync(join((f as unknown as { parentPath: string }).parentPath, f.name), 'utf8').includes(SECRET), f.name).toBe(false);
  const events = await ledger();
  const added = events.find((e) => e.source === 'celery' && e.kind === 'job.added' && e.job_name === 'tasks.flaky')!;
  expect(added.input).toMatchObject({ kwargs: { secret: '[REDACTED]' } });
  expect(added.model_version).toMatch(/^m-[01]$/);
  console.log(`celery rabbitmq metrics: ${JSON.stringify(want)}`);
}, 240_000);
