/**
 * The ledger: spool appends, verify, shipping into ClickHouse, and chdb against the server.
 *
 *   npm run bench -- ledger
 *
 * 1. Spool append (fsync group commit, default options) of N ~350-byte events: records/s and the
 *    p50/p99 time from append() to durable, open loop (capacity) and closed loop (64 producers x 16).
 * 2. `verifyLedger` over those N records, against sha256 of the same bytes on this machine: chained
 *    per record exactly as verify hashes (prev \n seq \n canonical event), and one bulk sha256 pass
 *    over the segment files (the physical limit).
 * 3. The Shipper (spool -> `warden_ledger`, 5000-record batches, exactly-once bookkeeping) into a
 *    private ClickHouse server, against a raw `@clickhouse/client` insert (JSONEachRow, same batch
 *    size) of the same rows into the same schema in another database.
 * 4. The same Shipper into the embedded store (chdb), against the server.
 */
import { createHash } from 'node:crypto';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createClient } from '@clickhouse/client';
import { canonicalJson } from '../core/event.js';
import { readRecords } from '../ledger/spool/reader.js';
import type { LedgerRecord } from '../ledger/spool/record.js';
import { ledgerDirOf, listSegments } from '../ledger/spool/segments.js';
import { Shipper, storeTarget } from '../ledger/store/shipper.js';
import { recordToRow, LEDGER_TABLE } from '../ledger/store/rows.js';
import { ServerStore } from '../ledger/store/server.js';
import type { LedgerStore } from '../ledger/store/store.js';
import { verifyLedger } from '../ledger/spool/verify.js';
import { startClickHouse } from '../test/harness/index.js';
import { DEFAULT_OPTIONS, fmt, median, perSecond, printSummary, ratio, round, scaled, sleep, type ScenarioOptions, type ScenarioResult } from './lib/report.js';
import { openEmbedded } from './lib/stores.js';
import { makeEvents, openLoopRun, rawSha, spoolRun } from './spool.js';

const BATCH = 5000;
/** Interleaved repetitions of the verify and shipping comparisons. */
const REPS = 3;

/** A raw @clickhouse/client insert (JSONEachRow, BATCH rows per insert) of rows already converted, into a fresh database; ms. */
async function rawInsert(url: string, database: string, rows: object[]): Promise<number> {
  const schema = new ServerStore({ url, database });
  await schema.migrate();
  await schema.close();
  const client = createClient({ url, database });
  try {
    const t = performance.now();
    for (let i = 0; i < rows.length; i += BATCH) await client.insert({ table: LEDGER_TABLE, values: rows.slice(i, i + BATCH), format: 'JSONEachRow' });
    const ms = performance.now() - t;
    const count = Number(((await (await client.query({ query: `SELECT count() AS n FROM ${LEDGER_TABLE}`, format: 'JSONEachRow' })).json()) as { n: string }[])[0].n);
    if (count !== rows.length) throw new Error(`raw insert left ${count} rows, expected ${rows.length}`);
    return ms;
  } finally {
    await client.close();
  }
}

async function ship(dataDir: string, store: LedgerStore, n: number): Promise<number> {
  await rm(path.join(dataDir, 'shipper.json'), { force: true }); // each store starts from nothing shipped
  const shipper = new Shipper({ dataDir, target: storeTarget(store), lastSeq: () => n, batchRecords: BATCH, flushIntervalMs: 50, prepare: () => store.migrate() });
  const t = performance.now();
  await shipper.start();
  while (shipper.status().committed < n) {
    const f = shipper.status().failing;
    if (f && performance.now() - t > 60_000) throw new Error(`shipping to ${store.target} failing: ${f.error}`);
    await sleep(5);
  }
  const ms = performance.now() - t;
  await shipper.stop();
  const [row] = await store.query<{ n: string }>(`SELECT count() AS n FROM ${LEDGER_TABLE}`);
  if (Number(row.n) !== n) throw new Error(`${store.target} holds ${row.n} rows after shipping ${n}`);
  return ms;
}

export async function run(opts: ScenarioOptions = DEFAULT_OPTIONS): Promise<ScenarioResult> {
  const log = opts.log;
  const n = scaled(100_000, opts, 2000);
  const work = await mkdtemp(path.join(os.tmpdir(), 'warden-bench-ledger-'));
  const clickhouse = await startClickHouse();
  try {
    const events = makeEvents(n);
    const jsons = events.map(canonicalJson);
    const avgBytes = Math.round(jsons.reduce((s, j) => s + Buffer.byteLength(j), 0) / n);

    // 1. Append.
    await spoolRun(events.slice(0, Math.min(n, 20_000)), 16, 16, true); // warm up
    const dataDir = path.join(work, 'data');
    const open = await openLoopRun(events, 16, 8192, dataDir);
    const closed = await spoolRun(events, 64, 16, true);
    const appendOpen = perSecond(n, open.ms);
    const appendClosed = perSecond(n, closed.ms);
    log(`spool append, fsync, open loop (16/append, <= 8192 in flight): ${fmt(appendOpen)} records/s, commit p50 ${round(open.p50)} ms, p99 ${round(open.p99)} ms (${open.stats.flushes} commits)`);
    log(`spool append, fsync, 64 producers x 16/append (closed loop):   ${fmt(appendClosed)} records/s, commit p50 ${round(closed.p50)} ms, p99 ${round(closed.p99)} ms`);

    // 2. Verify vs raw sha256 of the same bytes. Both sides warmed up (JIT), then REPS interleaved
    // pairs (sha256, verify): the ratio is the median of the pairs' ratios (a pair shares the moment of
    // a noisy machine), the rates the medians of each side.
    rawSha(jsons.slice(0, 10_000));
    const segments = await listSegments(ledgerDirOf(dataDir));
    const t0 = performance.now();
    let fileBytes = 0;
    for (const s of segments) {
      const buf = await readFile(s.path);
      fileBytes += buf.length;
      createHash('sha256').update(buf).digest();
    }
    const bulkMs = performance.now() - t0;
    const verifyRuns: number[] = [];
    const shaRuns: number[] = [];
    let verified = await verifyLedger(dataDir); // warm-up
    for (let i = 0; i < REPS; i++) {
      shaRuns.push(rawSha(jsons));
      const t1 = performance.now();
      verified = await verifyLedger(dataDir);
      verifyRuns.push(performance.now() - t1);
    }
    const verifyMs = median(verifyRuns);
    const shaMs = median(shaRuns);
    const verifyVsSha = round(median(verifyRuns.map((v, i) => shaRuns[i] / v)), 3);
    if (!verified.ok || verified.records !== n) throw new Error(`verify found a problem in the bench spool: ${JSON.stringify(verified.problem)}`);
    const verifyRate = perSecond(n, verifyMs);
    const shaRate = perSecond(n, shaMs);
    const bulkRate = perSecond(n, bulkMs);
    log(`verify: ${fmt(verifyRate)} records/s; chained sha256 of the same bytes: ${fmt(shaRate)} records/s; one sha256 pass over the ${round(fileBytes / 2 ** 20, 1)} MiB of segments (read included): ${fmt(bulkRate)} records/s`);

    // 3. Shipping into the server vs a raw client insert of the same rows: REPS interleaved pairs, each
    // into fresh databases of the same (migrated) schema; median of the pairs' ratios, as above.
    const records: LedgerRecord[] = [];
    for await (const r of readRecords(dataDir)) records.push(r);
    const rows = records.map(recordToRow);
    const shipRuns: number[] = [];
    const rawRuns: number[] = [];
    for (let i = 0; i < REPS; i++) {
      const server = new ServerStore({ url: clickhouse.url, database: `ship${i}` });
      await server.migrate();
      shipRuns.push(await ship(dataDir, server, n));
      await server.close();
      rawRuns.push(await rawInsert(clickhouse.url, `raw${i}`, rows));
    }
    const shipMs = median(shipRuns);
    const rawMs = median(rawRuns);
    const shipVsRaw = round(median(shipRuns.map((s, i) => rawRuns[i] / s)), 3);
    const shipRate = perSecond(n, shipMs);
    const rawRate = perSecond(n, rawMs);
    log(`ship to ClickHouse server (Shipper, ${BATCH}/batch): ${fmt(shipRate)} records/s; raw @clickhouse/client insert of the same rows: ${fmt(rawRate)} rows/s`);

    // 4. chdb vs server.
    const embedded = await openEmbedded();
    let chdbMs: number;
    try {
      chdbMs = await ship(dataDir, embedded, n);
    } finally {
      await embedded.close();
    }
    const chdbRate = perSecond(n, chdbMs);
    log(`ship to embedded chdb (same Shipper): ${fmt(chdbRate)} records/s`);

    const result: ScenarioResult = {
      figures: {
        records: n,
        avgEventBytes: avgBytes,
        append: {
          openLoop: { recordsPerSec: appendOpen, commitP50Ms: round(open.p50), commitP99Ms: round(open.p99), commits: open.stats.flushes },
          closedLoop64x16: { recordsPerSec: appendClosed, commitP50Ms: round(closed.p50), commitP99Ms: round(closed.p99), commits: closed.stats.flushes },
        },
        verify: { recordsPerSec: verifyRate, chainedSha256RecordsPerSec: shaRate, bulkSha256RecordsPerSec: bulkRate, segmentMiB: round(fileBytes / 2 ** 20, 1) },
        ship: { serverRecordsPerSec: shipRate, rawClientInsertRowsPerSec: rawRate, chdbRecordsPerSec: chdbRate, batch: BATCH, clickhouseServer: '18.16 (Debian)' },
      },
      ratios: {
        'append open loop / chained sha256': ratio(appendOpen, shaRate),
        'verify / chained sha256': verifyVsSha,
        'verify / bulk sha256': ratio(verifyRate, bulkRate),
        'shipper / raw client insert': shipVsRaw,
        'chdb / server shipping': ratio(chdbRate, shipRate),
      },
      notes: [
        'the raw insert gets rows already converted (recordToRow, untimed); the Shipper reads and parses the spool, converts, inserts as TabSeparated, and saves its position after each batch',
        'chained sha256 = one sha256 per record over exactly the bytes verify hashes; bulk = one sha256 stream over the segment files, read from disk (page cache) included',
      ],
    };
    printSummary(result, log);
    return result;
  } finally {
    await clickhouse.dispose();
    await rm(work, { recursive: true, force: true });
  }
}
