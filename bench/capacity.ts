/**
 * Sidecar capacity: can the sidecar keep up with everything BullMQ can produce on this machine?
 *
 *   npm run bench -- capacity
 *
 * The sidecar is the real `warden start` child process (dist/agent/cli.js): BullMQ collector ->
 * spool (fsync group commit, hash chain, signed checkpoints) -> Prometheus metrics -> spans exported
 * over OTLP/HTTP to a local sink that only counts bytes. ClickHouse shipping is off here (see the
 * ledger and outage scenarios). Its CPU (100% = one core) and RSS are read from /proc.
 *
 * Phases, one private Redis, N jobs each (the stream is kept whole: maxLen raised):
 * A. BullMQ alone: N jobs added (addBulk, 1000 per call), then plain workers (concurrency 100, a
 *    no-op processor) drain them: jobs/s and stream entries/s of each burst. The faster burst is the
 *    highest event rate BullMQ produces here.
 * B. Sidecar catch-up: the sidecar starts on that stream and turns it into records as fast as it
 *    can (nothing else runs): its sustained capacity, jobs/s and records/s, CPU and RSS.
 * C. Live at full speed: N more jobs drained by plain workers while the sidecar runs beside them
 *    (both share the cores): how far behind it falls (entries not yet read, lag seconds) and how
 *    long it needs after the workers finish.
 * D. Steady 1 000 jobs/s for a fixed time (producer paced every 50 ms, workers draining): CPU and
 *    RSS of the sidecar, entries behind.
 * Floor (after B, with the sidecar idle): what the sidecar's unavoidable work costs on its own, run in
 * this process with the sidecar's own functions: the collector's stream read (its Lua read, 2 000
 * entries at a time) over the same entries, each job's hash read twice as the collector reads it
 * (input when added, status when it ended), and the records the sidecar wrote for these jobs appended
 * again to a spool of its own (fsync, hash chain). Not in it: translation, redaction, spans, metrics,
 * policies and Merkle checkpoints. It says how much of the CPU target that work alone leaves.
 * CPU per job is reported for both sides (BullMQ: this process's producer and workers plus
 * redis-server; the sidecar: its whole catch-up): a figure other load on the machine barely moves.
 * "Keeps up" = B's entries/s >= A's fastest entries/s (the sidecar alone reads the stream at least as
 * fast as BullMQ alone writes it). Jobs/s are compared too, over a job's whole life (add + process:
 * the sidecar records all of it) and against the workers' burst alone.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { fetchSnapshots, type SnapshotRequest } from '../collectors/bullmq/job-snapshot.js';
import { eventsKey } from '../collectors/bullmq/keys.js';
import { readStreams } from '../collectors/bullmq/stream-read.js';
import { instrumentedKey } from '../core/bullmq-convention.js';
import type { WardenEvent } from '../core/event.js';
import { readRecords } from '../ledger/spool/reader.js';
import { Spool } from '../ledger/spool/spool.js';
import { startRedis } from '../test/harness/index.js';
import { openLoad } from './lib/bullmq-load.js';
import { readProc } from './lib/proc-sampler.js';
import { DEFAULT_OPTIONS, fmt, mib, perSecond, printSummary, ratio, round, scaled, sleep, type ScenarioOptions, type ScenarioResult } from './lib/report.js';
import { startSidecar, startSpanSink, sumMetric, type SidecarProcess } from './lib/sidecar.js';

const QUEUE = 'cap';

interface Progress { atMs: number; entriesRead: number; records: number; streamLen: number }

async function progress(sidecar: SidecarProcess, redis: Redis): Promise<Progress> {
  const text = await sidecar.metricsText();
  return {
    atMs: performance.now(),
    entriesRead: sumMetric(text, 'warden_collector_stream_entries_total', { queue: QUEUE }),
    records: sumMetric(text, 'warden_ledger_last_seq'),
    streamLen: await redis.xlen(`bull:${QUEUE}:events`),
  };
}

/** Polls until the sidecar has read every stream entry; returns the samples taken. */
async function untilCaughtUp(sidecar: SidecarProcess, redis: Redis, timeoutMs: number, everyMs = 200): Promise<Progress[]> {
  const samples: Progress[] = [];
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const p = await progress(sidecar, redis);
    samples.push(p);
    if (p.entriesRead >= p.streamLen && p.streamLen > 0) return samples;
    if (performance.now() > deadline) throw new Error(`sidecar did not catch up within ${timeoutMs} ms: read ${p.entriesRead} of ${p.streamLen} entries`);
    await sleep(everyMs);
  }
}

interface Floor { total: number; stream: number; snapshots: number; spool: number }

/** CPU µs per job of the floor (see the header); the records are read back outside the timed part. */
async function floorMicrosPerJob(redisUrl: string, sidecarDataDir: string, spoolDir: string, n: number, records: number): Promise<Floor> {
  const events: WardenEvent[] = [];
  for await (const r of readRecords(sidecarDataDir, { toSeq: records })) events.push(r.event);
  const redis = new Redis(redisUrl);
  const spool = await Spool.open({ dir: spoolDir, fsync: true });
  // CPU µs per job of one step (process.cpuUsage(previous) is the usage since that reading).
  const cpuOf = async (step: () => Promise<void>): Promise<number> => {
    const c0 = process.cpuUsage();
    await step();
    const c = process.cpuUsage(c0);
    return round((c.user + c.system) / n, 1);
  };
  try {
    const jobs: string[] = [];
    const stream = await cpuOf(async () => {
      const seen = new Set<string>();
      for (let after = '0-0'; ;) {
        const [r] = await readStreams(redis, [{ key: eventsKey('bull', QUEUE), marker: instrumentedKey('bull', QUEUE), after }], 2000);
        if (r instanceof Error) throw r;
        for (const e of r.entries) {
          const id = e.fields.jobId;
          if (id && !seen.has(id)) { seen.add(id); jobs.push(id); }
        }
        if (r.entries.length < 2000) break;
        after = r.entries[r.entries.length - 1].id;
      }
    });
    const snapshots = await cpuOf(async () => {
      for (let i = 0; i < jobs.length; i += 1000) {
        const reqs: SnapshotRequest[] = jobs.slice(i, i + 1000).flatMap((jobId) => [
          { queue: QUEUE, jobId, withData: true },
          { queue: QUEUE, jobId, withData: false, statusOnly: true },
        ]);
        await fetchSnapshots(redis, 'bull', reqs);
      }
    });
    const spooled = await cpuOf(async () => {
      for (let i = 0; i < events.length; i += 2000) await spool.append(events.slice(i, i + 2000));
    });
    return { stream, snapshots, spool: spooled, total: round(stream + snapshots + spooled, 1) };
  } finally {
    redis.disconnect();
    await spool.close();
  }
}

export async function run(opts: ScenarioOptions = DEFAULT_OPTIONS): Promise<ScenarioResult> {
  const log = opts.log;
  const n = scaled(20_000, opts, 300);
  const steadySeconds = Math.max(2, Math.round(15 * Math.min(1, opts.scale * 2)));
  const redis = await startRedis();
  const admin = new Redis(redis.url);
  const sink = await startSpanSink();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-bench-capacity-'));
  const load = await openLoad(redis.port, QUEUE, n * 20 + 100_000);
  let sidecar: SidecarProcess | undefined;
  try {
    // A. BullMQ alone: the producer's burst, then the workers' burst.
    const redisCpu0 = readProc(redis.pid!)?.cpuSeconds ?? 0;
    const benchCpu0 = process.cpuUsage();
    const tAdd = performance.now();
    await load.add(n);
    const addMs = performance.now() - tAdd;
    const entriesAdded = await admin.xlen(`bull:${QUEUE}:events`);
    const bullmqMs = await load.drain(n);
    // CPU BullMQ spent on these jobs' whole life: this process (producer + workers) and redis-server.
    const bench = process.cpuUsage(benchCpu0);
    const bullmqCpuMicrosPerJob = round(((bench.user + bench.system) + ((readProc(redis.pid!)?.cpuSeconds ?? 0) - redisCpu0) * 1e6) / n, 1);
    const entriesA = (await admin.xlen(`bull:${QUEUE}:events`)) - entriesAdded;
    const bullmqJobs = perSecond(n, bullmqMs);
    const bullmqEntries = Math.max(perSecond(entriesA, bullmqMs), perSecond(entriesAdded, addMs));
    const bullmqLifecycleJobs = perSecond(n, addMs + bullmqMs);
    log(`A. BullMQ alone: add ${fmt(perSecond(n, addMs))} jobs/s (${fmt(perSecond(entriesAdded, addMs))} entries/s), workers (concurrency 100, no-op) ${fmt(bullmqJobs)} jobs/s (${fmt(perSecond(entriesA, bullmqMs))} entries/s); whole life (add + process) ${fmt(bullmqLifecycleJobs)} jobs/s`);

    // B. Sidecar catch-up on that stream.
    sidecar = await startSidecar({ redisUrl: redis.url, dir, queues: [QUEUE], otlp: sink.url });
    const healthy: Progress = { atMs: performance.now(), entriesRead: 0, records: 0, streamLen: 0 };
    const cpuB = sidecar.sampler();
    const samplesB = await untilCaughtUp(sidecar, admin, 300_000, 100);
    const b = cpuB.stop();
    // Rate over the window where records were flowing (excludes process start and queue discovery);
    // when it caught up before a second sample (tiny runs), from the moment it answered /healthz.
    const lastB = samplesB[samplesB.length - 1];
    const firstB = samplesB.find((s) => s.records > 0 && s !== lastB) ?? healthy;
    const recordsB = lastB.records;
    const bMs = Math.max(1, lastB.atMs - firstB.atMs);
    const sidecarRecords = perSecond(lastB.records - firstB.records, bMs);
    const recordsPerJob = recordsB / n;
    const sidecarJobs = Math.round(sidecarRecords / recordsPerJob);
    const sidecarEntries = perSecond(lastB.entriesRead - firstB.entriesRead, bMs);
    // Its CPU per job over the whole catch-up (start-up included, so slightly pessimistic).
    const sidecarCpuMicrosPerJob = round((b.cpuPercent / 100) * b.seconds * 1e6 / n, 1);
    log(`   CPU per job: BullMQ (producer + workers + redis-server) ${bullmqCpuMicrosPerJob} µs, sidecar ${sidecarCpuMicrosPerJob} µs`);
    log(`B. sidecar catch-up: ${fmt(sidecarJobs)} jobs/s = ${fmt(sidecarRecords)} records/s (${round(recordsPerJob, 2)} records/job), ${fmt(sidecarEntries)} entries/s; CPU ${round(b.cpuPercent, 0)}%, RSS max ${mib(b.rssMaxBytes)} MiB`);

    // Floor: the same entries, job hashes and records, through the sidecar's own read and append code only.
    const floor = await floorMicrosPerJob(redis.url, sidecar.dataDir, path.join(dir, 'floor'), n, recordsB);
    log(`   floor (stream read + 2 job-hash reads + spool append of its ${fmt(recordsB)} records, in this process): ${floor.total} µs per job (stream ${floor.stream}, job hashes ${floor.snapshots}, spool ${floor.spool})`);

    // C. Live, both at full speed on the same cores.
    await load.add(n);
    const cpuC = sidecar.sampler();
    const samplesC: Progress[] = [];
    let sampling = true;
    const poller = (async () => { while (sampling) { samplesC.push(await progress(sidecar!, admin)); await sleep(200); } })();
    const liveMs = await load.drain(n);
    const workersDone = performance.now();
    sampling = false;
    await poller;
    const tail = await untilCaughtUp(sidecar, admin, 300_000, 50);
    const catchUpMs = tail[tail.length - 1].atMs - workersDone;
    const c = cpuC.stop();
    const behind = samplesC.map((s) => s.streamLen - s.entriesRead);
    const behindMax = Math.max(0, ...behind);
    const lagSecondsMax = round(behindMax / Math.max(1, sidecarEntries), 2);
    const liveJobs = perSecond(n, liveMs);
    log(`C. live at full speed: BullMQ ${fmt(liveJobs)} jobs/s beside the sidecar; sidecar at most ${fmt(behindMax)} entries behind (~${lagSecondsMax} s of its rate), caught up ${fmt(catchUpMs)} ms after the workers finished; CPU ${round(c.cpuPercent, 0)}%, RSS max ${mib(c.rssMaxBytes)} MiB`);

    // D. Steady 1 000 jobs/s.
    const draining = load.drain(Number.MAX_SAFE_INTEGER); // workers for the whole phase; closed by load.close()
    void draining.catch(() => undefined);
    await sleep(300);
    const cpuD = sidecar.sampler();
    const samplesD: Progress[] = [];
    const t0 = performance.now();
    let added = 0;
    for (let tick = 1; performance.now() - t0 < steadySeconds * 1000; tick++) {
      await load.queue.addBulk(Array.from({ length: 50 }, () => ({ name: 'summarize', data: { docId: 'doc', prompt: 'steady', user: 'someone@example.com' } })));
      added += 50;
      if (tick % 10 === 0) samplesD.push(await progress(sidecar, admin));
      const wait = t0 + tick * 50 - performance.now();
      if (wait > 0) await sleep(wait);
    }
    const steadyMs = performance.now() - t0;
    const d = cpuD.stop();
    const tailD = await untilCaughtUp(sidecar, admin, 120_000, 50);
    const catchUpD = Math.max(0, tailD[tailD.length - 1].atMs - (t0 + steadyMs));
    const behindD = Math.max(0, ...samplesD.map((s) => s.streamLen - s.entriesRead));
    const steadyRate = perSecond(added, steadyMs);
    log(`D. steady ${fmt(steadyRate)} jobs/s for ${round(steadyMs / 1000, 1)} s: sidecar CPU ${round(d.cpuPercent, 0)}%, RSS max ${mib(d.rssMaxBytes)} MiB, at most ${fmt(behindD)} entries behind (caught up ${fmt(catchUpD)} ms after the last add)`);

    const spanBytes = sink.bytes();
    const result: ScenarioResult = {
      figures: {
        sidecar: 'warden start child process (dist/agent/cli.js); ClickHouse shipping off; spans exported to a local OTLP/HTTP sink',
        jobsPerPhase: n,
        recordsPerJob: round(recordsPerJob, 2),
        bullmqAlone: { addJobsPerSec: perSecond(n, addMs), processJobsPerSec: bullmqJobs, lifecycleJobsPerSec: bullmqLifecycleJobs, maxEntriesPerSec: bullmqEntries },
        cpuMicrosPerJob: { bullmqProducerWorkersAndRedis: bullmqCpuMicrosPerJob, sidecar: sidecarCpuMicrosPerJob, floor: floor.total },
        floorMicrosPerJob: floor,
        sidecarCatchUp: { jobsPerSec: sidecarJobs, recordsPerSec: sidecarRecords, entriesPerSec: sidecarEntries, cpuPercent: round(b.cpuPercent, 0), rssMaxMiB: mib(b.rssMaxBytes) },
        liveFullSpeed: { bullmqJobsPerSec: liveJobs, entriesBehindMax: behindMax, lagSecondsMax, catchUpMsAfterWorkers: Math.round(catchUpMs), cpuPercent: round(c.cpuPercent, 0), rssMaxMiB: mib(c.rssMaxBytes) },
        steady: { jobsPerSec: steadyRate, seconds: round(steadyMs / 1000, 1), cpuPercent: round(d.cpuPercent, 0), rssMaxMiB: mib(d.rssMaxBytes), entriesBehindMax: behindD, catchUpMsAfterLastAdd: Math.round(catchUpD) },
        spanExportMiB: mib(spanBytes),
      },
      ratios: {
        'sidecar/bullmq event rate (stream entries per second)': ratio(sidecarEntries, bullmqEntries),
        'sidecar/bullmq jobs per second (whole life: add + process)': ratio(sidecarJobs, bullmqLifecycleJobs),
        'sidecar/bullmq jobs per second (workers only)': ratio(sidecarJobs, bullmqJobs),
        'bullmq beside sidecar / bullmq alone (workers)': ratio(liveJobs, bullmqJobs),
        // /proc counts CPU in 10 ms ticks: a run too small to register any has no CPU ratio (see notes).
        ...(sidecarCpuMicrosPerJob > 0 && bullmqCpuMicrosPerJob > 0
          ? { 'sidecar CPU per job / BullMQ CPU per job (producer + workers + redis)': ratio(sidecarCpuMicrosPerJob, bullmqCpuMicrosPerJob) }
          : {}),
        ...(floor.total > 0 && bullmqCpuMicrosPerJob > 0 ? { 'floor CPU per job / BullMQ CPU per job': ratio(floor.total, bullmqCpuMicrosPerJob) } : {}),
        ...(floor.total > 0 && sidecarCpuMicrosPerJob > 0 ? { 'sidecar CPU per job / floor CPU per job': ratio(sidecarCpuMicrosPerJob, floor.total) } : {}),
      },
      targets: [{
        target: 'the sidecar keeps up with everything BullMQ can produce here',
        met: sidecarEntries >= bullmqEntries,
        detail: `sidecar reads ${fmt(sidecarEntries)} stream entries/s alone vs BullMQ's fastest burst of ${fmt(bullmqEntries)} entries/s (ratio ${ratio(sidecarEntries, bullmqEntries)}); ` +
          `${fmt(sidecarJobs)} vs ${fmt(bullmqLifecycleJobs)} jobs/s over a job's whole life; live beside full-speed workers it fell at most ${fmt(behindMax)} entries behind; at a steady ${fmt(steadyRate)} jobs/s at most ${fmt(behindD)}`,
      }],
      notes: [
        ...(sidecarCpuMicrosPerJob > 0 && bullmqCpuMicrosPerJob > 0 ? [] : ['the run was too short for /proc to register CPU time (10 ms ticks): no CPU-per-job ratio']),
        'B measures from the first record to the last entry read, so process start and queue discovery are excluded',
        'C runs BullMQ workers and the sidecar on the same cores: "bullmq beside sidecar / bullmq alone" is the slowdown co-location causes (not hook overhead)',
      ],
    };
    printSummary(result, log);
    return result;
  } finally {
    await sidecar?.stop().catch(() => undefined);
    await load.close().catch(() => undefined);
    admin.disconnect();
    await sink.close();
    await redis.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}
