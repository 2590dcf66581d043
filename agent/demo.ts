/**
 * `warden demo`: a small AI-agent pipeline on BullMQ, so a new user sees metrics, traces and the
 * ledger fill within a minute. ingest -> embed -> model-call -> post-process, each a queue; plain
 * BullMQ producers and workers (the sidecar watches them with no code change), with random failures,
 * retries with backoff and jitter, and an optional retry storm in the model call.
 */
import { Queue, Worker, type Job } from 'bullmq';
import type { Logger } from 'pino';

export interface DemoOptions {
  redisUrl: string;
  prefix: string;
  durationSec: number;
  /** Documents ingested per second. */
  rate: number;
  /** Make the model call fail for the middle third of the run. */
  storm: boolean;
  logger: Logger;
  stopSignal?: Promise<void>;
}

export const DEMO_QUEUES = ['demo-ingest', 'demo-embed', 'demo-model-call', 'demo-post-process'] as const;

const MODELS = [
  { model: 'gpt-sim', model_version: '2026-09-01', weight: 0.8 },
  { model: 'gpt-sim', model_version: '2026-11-01', weight: 0.2 },
];

/** Passes the correlation stamp down the pipeline, as a producer using plain BullMQ would pass an ID. */
const stampOf = (job: Job) => (job.opts as Record<string, unknown>).warden;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runDemo(o: DemoOptions): Promise<{ produced: number }> {
  const u = new URL(o.redisUrl);
  const connection = { host: u.hostname, port: Number(u.port || 6379), password: u.password || undefined, maxRetriesPerRequest: null };
  const queues = Object.fromEntries(DEMO_QUEUES.map((n) => [n, new Queue(n, { connection, prefix: o.prefix })])) as Record<(typeof DEMO_QUEUES)[number], Queue>;
  const retry = { attempts: 4, backoff: { type: 'exponential', delay: 200, jitter: 0.5 } } as const;
  const start = Date.now();
  const stormFrom = start + (o.durationSec * 1000) / 3;
  const stormTo = start + (o.durationSec * 2000) / 3;
  const inStorm = () => o.storm && Date.now() >= stormFrom && Date.now() < stormTo;

  const work = (ms: number) => sleep(ms * (0.5 + Math.random()));
  const workers = [
    new Worker('demo-ingest', async (job: Job) => {
      await work(20);
      if (Math.random() < 0.05) throw new Error('document fetch timed out');
      await queues['demo-embed'].add('embed', { docId: job.data.docId, chunks: 1 + Math.floor(Math.random() * 8) }, { ...retry, warden: stampOf(job) } as never);
      return { bytes: 1000 + Math.floor(Math.random() * 9000) };
    }, { connection, prefix: o.prefix, concurrency: 10 }),
    new Worker('demo-embed', async (job: Job) => {
      await work(30);
      if (Math.random() < 0.08) throw new Error('embedding service 503');
      const m = Math.random() < MODELS[0].weight ? MODELS[0] : MODELS[1];
      await queues['demo-model-call'].add('generate', { docId: job.data.docId, prompt: `Summarize document ${job.data.docId}`, model: { name: m.model, version: m.model_version } }, { ...retry, warden: stampOf(job) } as never);
      return { vectors: job.data.chunks };
    }, { connection, prefix: o.prefix, concurrency: 10 }),
    new Worker('demo-model-call', async (job: Job) => {
      await work(80);
      if (inStorm() || Math.random() < 0.1) throw new Error(inStorm() ? 'model provider rate limited (429)' : 'model call timed out');
      const score = Math.min(1, Math.max(0, 0.8 + (Math.random() - 0.5) * 0.3));
      await queues['demo-post-process'].add('post-process', { docId: job.data.docId, score }, { ...retry, warden: stampOf(job) } as never);
      return { tokens: 200 + Math.floor(Math.random() * 800), score };
    }, { connection, prefix: o.prefix, concurrency: 20 }),
    new Worker('demo-post-process', async (job: Job) => {
      await work(10);
      if (Math.random() < 0.03) throw new Error('output failed schema validation');
      return { published: true, docId: job.data.docId };
    }, { connection, prefix: o.prefix, concurrency: 10 }),
  ];
  for (const w of workers) w.on('error', (err) => o.logger.warn({ err: err.message }, 'demo worker error'));

  let produced = 0;
  let stopped = false;
  void o.stopSignal?.then(() => { stopped = true; });
  o.logger.info({ queues: DEMO_QUEUES, durationSec: o.durationSec, rate: o.rate, storm: o.storm }, 'demo running');
  while (!stopped && Date.now() - start < o.durationSec * 1000) {
    const docId = `doc-${++produced}`;
    // Personal data in the input on purpose: the ledger shows it redacted.
    await queues['demo-ingest'].add('ingest', { docId, source: 's3://corpus/' + docId, owner: `user${produced % 7}@example.com` }, { ...retry, warden: { cid: `demo-${docId}`, model: MODELS[0].model } } as never);
    await sleep(1000 / o.rate);
  }
  // Let in-flight jobs finish their retries.
  const deadline = Date.now() + 15_000;
  while (!stopped && Date.now() < deadline) {
    const counts = await Promise.all(Object.values(queues).map((q) => q.getJobCounts('wait', 'active', 'delayed', 'prioritized')));
    if (counts.every((c) => Object.values(c).every((n) => n === 0))) break;
    await sleep(250);
  }
  await Promise.all(workers.map((w) => w.close()));
  await Promise.all(Object.values(queues).map((q) => q.close()));
  o.logger.info({ produced }, 'demo finished');
  return { produced };
}
