/**
 * Sidecar capacity: can the collector -> ledger pipeline keep up with everything BullMQ produces here?
 *
 *   npm run bench -- collector [jobs, default 20000]
 *
 * 1. Baseline: plain BullMQ workers (concurrency 100) process N jobs on a private Redis; jobs/s.
 * 2. The same stream (kept whole: maxLen raised) is then read by the real collector into the real
 *    spool (fsync group commit) with metrics; jobs/s of ledger throughput.
 * The ratio sidecar/BullMQ >= 1 means the sidecar keeps up without its lag growing.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { BullMQCollector } from '../collectors/bullmq/collector.js';
import { DEFAULT_INPUT_LIMITS } from '../collectors/input.js';
import { Redactor } from '../collectors/redact.js';
import { WardenMetrics } from '../agent/metrics.js';
import { Spool } from '../ledger/spool.js';

const N = Number(process.argv[2] ?? 20_000);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-bench-'));
  const port = await freePort();
  const redisProc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => 50 });
  probe.on('error', () => undefined); // refused until redis-server is listening: expected while polling
  for (let i = 0; i < 100; i++) { try { await probe.connect(); break; } catch { await new Promise((r) => setTimeout(r, 50)); } }
  try {
    const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
    const queue = new Queue('bench', { connection, streams: { events: { maxLen: N * 10 } } });
    await queue.waitUntilReady();
    const data = { docId: 'doc', prompt: 'Summarize the quarterly report for the board, in three bullet points.', user: 'someone@example.com' };
    for (let i = 0; i < N; i += 1000) await queue.addBulk(Array.from({ length: Math.min(1000, N - i) }, () => ({ name: 'summarize', data })));
    let done = 0;
    const t0 = performance.now();
    const finished = new Promise<void>((resolve) => {
      const worker = new Worker('bench', async () => ({ ok: true }), { connection, concurrency: 100 });
      worker.on('completed', () => { if (++done === N) void worker.close().then(resolve); });
    });
    await finished;
    const bullmqMs = performance.now() - t0;
    const entries = await probe.xlen('bull:bench:events');

    const spool = await Spool.open({ dir: path.join(dir, 'data') });
    const metrics = new WardenMetrics();
    let events = 0;
    let terminal = 0;
    let resolveDone!: () => void;
    const allIn = new Promise<void>((r) => { resolveDone = r; });
    const t1 = performance.now();
    const collector = new BullMQCollector({
      redisUrl: url, prefix: 'bull', queues: ['bench'], discoverIntervalMs: 60_000, countsIntervalMs: 60_000,
      batchSize: Number(process.env.BATCH ?? 2000), blockMs: 100, startFrom: 'earliest', metadata: {}, queueMetadata: {},
      redactor: new Redactor(), inputLimits: DEFAULT_INPUT_LIMITS, positions: new Map(), hasTerminal: () => false,
      sink: async (batches) => {
        const evs = batches.flatMap((b) => b.events);
        if (evs.length) await spool.append(evs);
        for (const e of evs) { metrics.observe(e); if (e.kind === 'job.completed') terminal++; }
        events += evs.length;
        if (terminal >= N) resolveDone();
      },
    });
    await collector.start();
    await allIn;
    const sidecarMs = performance.now() - t1;
    await collector.stop();
    await spool.close();
    await queue.close();

    const bullmqRate = (N / bullmqMs) * 1000;
    const sidecarRate = (N / sidecarMs) * 1000;
    console.log(`cores: ${os.cpus().length}; jobs: ${N}; stream entries: ${entries}; ledger records: ${events}`);
    console.log(`BullMQ plain workers (concurrency 100): ${Math.round(bullmqRate).toLocaleString('en-US')} jobs/s`);
    console.log(`sidecar collector -> spool (fsync) + metrics: ${Math.round(sidecarRate).toLocaleString('en-US')} jobs/s (${Math.round((events / sidecarMs) * 1000).toLocaleString('en-US')} records/s)`);
    console.log(`ratio sidecar / BullMQ: ${(sidecarRate / bullmqRate).toFixed(2)}  (target >= 1: keeps up)`);
  } finally {
    probe.disconnect();
    redisProc.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
