/**
 * Spool throughput and commit latency, against the raw sha256 rate of the same bytes: the
 * measurements the `ledger` scenario (ledger.ts) runs.
 *
 * Each run appends the same ~500-byte events into a fresh temp directory (fsync group commit,
 * default options) and reports records/s over the whole run and the p50/p99 of the time from
 * append() to its promise resolving (= durable). Closed-loop runs (each producer waits for its
 * append) measure latency-bound throughput; the open-loop run measures capacity. The spool is
 * CPU-bound (canonical JSON, then sha256) on one thread, so results vary with whatever else the
 * machine is doing: run it on an idle machine.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeEvent, type WardenEvent } from '../core/event.js';
import { GENESIS_HASH, sha256Hex } from '../ledger/spool/record.js';
import { Spool } from '../ledger/spool/spool.js';
import { percentile } from './lib/report.js';

export function makeEvents(n: number): WardenEvent[] {
  const ts = Date.now();
  return Array.from({ length: n }, (_, i) => makeEvent({
    kind: 'job.completed', source: 'bullmq', ts: ts + i, correlation_id: `wc_01J0BENCH${i % 1000}`, queue: 'emails',
    job_id: String(100_000 + i), job_name: 'send-welcome', attempt: 1, duration_ms: 12.5,
    attrs: { tenant: 'acme' },
  }));
}

/** Chained sha256 over exactly the bytes the spool hashes: prev \n seq \n canonical event. */
export function rawSha(jsons: string[]): number {
  const t = performance.now();
  let prev = GENESIS_HASH;
  for (let i = 0; i < jsons.length; i++) prev = sha256Hex(`${prev}\n${i + 1}\n${jsons[i]}`);
  return performance.now() - t;
}

/** `keepIn`: write into this directory and keep it (for verify and shipping); else a temp dir, removed after. */
export async function spoolRun(events: WardenEvent[], producers: number, batch: number, fsync: boolean, keepIn?: string) {
  const dir = keepIn ?? await fs.mkdtemp(path.join(os.tmpdir(), 'warden-bench-'));
  const spool = await Spool.open({ dir, fsync });
  const latencies: number[] = [];
  let next = 0;
  const t = performance.now();
  await Promise.all(Array.from({ length: producers }, async () => {
    while (next < events.length) {
      const chunk = events.slice(next, next + batch);
      next += chunk.length;
      const t0 = performance.now();
      await spool.append(chunk);
      latencies.push(performance.now() - t0);
    }
  }));
  return finishRun(spool, t, latencies, dir, keepIn);
}

/** Closes the spool and summarizes a run: elapsed time, commit stats and append-latency percentiles. */
async function finishRun(spool: Spool, t: number, latencies: number[], dir: string, keepIn?: string) {
  const ms = performance.now() - t;
  const stats = spool.stats();
  await spool.close();
  if (!keepIn) await fs.rm(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return { ms, stats, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

/**
 * Open loop, like a collector that keeps reading its source while earlier appends commit: one
 * producer appends `batch` events at a time without waiting, with at most `window` records in flight.
 */
export async function openLoopRun(events: WardenEvent[], batch: number, window: number, keepIn?: string) {
  const dir = keepIn ?? await fs.mkdtemp(path.join(os.tmpdir(), 'warden-bench-'));
  const spool = await Spool.open({ dir });
  const latencies: number[] = [];
  const inFlight: Promise<unknown>[] = [];
  const t = performance.now();
  for (let next = 0; next < events.length; next += batch) {
    if (inFlight.length * batch >= window) await inFlight.shift();
    const t0 = performance.now();
    inFlight.push(spool.append(events.slice(next, next + batch)).then(() => latencies.push(performance.now() - t0)));
    // Yield now and then, as a producer reading from a socket would.
    if ((next / batch) % 64 === 0) await new Promise((r) => setImmediate(r));
  }
  await Promise.all(inFlight);
  return finishRun(spool, t, latencies, dir, keepIn);
}
