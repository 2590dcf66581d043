// Real Celery workers (PyPI celery 5.7) on a private Redis broker and result backend, the real sidecar
// (dist/agent/cli.js): hundreds of tasks over three queues with random failures and both kinds of
// retries, the sidecar killed -9 mid-run and restarted. Every task ends with exactly one terminal
// ledger record whose attempt matches Celery's retries; the missed window is a collector.gap; metrics
// equal Celery's own counts; the secret in the task kwargs never reaches the ledger or a label.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ensurePyVenv, PY_PINS, startRedis, sumMetric, tempDir, until, type RedisServer, type TempDir } from '../../harness/index.js';
import { celeryByTask, celeryTruth as celeryTruth_, ledgerEvents, producerScript, runPython, startCeleryWorker, TASKS_MODULE, type CeleryWorker } from '../../harness/celery.js';
import { startSidecarProcess, type SidecarProcess } from '../../harness/sidecar.js';
import type { WardenEvent } from '../../../core/event.js';

const SECRET = 'hunter2-celery-9f3a';
let redis: RedisServer;
let tmp: TempDir;
let worker: CeleryWorker;
let sidecar: SidecarProcess;
let env: Record<string, string>;

beforeAll(async () => {
  const venv = await ensurePyVenv('celery', PY_PINS.celery);
  redis = await startRedis();
  tmp = await tempDir('celery-redis');
  writeFileSync(join(tmp.path, 'tasks.py'), TASKS_MODULE);
  env = { BROKER_URL: `${redis.url}/0`, RESULT_BACKEND: `${redis.url}/1` };
  worker = await startCeleryWorker({ venv, dir: tmp.path, name: 'w1', queues: ['q1', 'q2', 'q3'], concurrency: 4, env });
  writeFileSync(join(tmp.path, 'warden.yaml'), 'celery:\n  reconcileIntervalMs: 1000\n  reconcileGraceMs: 1000\n  metadata:\n    model_version: kwargs.model_version\n');
  sidecar = await startSidecarProcess({
    redisUrl: redis.url, dataDir: join(tmp.path, 'warden'), config: join(tmp.path, 'warden.yaml'),
    env: { WARDEN_CLICKHOUSE: 'off', WARDEN_CELERY_BROKER_URL: `${redis.url}/0`, WARDEN_CELERY_RESULT_BACKEND: `${redis.url}/1` },
  });
  (globalThis as { venv?: unknown }).venv = venv;
}, 240_000);

afterAll(async () => {
  await sidecar?.proc.stop();
  await worker?.stop();
  await redis?.stop();
  await tmp?.cleanup();
});

const producer = (n: number, start: number, pauseS: number) =>
  producerScript({ n, start, pauseS, kwargs: { secret: SECRET }, modelVersions: true });
const celeryTruth = (ids: string[]) => celeryTruth_(`${redis.url}/1`, ids);
const ledger = () => ledgerEvents(join(tmp.path, 'warden', 'data'));
const terminalsByTask = (events: WardenEvent[]) => celeryByTask(events, ['job.completed', 'job.failed']);

it('kill -9 of the sidecar mid-run: every task has exactly one terminal record, attempts match Celery, the gap is recorded', async () => {
  const venv = (globalThis as { venv?: Parameters<typeof runPython>[0] }).venv!;
  const sending = runPython(venv, tmp.path, producer(240, 0, 0.02), env);
  await new Promise((r) => setTimeout(r, 2500));
  await sidecar.proc.kill9();
  await new Promise((r) => setTimeout(r, 2000));
  await sidecar.proc.restart();
  const ids = JSON.parse(await sending) as string[];
  expect(ids).toHaveLength(240);
  const truth = await celeryTruth(ids);
  expect([...truth.values()].some((m) => m.retries > 0)).toBe(true);
  expect([...truth.values()].some((m) => m.status === 'FAILURE')).toBe(true);

  let events: WardenEvent[] = [];
  await until(async () => { events = await ledger(); return ids.every((id) => terminalsByTask(events).has(id)); }, 60_000, 'a terminal record for every task');
  const terminals = terminalsByTask(events);
  for (const id of ids) {
    const recs = terminals.get(id)!;
    expect(recs, id).toHaveLength(1);
    const m = truth.get(id)!;
    expect(recs[0].kind, id).toBe(m.status === 'SUCCESS' ? 'job.completed' : 'job.failed');
    expect(recs[0].attempt, id).toBe(m.retries + 1);
    expect(recs[0].queue, id).toBe(m.queue);
  }
  const reconciled = ids.filter((id) => terminals.get(id)![0].attrs.reconciled === true);
  const gaps = events.filter((e) => e.kind === 'collector.gap' && e.attrs.system === 'celery');
  expect(gaps.length).toBeGreaterThanOrEqual(1);
  expect(gaps[0].reason).toContain('not subscribed');
  expect(reconciled.length).toBeGreaterThan(0); // the kill window lost live events; the backend rebuilt them
  expect(new Set(events.map((e) => e.event_id)).size).toBe(events.length);
  console.log(`celery kill -9: ${ids.length} tasks, ${reconciled.length} terminal records reconciled from the result backend, ${gaps.length} gap record(s)`);
}, 240_000);

it('metrics equal Celery\'s own counts; the secret reaches no ledger file and no label', async () => {
  const venv = (globalThis as { venv?: Parameters<typeof runPython>[0] }).venv!;
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
  console.log(`celery metrics: ${JSON.stringify(want)}`);
}, 240_000);
