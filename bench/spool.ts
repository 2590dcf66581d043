/**
 * Spool throughput and commit latency, against the raw sha256 rate of the same bytes.
 *
 *   npm run build && node dist/bench/spool.js [records per run, default 100000]
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
import { canonicalJson, makeEvent, type WardenEvent } from '../collectors/event.js';
import canonicalizeModule from 'canonicalize';

const reference = canonicalizeModule as unknown as (value: unknown) => string | undefined;
import { GENESIS_HASH, sha256Hex } from '../ledger/record.js';
import { Spool } from '../ledger/spool.js';

const N = Number(process.argv[2] ?? 100_000);

function makeEvents(n: number): WardenEvent[] {
  const ts = Date.now();
  return Array.from({ length: n }, (_, i) => makeEvent({
    kind: 'job.completed', source: 'bullmq', ts: ts + i, correlation_id: `wc_01J0BENCH${i % 1000}`, queue: 'emails',
    job_id: String(100_000 + i), job_name: 'send-welcome', attempt: 1, duration_ms: 12.5,
    attrs: { tenant: 'acme' },
  }));
}

function rate(n: number, ms: number): string {
  return `${Math.round((n / ms) * 1000).toLocaleString('en-US')}/s`;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Chained sha256 over exactly the bytes the spool hashes: prev \n seq \n canonical event. */
function rawSha(jsons: string[]): number {
  const t = performance.now();
  let prev = GENESIS_HASH;
  for (let i = 0; i < jsons.length; i++) prev = sha256Hex(`${prev}\n${i + 1}\n${jsons[i]}`);
  return performance.now() - t;
}

async function spoolRun(events: WardenEvent[], producers: number, batch: number, fsync: boolean) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'warden-bench-'));
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
  const ms = performance.now() - t;
  const stats = spool.stats();
  await spool.close();
  await fs.rm(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return { ms, stats, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

/**
 * Open loop, like a collector that keeps reading its source while earlier appends commit: one
 * producer appends `batch` events at a time without waiting, with at most `window` records in flight.
 */
async function openLoopRun(events: WardenEvent[], batch: number, window: number) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'warden-bench-'));
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
  const ms = performance.now() - t;
  const stats = spool.stats();
  await spool.close();
  await fs.rm(dir, { recursive: true, force: true });
  latencies.sort((a, b) => a - b);
  return { ms, stats, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function main(): Promise<void> {
  const events = makeEvents(N);
  const jsons = events.map(canonicalJson);
  const avg = Math.round(jsons.reduce((n, j) => n + Buffer.byteLength(j), 0) / N);
  console.log(`node ${process.version}, ${os.cpus().length} cpus, ${N} events of ~${avg} bytes (canonical JSON), tmp=${os.tmpdir()}`);

  rawSha(jsons); // warm up
  const shaMs = rawSha(jsons);
  console.log(`raw chained sha256 of the same bytes:        ${rate(N, shaMs)}`);
  let t = performance.now();
  for (const e of events) reference(e);
  console.log(`canonicalize (RFC 8785 reference) alone:     ${rate(N, performance.now() - t)}`);
  t = performance.now();
  for (const e of events) canonicalJson(e);
  console.log(`canonicalJson (Warden's encoder) alone:      ${rate(N, performance.now() - t)}`);

  await spoolRun(events.slice(0, 20_000), 16, 16, true); // warm up
  const runs: [number, number, boolean][] = [[256, 1, true], [64, 16, true], [8, 256, true], [64, 16, false]];
  for (const [producers, batch, fsync] of runs) {
    const r = await spoolRun(events, producers, batch, fsync);
    const perFlush = Math.round(r.stats.records / r.stats.flushes);
    console.log(
      `spool ${fsync ? 'fsync   ' : 'no fsync'} ${String(producers).padStart(3)} producers x ${String(batch).padStart(3)}/append: ` +
        `${rate(N, r.ms).padStart(10)}  commit p50 ${r.p50.toFixed(2)} ms  p99 ${r.p99.toFixed(2)} ms  ` +
        `(${r.stats.flushes} commits, ~${perFlush} records each; ${(r.stats.bytes / 1e6).toFixed(1)} MB)`,
    );
  }
  const r = await openLoopRun(events, 16, 8192);
  console.log(
    `spool fsync   open loop, 16/append, <= 8192 in flight: ${rate(N, r.ms).padStart(10)}  commit p50 ${r.p50.toFixed(2)} ms  ` +
      `p99 ${r.p99.toFixed(2)} ms  (${r.stats.flushes} commits, ~${Math.round(r.stats.records / r.stats.flushes)} records each)`,
  );
}

await main();
