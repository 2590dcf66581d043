/**
 * Outage memory: the sidecar's RSS while ClickHouse is down and the ledger backlog grows to millions
 * of records, then how fast the backlog drains when ClickHouse is back.
 *
 *   npm run bench -- outage
 *
 * The real `warden start` child process ships to a private ClickHouse server (18.16). After the
 * schema is in place the server is stopped (SIGTERM; data kept). Plain BullMQ workers then run jobs
 * at full speed (the producer keeps at most 20 000 jobs waiting) while the sidecar records them; its
 * RSS (from /proc), heap and backlog (`warden_ledger_backlog_events`, records durable in the spool but
 * not in ClickHouse) are sampled every 500 ms until the backlog reaches the target (2 M records at
 * full size). Then production stops, ClickHouse starts again on the same port and data, and the
 * drain is timed from the first record shipped to an empty backlog.
 * "Bounded": over the second half of the backlog (1 M -> 2 M records) RSS grows less than 64 MiB. The
 * sidecar's in-memory indexes have fixed caps (the terminal-record index holds the last 500 000 jobs,
 * i.e. ~1.5 M records here), so RSS climbs while they fill and should then flatten; the backlog
 * itself is on disk. Heap in use (the sidecar's own nodejs_heap_size_used_bytes) is sampled too.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'bullmq';
import { startClickHouse, startRedis } from '../test/harness/index.js';
import { openLoad, JOB_DATA } from './lib/bullmq-load.js';
import { readProc } from './lib/proc-sampler.js';
import { DEFAULT_OPTIONS, fmt, mib, perSecond, printSummary, round, scaled, sleep, type ScenarioOptions, type ScenarioResult } from './lib/report.js';
import { startSidecar, sumMetric, type SidecarProcess } from './lib/sidecar.js';

const QUEUE = 'outage';
const RSS_BOUND_MIB = 64;

interface Sample { atMs: number; backlog: number; lastSeq: number; shipped: number; rssBytes: number; heapUsedBytes: number; heapTotalBytes: number; externalBytes: number }

async function sample(sidecar: SidecarProcess): Promise<Sample> {
  // A sidecar busy catching up (or collecting garbage) on a loaded machine can answer slowly: retry.
  let text = '';
  for (let attempt = 1; ; attempt++) {
    try {
      text = await sidecar.metricsText();
      break;
    } catch (err) {
      if (attempt >= 5 || !sidecar.proc.running) throw new Error(`the sidecar's /metrics did not answer (${(err as Error).message}); its log: ${sidecar.proc.logFile}`);
      await sleep(500);
    }
  }
  return {
    atMs: performance.now(),
    backlog: sumMetric(text, 'warden_ledger_backlog_events'),
    lastSeq: sumMetric(text, 'warden_ledger_last_seq'),
    shipped: sumMetric(text, 'warden_ledger_shipped_total'),
    rssBytes: readProc(sidecar.pid)?.rssBytes ?? 0,
    heapUsedBytes: sumMetric(text, 'nodejs_heap_size_used_bytes'),
    heapTotalBytes: sumMetric(text, 'nodejs_heap_size_total_bytes'),
    externalBytes: sumMetric(text, 'nodejs_external_memory_bytes'),
  };
}

function duBytes(dir: string): number {
  try {
    return Number(execFileSync('du', ['-sb', dir], { encoding: 'utf8' }).split('\t')[0]);
  } catch {
    return 0;
  }
}

export async function run(opts: ScenarioOptions = DEFAULT_OPTIONS): Promise<ScenarioResult> {
  const log = opts.log;
  const target = scaled(2_000_000, opts, 5000);
  const redis = await startRedis();
  const clickhouse = await startClickHouse();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-bench-outage-'));
  const load = await openLoad(redis.port, QUEUE, 300_000);
  let sidecar: SidecarProcess | undefined;
  let worker: Worker | undefined;
  try {
    sidecar = await startSidecar({ redisUrl: redis.url, dir, queues: [QUEUE], clickhouseUrl: clickhouse.url });
    // Shipping works before the outage: a first batch lands (and the schema exists).
    await load.add(100);
    await load.drain(100);
    for (let i = 0; i < 100 && (await sample(sidecar)).shipped < 300; i++) await sleep(100);
    await clickhouse.stop();
    log(`ClickHouse stopped; producing until the backlog holds ${fmt(target)} records`);

    const samples: Sample[] = [];
    worker = new Worker(QUEUE, async () => ({ ok: true }), { connection: load.connection, concurrency: 100 });
    const t0 = performance.now();
    let producing = true;
    let producerError: Error | null = null;
    const producer = (async () => {
      while (producing) {
        const waiting = await load.queue.getWaitingCount();
        if (waiting > 20_000) { await sleep(50); continue; }
        // Completed jobs beyond the newest 50 000 are removed, so Redis stays small over millions of records
        // while the sidecar (a few seconds behind at most) still finds every job's hash.
        await load.queue.addBulk(Array.from({ length: 1000 }, () => ({ name: 'summarize', data: JOB_DATA, opts: { removeOnComplete: { count: 50_000 } } })));
      }
    })().catch((err: Error) => { producerError = err; });
    let lastLog = 0;
    for (;;) {
      const s = await sample(sidecar);
      samples.push(s);
      if (s.backlog >= target) break;
      if (producerError) throw new Error(`the BullMQ producer failed: ${(producerError as Error).message}`);
      if (s.atMs - lastLog > 10_000) {
        lastLog = s.atMs;
        log(`  ${round((s.atMs - t0) / 1000, 0)} s: backlog ${fmt(s.backlog)} records, RSS ${mib(s.rssBytes)} MiB`);
      }
      if (performance.now() - t0 > 20 * 60_000) throw new Error(`backlog reached only ${s.backlog} of ${target} records in 20 minutes`);
      await sleep(500);
    }
    producing = false;
    await producer;
    await worker.close();
    worker = undefined;
    const growMs = performance.now() - t0;
    // Let the sidecar take in what the workers finished last.
    for (let i = 0; i < 50; i++) {
      const s = await sample(sidecar);
      samples.push(s);
      if (i > 0 && s.lastSeq === samples[samples.length - 2].lastSeq) break;
      await sleep(200);
    }
    const peak = samples[samples.length - 1];
    const spoolBytes = duBytes(path.join(sidecar.dataDir, 'ledger'));
    const at = (fraction: number) => samples.find((s) => s.backlog >= peak.backlog * fraction) ?? peak;
    const rss10 = at(0.1).rssBytes;
    const half = at(0.5);
    const rssMax = Math.max(...samples.map((s) => s.rssBytes));
    const growth = Math.max(...samples.filter((s) => s.atMs >= half.atMs).map((s) => s.rssBytes)) - half.rssBytes;
    // Heap in use right after a collection is the live data; the lowest reading in a stretch approximates it.
    const liveHeap = (from: number, to: number) => {
      const band = samples.filter((s) => s.backlog >= peak.backlog * from && s.backlog <= peak.backlog * to);
      return Math.min(...(band.length ? band : [at(to)]).map((s) => s.heapUsedBytes)); // a short run may have no sample in the band
    };
    log(`backlog ${fmt(peak.backlog)} records (${round(spoolBytes / 2 ** 20, 0)} MiB spool on disk) after ${round(growMs / 1000, 0)} s; RSS at 10% ${mib(rss10)} MiB, 50% ${mib(half.rssBytes)} MiB, 100% ${mib(peak.rssBytes)} MiB, max ${mib(rssMax)} MiB; ` +
      `lowest heap in use 40-50% ${mib(liveHeap(0.4, 0.5))} MiB, 90-100% ${mib(liveHeap(0.9, 1))} MiB`);

    // ClickHouse back: drain.
    const restart = performance.now();
    await clickhouse.start();
    const drain: Sample[] = [];
    for (;;) {
      const s = await sample(sidecar);
      drain.push(s);
      if (s.backlog === 0) break;
      if (performance.now() - restart > 15 * 60_000) throw new Error(`backlog still ${s.backlog} records 15 minutes after ClickHouse came back`);
      await sleep(250);
    }
    // The drain window opens at the last sample before anything shipped (or the restart itself), so a
    // backlog shipped within one poll (tiny runs) still gets a rate; at full size the poll is noise.
    const shippedBefore = peak.shipped;
    const first = drain.findIndex((s) => s.shipped > shippedBefore);
    const end = drain[drain.length - 1];
    const opened = first > 0 ? drain[first - 1] : { atMs: restart, shipped: shippedBefore };
    const drainRate = perSecond(end.shipped - opened.shipped, end.atMs - opened.atMs);
    const resumeMs = (first >= 0 ? drain[first].atMs : end.atMs) - restart;
    const drainRssMax = Math.max(...drain.map((s) => s.rssBytes));
    log(`ClickHouse back: first records shipped after ${fmt(resumeMs)} ms (retry backoff), drained at ${fmt(drainRate)} records/s in ${round((end.atMs - restart) / 1000, 1)} s; RSS max while draining ${mib(drainRssMax)} MiB`);

    const curve = [0.1, 0.25, 0.5, 0.75, 1].map((f) => ({ backlog: at(f).backlog, rssMiB: mib(at(f).rssBytes), heapUsedMiB: mib(at(f).heapUsedBytes), heapTotalMiB: mib(at(f).heapTotalBytes), externalMiB: mib(at(f).externalBytes) }));
    const result: ScenarioResult = {
      figures: {
        sidecar: 'warden start child process (dist/agent/cli.js), shipping to a ClickHouse 18.16 server that is stopped for the outage',
        backlogRecords: peak.backlog,
        spoolMiBOnDisk: round(spoolBytes / 2 ** 20, 1),
        bytesPerRecordOnDisk: Math.round(spoolBytes / Math.max(1, peak.lastSeq)),
        growSeconds: round(growMs / 1000, 1),
        recordsPerSecDuringOutage: perSecond(peak.backlog, growMs),
        rssCurve: curve,
        rssMaxMiB: mib(rssMax),
        rssGrowthLastHalfMiB: mib(growth),
        lowestHeapUsedMiB: { '40-50%': mib(liveHeap(0.4, 0.5)), '90-100%': mib(liveHeap(0.9, 1)) },
        drain: { recordsPerSec: drainRate, resumeMsAfterRestart: Math.round(resumeMs), seconds: round((end.atMs - restart) / 1000, 1), rssMaxMiB: mib(drainRssMax) },
      },
      ratios: {
        'rss at 100% / rss at 10% of backlog': round(peak.rssBytes / Math.max(1, rss10), 3),
      },
      targets: [{
        target: `RSS stays bounded while the backlog grows (over the second half of the backlog it grows < ${RSS_BOUND_MIB} MiB)`,
        met: opts.scale >= 0.5 ? growth < RSS_BOUND_MIB * 2 ** 20 : null,
        detail: `${mib(half.rssBytes)} MiB at ${fmt(half.backlog)} records -> max ${mib(half.rssBytes + growth)} MiB by ${fmt(peak.backlog)} records (+${mib(growth)} MiB); ${mib(rss10)} MiB at 10%`,
      }],
      notes: [
        'heap used / total = the sidecar\'s nodejs_heap_size_used_bytes / _total_bytes (JS objects / what V8 has reserved for them), external = nodejs_external_memory_bytes (Buffers); RSS beyond both is native memory (allocator arenas, libuv, OpenSSL, V8 code)',
        ...(process.env.WARDEN_BENCH_SIDECAR_ENV ? [`sidecar environment for this run: ${process.env.WARDEN_BENCH_SIDECAR_ENV}`] : []),
        ...(process.env.WARDEN_BENCH_SIDECAR_NODE_ARGS ? [`sidecar node arguments for this run: ${process.env.WARDEN_BENCH_SIDECAR_NODE_ARGS}`] : []),
        'drain rate is measured from the last sample before the first record shipped after the restart (the shipper\'s retry backoff, up to 10 s, is reported separately as resumeMsAfterRestart, to within one 250 ms poll)',
      ],
    };
    printSummary(result, log);
    return result;
  } finally {
    await worker?.close().catch(() => undefined);
    await sidecar?.stop().catch(() => undefined);
    await load.close().catch(() => undefined);
    await clickhouse.dispose();
    await redis.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}
