/**
 * Worker overhead: what do Warden's in-process hooks cost a BullMQ worker, next to BullMQ's own
 * OpenTelemetry telemetry?
 *
 *   npm run bench -- worker-overhead
 *
 * Three variants, same jobs (N = 10 000 per run, ~200-byte data), same concurrency (100), one private Redis:
 * - plain:    `new Queue` / `new Worker(name, fn)`;
 * - warden:   `withWarden(new Queue(...))` / `new Worker(name, wardenProcessor(fn))` (warden/bullmq);
 * - warden-context: the same with `wardenProcessor(fn, { span: false })` (context only, no worker span);
 * - bullmq-otel: `telemetry: new BullMQOtel()` on the Queue and the Worker (bullmq-otel 2.0.1).
 * All three run under the same OpenTelemetry setup: a BasicTracerProvider with a BatchSpanProcessor
 * into an in-memory exporter, AsyncLocalStorage context, W3C propagation (plain makes no spans).
 *
 * Each repetition runs the four variants in an order from a Williams design (interleaved, so drift
 * in machine load hits all of them alike; over every 4 repetitions each variant follows each other
 * variant once, so none always pays for the garbage and the warm or cold state its one predecessor
 * leaves: with a plain rotation warden-context always ran right after warden's 10 000 spans were
 * released); each measures the producer (addBulk of N jobs, jobs/s) and then the
 * workers (N jobs processed from the full queue, jobs/s). Redis is flushed between runs. Reported:
 * per-variant median rates, and the median over repetitions of each variant's ratio to plain measured
 * in the same repetition; and the CPU time per job of the worker process (process.cpuUsage) and of
 * redis-server (/proc), which other load on the machine disturbs far less than wall time.
 */
import { createRequire } from 'node:module';
import * as api19 from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { Queue, Worker, type Job } from 'bullmq';
import { BullMQOtel } from 'bullmq-otel';
import { Redis } from 'ioredis';
import { wardenProcessor, withWarden } from '../hooks/bullmq/index.js';
import { startRedis } from '../test/harness/index.js';
import { readProc } from './lib/proc-sampler.js';
import { DEFAULT_OPTIONS, fmt, median, perSecond, printSummary, ratio, round, scaled, type ScenarioOptions, type ScenarioResult } from './lib/report.js';

const VARIANTS = ['plain', 'warden', 'warden-context', 'bullmq-otel'] as const;
type Variant = (typeof VARIANTS)[number];
const CONCURRENCY = 100;

const DATA = { docId: 'doc-1', prompt: 'Summarize the quarterly report for the board, in three bullet points.', user: 'someone@example.com', model: { name: 'llm-x', version: '7' } };

/**
 * bullmq-otel 2.0.1 depends on @opentelemetry/api ^1.9.1 and so gets its own copy, 1.10. An API reads
 * the global provider only when it was registered by the same or a newer minor version: registered
 * through Warden's 1.9, bullmq-otel's 1.10 sees none and makes no spans at all (measured). Registering
 * through the newest copy serves both (1.9 accepts a provider registered by 1.10).
 */
function newestOtelApi(): typeof api19 {
  try {
    return createRequire(createRequire(import.meta.url).resolve('bullmq-otel'))('@opentelemetry/api') as typeof api19;
  } catch {
    return api19;
  }
}

/** The job's work: a little CPU, like a real processor that parses and formats something. */
async function work(job: Job): Promise<{ ok: boolean; n: number }> {
  return { ok: true, n: JSON.stringify(job.data).length };
}

/**
 * Row `r` of a Williams design for `n` (even) treatments: the first row is 0, 1, n-1, 2, n-2, ...
 * and row r adds r to each entry (mod n). Over n consecutive rows every treatment comes right after
 * every other exactly once (first-order carry-over balanced), unlike a plain rotation, where each
 * treatment always has the same predecessor.
 */
export function williamsRow(r: number, n: number): number[] {
  const first = Array.from({ length: n }, (_, j) => (j === 0 ? 0 : j % 2 === 1 ? (j + 1) / 2 : n - j / 2));
  return first.map((x) => (x + r) % n);
}

interface RunFigures { produceMs: number; processMs: number; workerCpuMicros: number; redisCpuMicros: number }

async function runOnce(variant: Variant, connection: object, queueName: string, n: number, redisPid?: number): Promise<RunFigures> {
  const telemetry = variant === 'bullmq-otel' ? new BullMQOtel({ tracerName: 'bullmq-bench' }) : undefined;
  const base = new Queue(queueName, { connection, telemetry });
  const queue = variant === 'warden' || variant === 'warden-context' ? withWarden(base, { model: 'llm-x', model_version: '7' }) : base;
  await queue.waitUntilReady();
  const t0 = performance.now();
  for (let i = 0; i < n; i += 1000) {
    await queue.addBulk(Array.from({ length: Math.min(1000, n - i) }, () => ({ name: 'summarize', data: DATA })));
  }
  const produceMs = performance.now() - t0;

  let done = 0;
  let resolveDone!: () => void;
  const allDone = new Promise<void>((r) => { resolveDone = r; });
  const processor = variant === 'warden' ? wardenProcessor(work) : variant === 'warden-context' ? wardenProcessor(work, { span: false }) : work;
  const redis0 = redisPid ? readProc(redisPid) : null;
  const cpu0 = process.cpuUsage();
  const t1 = performance.now();
  const worker = new Worker(queueName, processor, { connection, concurrency: CONCURRENCY, telemetry });
  worker.on('completed', () => { if (++done === n) resolveDone(); });
  await allDone;
  const processMs = performance.now() - t1;
  const cpu = process.cpuUsage(cpu0);
  const redis1 = redisPid ? readProc(redisPid) : null;
  await worker.close();
  await queue.close();
  return {
    produceMs,
    processMs,
    workerCpuMicros: cpu.user + cpu.system,
    redisCpuMicros: redis0 && redis1 ? (redis1.cpuSeconds - redis0.cpuSeconds) * 1e6 : 0,
  };
}

export async function run(opts: ScenarioOptions = DEFAULT_OPTIONS): Promise<ScenarioResult> {
  // Many short interleaved repetitions: other work on a shared machine comes and goes within seconds,
  // and a median over 7 same-moment ratios shrugs off a repetition it disturbed.
  const n = scaled(10_000, opts, 200);
  const reps = opts.scale >= 0.5 ? 8 : 1;
  const log = opts.log;

  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: 100_000, maxExportBatchSize: 2048, scheduledDelayMillis: 200 })],
  });
  const { trace, context, propagation } = newestOtelApi();
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());

  const redis = await startRedis();
  const admin = new Redis(redis.url);
  const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
  const produce: Record<Variant, number[]> = { plain: [], warden: [], 'warden-context': [], 'bullmq-otel': [] };
  const process_: Record<Variant, number[]> = { plain: [], warden: [], 'warden-context': [], 'bullmq-otel': [] };
  const spans: Record<Variant, number> = { plain: 0, warden: 0, 'warden-context': 0, 'bullmq-otel': 0 };
  // CPU time per job of this (the worker's) process and of redis-server: far less sensitive than wall
  // time to what else the machine runs, and what a CPU-bound worker's throughput is made of.
  const cpuPerJob: Record<Variant, number[]> = { plain: [], warden: [], 'warden-context': [], 'bullmq-otel': [] };
  const redisCpuPerJob: Record<Variant, number[]> = { plain: [], warden: [], 'warden-context': [], 'bullmq-otel': [] };
  try {
    log(`${n} jobs per run, concurrency ${CONCURRENCY}, ${reps} repetition(s), variants in a Williams-design order`);
    await runOnce('plain', connection, 'warmup', Math.min(n, 2000)); // JIT, connections, Lua script load
    await admin.flushall();
    for (let rep = 0; rep < reps; rep++) {
      const order = williamsRow(rep, VARIANTS.length).map((i) => VARIANTS[i]);
      for (const v of order) {
        const r = await runOnce(v, connection, `wo-${rep}-${v}`, n, redis.pid);
        cpuPerJob[v].push(round(r.workerCpuMicros / n, 1));
        redisCpuPerJob[v].push(round(r.redisCpuMicros / n, 1));
        await provider.forceFlush();
        spans[v] += exporter.getFinishedSpans().length;
        exporter.reset();
        await admin.flushall();
        produce[v].push(perSecond(n, r.produceMs));
        process_[v].push(perSecond(n, r.processMs));
        log(`  rep ${rep + 1} ${v.padEnd(14)} add ${fmt(perSecond(n, r.produceMs)).padStart(7)} jobs/s   process ${fmt(perSecond(n, r.processMs)).padStart(7)} jobs/s, worker CPU ${round(r.workerCpuMicros / n, 1)} µs/job, redis ${round(r.redisCpuMicros / n, 1)} µs/job`);
      }
    }
  } finally {
    admin.disconnect();
    await redis.dispose();
    await provider.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();
  }

  /** A variant's median worker CPU per job, as printed (an even count of runs averages the middle two). */
  const medianCpu = (v: Variant) => round(median(cpuPerJob[v]), 1);
  // Ratio per repetition (same moment of the machine), then the median across repetitions.
  const ratioMedian = (series: Record<Variant, number[]>, v: Variant) => round(median(series[v].map((x, i) => x / series.plain[i])), 3);
  const ratios = {
    'warden/plain process': ratioMedian(process_, 'warden'),
    'bullmq-otel/plain process': ratioMedian(process_, 'bullmq-otel'),
    'warden/bullmq-otel process': ratio(median(process_.warden), median(process_['bullmq-otel'])),
    'plain/warden worker CPU per job': round(median(cpuPerJob.plain) / median(cpuPerJob.warden), 3),
    'warden-context/plain process': ratioMedian(process_, 'warden-context'),
    'plain/warden-context worker CPU per job': round(median(cpuPerJob.plain) / median(cpuPerJob['warden-context']), 3),
    'plain/bullmq-otel worker CPU per job': round(median(cpuPerJob.plain) / median(cpuPerJob['bullmq-otel']), 3),
    'warden/plain add': ratioMedian(produce, 'warden'),
    'bullmq-otel/plain add': ratioMedian(produce, 'bullmq-otel'),
  };
  const figures = {
    jobsPerRun: n,
    concurrency: CONCURRENCY,
    repetitions: reps,
    processJobsPerSec: Object.fromEntries(VARIANTS.map((v) => [v, Math.round(median(process_[v]))])),
    addJobsPerSec: Object.fromEntries(VARIANTS.map((v) => [v, Math.round(median(produce[v]))])),
    processRuns: process_,
    addRuns: produce,
    spansPerJob: Object.fromEntries(VARIANTS.map((v) => [v, round(spans[v] / (n * reps), 2)])),
    workerCpuMicrosPerJob: Object.fromEntries(VARIANTS.map((v) => [v, medianCpu(v)])),
    redisCpuMicrosPerJob: Object.fromEntries(VARIANTS.map((v) => [v, round(median(redisCpuPerJob[v]), 1)])),
    // Worker time each job costs beyond plain, from the median rates (a no-op processor: the worst case).
    addedMicrosPerJob: Object.fromEntries(VARIANTS.filter((v) => v !== 'plain').map((v) => [v, round(1e6 / median(process_[v]) - 1e6 / median(process_.plain), 1)])),
  };
  for (const v of VARIANTS) {
    log(`${v.padEnd(14)} median: add ${fmt(figures.addJobsPerSec[v]).padStart(7)} jobs/s, process ${fmt(figures.processJobsPerSec[v]).padStart(7)} jobs/s, worker CPU ${figures.workerCpuMicrosPerJob[v]} µs/job, ${figures.spansPerJob[v]} spans/job`);
  }
  const result: ScenarioResult = {
    figures,
    ratios,
    targets: [
      {
        target: "Warden's hooks keep >= 0.95 of plain worker throughput",
        met: ratios['warden/plain process'] >= 0.95,
        detail: `warden/plain process = ${ratios['warden/plain process']}`,
      },
      {
        target: "Warden's hooks cost less than bullmq-otel",
        met: ratios['warden/plain process'] > ratios['bullmq-otel/plain process'],
        detail: `warden/plain ${ratios['warden/plain process']} vs bullmq-otel/plain ${ratios['bullmq-otel/plain process']}`,
      },
      {
        target: "same two targets judged on worker CPU per job (robust to other load): plain/warden >= 0.95 and warden cheaper than bullmq-otel",
        met: ratios['plain/warden worker CPU per job'] >= 0.95 && ratios['plain/warden worker CPU per job'] > ratios['plain/bullmq-otel worker CPU per job'],
        detail: `worker CPU per job: plain ${medianCpu('plain')} µs, warden ${medianCpu('warden')} µs, bullmq-otel ${medianCpu('bullmq-otel')} µs`,
      },
      {
        target: "context-only hooks (wardenProcessor(fn, { span: false })) keep >= 0.95 of plain worker CPU per job",
        met: ratios['plain/warden-context worker CPU per job'] >= 0.95,
        detail: `worker CPU per job: plain ${medianCpu('plain')} µs, warden-context ${medianCpu('warden-context')} µs (process ratio ${ratios['warden-context/plain process']})`,
      },
    ],
    notes: [
      'process = jobs/s of workers draining a full queue; add = jobs/s of Queue.addBulk (1000 per call) with the variant\'s producer side',
      'same OpenTelemetry SDK for every variant: BasicTracerProvider + BatchSpanProcessor into an InMemorySpanExporter',
      'bullmq-otel 2.0.1 brings its own @opentelemetry/api 1.10; a provider registered through api 1.9 is invisible to it (no spans). The SDK is registered through the 1.10 copy so both instrumentations trace',
    ],
  };
  printSummary(result, log);
  return result;
}
