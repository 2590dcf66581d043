/** Shared pieces for tests that run real BullMQ workloads against a harness Redis. */
import { Queue, Worker, type Job } from 'bullmq';
import { BullMQCollector, type CollectedBatch } from '../../collectors/bullmq/collector.js';
import type { WardenEvent } from '../../core/event.js';
import { DEFAULT_INPUT_LIMITS } from '../../core/input.js';
import { Redactor } from '../../core/redact.js';
import { rng } from './random.js';

export const connectionFor = (url: string) => {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port), maxRetriesPerRequest: null };
};

export { rng };

export interface Workload {
  queues: Queue[];
  workers: Worker[];
  jobIds: Map<string, string[]>;
  close(): Promise<void>;
}

/** Plain BullMQ producers and workers: random failures, retries with backoff, a few jobs that exhaust attempts. */
export async function runWorkload(url: string, opts: { queues: string[]; jobsPerQueue: number; seed: number; failRate: number; prefix?: string; workMs?: number; queueOpts?: Record<string, unknown> }): Promise<Workload> {
  const connection = connectionFor(url);
  const random = rng(opts.seed);
  const failPlan = new Map<string, number>(); // job key -> attempts that fail
  const queues = opts.queues.map((n) => new Queue(n, { connection, prefix: opts.prefix, ...opts.queueOpts }));
  const workers = opts.queues.map((n) => new Worker(n, async (job: Job) => {
    if (opts.workMs) await new Promise((r) => setTimeout(r, opts.workMs! * (0.5 + Math.random())));
    const fails = failPlan.get(`${n}:${job.id}`) ?? 0;
    if (job.attemptsMade < fails) throw new Error(`planned failure ${job.attemptsMade + 1} for ${job.data.user}`);
    return { ok: true, n: job.data.i };
  }, { connection, prefix: opts.prefix, concurrency: 8 }));
  const jobIds = new Map<string, string[]>();
  for (const q of queues) {
    const ids: string[] = [];
    const bulk = Array.from({ length: opts.jobsPerQueue }, (_, i) => ({
      name: i % 3 === 0 ? 'summarize' : 'classify',
      data: { i, user: `person${i}@example.com`, apiKey: 'sk-live-abcdefghijklmnopqrstuv' },
      opts: { attempts: 3, backoff: { type: 'fixed', delay: 5 } },
    }));
    const added = await q.addBulk(bulk);
    for (const job of added) {
      const r = random();
      failPlan.set(`${q.name}:${job.id}`, r < opts.failRate / 3 ? 3 : r < opts.failRate ? 1 + Math.floor(random() * 2) : 0);
      ids.push(job.id!);
    }
    jobIds.set(q.name, ids);
  }
  return {
    queues, workers, jobIds,
    async close() {
      await Promise.all(workers.map((w) => w.close()));
      await Promise.all(queues.map((q) => q.close()));
    },
  };
}

/** Waits until every job of the workload is completed or failed in BullMQ. */
export async function waitFinished(w: Workload, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await Promise.all(w.queues.map((q) => q.getJobCounts('completed', 'failed')));
    const done = counts.reduce((a, c) => a + c.completed + c.failed, 0);
    const total = [...w.jobIds.values()].reduce((a, ids) => a + ids.length, 0);
    if (done >= total) return;
    if (Date.now() > deadline) throw new Error(`workload did not finish: ${done}/${total}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A collector whose sink keeps events in memory (the ledger is tested on its own). */
export function memoryCollector(url: string, queues: string[], extra: Partial<ConstructorParameters<typeof BullMQCollector>[0]> = {}) {
  const events: WardenEvent[] = [];
  const batches: CollectedBatch[] = [];
  const collector = new BullMQCollector({
    redisUrl: url, prefix: 'bull', queues, discoverIntervalMs: 200, countsIntervalMs: 200, batchSize: 500, blockMs: 100,
    startFrom: 'earliest', metadata: {}, queueMetadata: {}, redactor: new Redactor(), inputLimits: DEFAULT_INPUT_LIMITS,
    positions: new Map(), hasTerminal: () => false,
    sink: async (b) => { batches.push(...b); for (const x of b) events.push(...x.events); },
    ...extra,
  });
  return { collector, events, batches };
}

export { until } from './index.js';
