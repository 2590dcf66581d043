/**
 * verify's worker threads, kept warm between verifies. Starting a worker costs ~30 ms of CPU and its
 * code another 30-50 ms to warm up, a third of what a 100 000-record verify spends on its own; a
 * process that verifies again (the sidecar's self-verify and `/v1/ledger/verify`, a bench) reuses the
 * workers of the last verify if it comes within IDLE_MS. Idle workers are unref'd (they never keep a
 * process alive) and end on their own after IDLE_MS. A worker is only given back after it answered
 * every part it was sent, so a reused worker never carries a stale reply.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';

const IDLE_MS = 30_000;
/** Cores this process may use: verify's default thread count, and the most idle workers kept. */
export const CORES = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
const MAX_IDLE = CORES;

const idle = new Map<string, Worker[]>();
let timer: NodeJS.Timeout | undefined;

/** A worker running `script`: a warm idle one when there is one, else a new one (may throw). */
export function takeWorker(script: URL): Worker {
  const w = idle.get(script.href)?.pop();
  if (!w) return new Worker(script);
  w.removeAllListeners('error');
  w.removeAllListeners('exit');
  w.ref();
  return w;
}

/** Hands back a worker with nothing in flight; it waits unref'd for the next verify, or ends after IDLE_MS. */
export function giveWorker(script: URL, w: Worker): void {
  const list = idle.get(script.href) ?? [];
  idle.set(script.href, list);
  if (list.length >= MAX_IDLE) {
    void w.terminate().catch(() => undefined);
    return;
  }
  w.removeAllListeners('message');
  w.removeAllListeners('error');
  w.removeAllListeners('exit');
  const drop = () => {
    const i = list.indexOf(w);
    if (i >= 0) list.splice(i, 1);
  };
  w.on('error', drop);
  w.on('exit', drop);
  w.unref();
  list.push(w);
  if (timer) clearTimeout(timer);
  timer = setTimeout(endIdleWorkers, IDLE_MS);
  timer.unref();
}

/** The thread IDs of the idle workers (tests). */
export function idleWorkerIds(): number[] {
  return [...idle.values()].flatMap((list) => list.map((w) => w.threadId));
}

/** Ends every idle worker now. */
export function endIdleWorkers(): Promise<void> {
  if (timer) clearTimeout(timer);
  timer = undefined;
  const all = [...idle.values()].flatMap((list) => list.splice(0));
  return Promise.all(all.map((w) => w.terminate().catch(() => undefined))).then(() => undefined);
}
