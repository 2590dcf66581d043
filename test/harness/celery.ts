/**
 * Real Celery workers from PyPI (the pinned venv, PY_PINS.celery) for tests: a tasks module written
 * into a temp dir, workers started in their own process group (prefork children outlive a SIGKILL of
 * the parent) and killed by group.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { WardenEvent } from '../../core/event.js';
import { Spool } from '../../ledger/index.js';
import type { PyVenv } from './pyvenv.js';
import { waitFor } from './process.js';

export interface CeleryWorker {
  readonly pid: number;
  readonly logFile: string;
  log(): string;
  /** SIGTERM to the group (warm shutdown), SIGKILL after a grace period. */
  stop(graceMs?: number): Promise<void>;
  kill9(): Promise<void>;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

export async function startCeleryWorker(o: { venv: PyVenv; dir: string; name: string; queues: string[]; concurrency?: number; env: Record<string, string>; app?: string }): Promise<CeleryWorker> {
  const logFile = join(o.dir, `worker-${o.name}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(o.venv.bin('celery'), ['-A', o.app ?? 'tasks', 'worker', '-E', '-c', String(o.concurrency ?? 2), '-Q', o.queues.join(','), '-n', `${o.name}@%h`, '--loglevel=info', '--without-gossip', '--without-mingle'], {
    cwd: o.dir, env: { PATH: process.env.PATH, HOME: o.dir, PYTHONUNBUFFERED: '1', ...o.env }, stdio: ['ignore', fd, fd], detached: true,
  });
  const pid = child.pid!;
  const log = () => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } };
  const group = (sig: NodeJS.Signals) => { try { process.kill(-pid, sig); } catch { /* gone */ } };
  const onExit = () => group('SIGKILL');
  process.once('exit', onExit);
  await waitFor(() => / ready\.$/m.test(log()) || child.exitCode !== null, { timeoutMs: 60_000, intervalMs: 100, what: `celery worker ${o.name} ready` });
  if (child.exitCode !== null) throw new Error(`celery worker ${o.name} exited: ${log().slice(-2000)}`);
  return {
    pid, logFile, log,
    async stop(graceMs = 10_000) {
      group('SIGTERM');
      const t = setTimeout(() => group('SIGKILL'), graceMs);
      await exited(child);
      clearTimeout(t);
      group('SIGKILL'); // children left behind
      process.removeListener('exit', onExit);
    },
    async kill9() {
      group('SIGKILL');
      await exited(child);
      process.removeListener('exit', onExit);
    },
  };
}

/** Runs a Python script with the venv's interpreter in `dir`; resolves with its stdout (rejects on a non-zero exit). */
export function runPython(venv: PyVenv, dir: string, script: string, env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(venv.python, ['-c', script], { cwd: dir, env: { PATH: process.env.PATH, HOME: dir, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { err = (err + b.toString()).slice(-4000); });
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`python exited ${code}: ${err}`))));
  });
}

/** A tasks module with retries (autoretry_for and self.retry), random failures and a kwarg that must be redacted. Retries wait 0.5 s: with countdown 0 a retry can finish before Celery stores the RETRY state, and the result backend then ends at RETRY for a task that succeeded (seen with Celery 5.7). */
export const TASKS_MODULE = `
import os, random
from celery import Celery
app = Celery('tasks', broker=os.environ['BROKER_URL'], backend=os.environ['RESULT_BACKEND'])
app.conf.update(task_send_sent_event=True, worker_send_task_events=True, result_extended=True,
                task_default_queue='q1', worker_prefetch_multiplier=1, broker_connection_retry_on_startup=True)

class Flaky(Exception):
    pass

@app.task(bind=True, autoretry_for=(Flaky,), retry_kwargs={'max_retries': 3, 'countdown': 0.5})
def flaky(self, n, p=0.3, secret=None, model_version=None):
    if random.random() < p:
        raise Flaky(f'flaky {n}')
    return {'n': n}

@app.task(bind=True, max_retries=3)
def manual(self, n, fail_times=1, secret=None):
    if self.request.retries < fail_times:
        raise self.retry(countdown=0.5, exc=ValueError(f'manual retry {n}'))
    return n

@app.task(bind=True, max_retries=50)
def storm(self, n):
    # Retries while the flag key is set in the result backend's Redis (the test clears it to heal).
    if app.backend.client.get('storm-on'):
        raise self.retry(countdown=0.2, exc=RuntimeError(f'storm {n}'))
    return n
`;

export interface FlowerProcess {
  readonly url: string;
  log(): string;
  /** SIGTERM (Flower saves nothing with --persistent=False), then SIGKILL after a grace period. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Flower (PyPI flower, PY_PINS.celery) on the app's broker: `celery -A <app> --broker=<url> flower
 * --port=<port> --persistent=False`, its API open without auth (FLOWER_UNAUTHENTICATED_API), ready once
 * /healthcheck answers.
 */
export async function startFlower(o: { venv: PyVenv; dir: string; port: number; broker: string; env: Record<string, string>; app?: string; name?: string }): Promise<FlowerProcess> {
  const logFile = join(o.dir, `flower-${o.name ?? o.port}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(o.venv.bin('celery'), ['-A', o.app ?? 'tasks', `--broker=${o.broker}`, 'flower', `--port=${o.port}`, '--address=127.0.0.1', '--persistent=False'], {
    cwd: o.dir, env: { PATH: process.env.PATH, HOME: o.dir, PYTHONUNBUFFERED: '1', FLOWER_UNAUTHENTICATED_API: 'true', ...o.env }, stdio: ['ignore', fd, fd], detached: true,
  });
  const pid = child.pid!;
  const url = `http://127.0.0.1:${o.port}`;
  const log = () => { try { return readFileSync(logFile, 'utf8'); } catch { return ''; } };
  const group = (sig: NodeJS.Signals) => { try { process.kill(-pid, sig); } catch { /* gone */ } };
  const onExit = () => group('SIGKILL');
  process.once('exit', onExit);
  await waitFor(async () => {
    if (child.exitCode !== null) return true;
    try { return (await fetch(`${url}/healthcheck`)).ok; } catch { return false; }
  }, { timeoutMs: 60_000, intervalMs: 200, what: 'flower ready' });
  if (child.exitCode !== null) throw new Error(`flower exited: ${log().slice(-2000)}`);
  return {
    url, log,
    async stop(graceMs = 5_000) {
      group('SIGTERM');
      const t = setTimeout(() => group('SIGKILL'), graceMs);
      await exited(child);
      clearTimeout(t);
      process.removeListener('exit', onExit);
    },
  };
}

/**
 * A producer script: `n` tasks from `start` over q1..q3, alternately `tasks.flaky` (autoretry_for,
 * failing with probability `p`) and `tasks.manual` (self.retry 0, 1, 2 or 4 times), `pauseS` apart;
 * prints the task ids as JSON. `kwargs` adds fixed keyword arguments (e.g. a secret that must never
 * reach the ledger) and `seed` makes the retry counts repeatable.
 */
export function producerScript(o: { n: number; start?: number; pauseS: number; p?: number; kwargs?: Record<string, string>; modelVersions?: boolean; seed?: number }): string {
  const start = o.start ?? 0;
  const extra = Object.entries(o.kwargs ?? {}).map(([k, v]) => `, ${JSON.stringify(k)}: ${JSON.stringify(v)}`).join('');
  const model = o.modelVersions ? ", 'model_version': 'm-%d' % (i % 2)" : '';
  return `
import json, random, time, tasks
${o.seed === undefined ? '' : `random.seed(${o.seed})`}
ids = []
for i in range(${start}, ${start + o.n}):
    q = ['q1', 'q2', 'q3'][i % 3]
    if i % 2:
        r = tasks.flaky.apply_async((i,), {'p': ${o.p ?? 0.3}${extra}${model}}, queue=q)
    else:
        r = tasks.manual.apply_async((i,), {'fail_times': random.choice([0, 1, 2, 4])${extra}}, queue=q)
    ids.append(r.id)
    time.sleep(${o.pauseS})
print(json.dumps(ids))
`;
}

/** What Celery itself says of a finished task (its result backend entry). */
export interface CeleryTruth { status: string; retries: number; queue: string }

/** Waits until every task is SUCCESS or FAILURE in the Redis result backend at `backendUrl`; returns Celery's own view. */
export async function celeryTruth(backendUrl: string, ids: string[], timeoutMs = 120_000): Promise<Map<string, CeleryTruth>> {
  const r = new Redis(backendUrl);
  const out = new Map<string, CeleryTruth>();
  try {
    await waitFor(async () => {
      const vals = await r.mget(...ids.map((id) => `celery-task-meta-${id}`));
      vals.forEach((v, i) => { if (v) { const m = JSON.parse(v) as CeleryTruth; if (m.status === 'SUCCESS' || m.status === 'FAILURE') out.set(ids[i], m); } });
      return out.size === ids.length;
    }, { timeoutMs, intervalMs: 100, what: 'every task finished in Celery', retryErrors: false }).catch(async (err) => {
      const missing = ids.filter((id) => !out.has(id));
      const vals = missing.length ? await r.mget(...missing.slice(0, 5).map((id) => `celery-task-meta-${id}`)) : [];
      throw new Error(`${(err as Error).message}: ${missing.length} unfinished, e.g. ${missing.slice(0, 5).join(',')} -> ${vals.map((v) => v?.slice(0, 200)).join(' | ')}`);
    });
    return out;
  } finally {
    r.disconnect();
  }
}

/** Every event in the spool of a sidecar data dir, in seq order. */
export async function ledgerEvents(dataDir: string): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const rec of Spool.read(dataDir)) out.push(rec.event);
  return out;
}

/** Celery records of the given kinds, grouped by task id. */
export function celeryByTask(events: WardenEvent[], kinds: readonly string[]): Map<string, WardenEvent[]> {
  const m = new Map<string, WardenEvent[]>();
  for (const e of events) if (e.source === 'celery' && kinds.includes(e.kind)) m.set(e.job_id!, [...(m.get(e.job_id!) ?? []), e]);
  return m;
}
