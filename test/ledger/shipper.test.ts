/**
 * Shipping the spool into ClickHouse, on the real server (18.16) and the embedded engine (chdb):
 * exactly once, through an outage under load, after a lost position file, and after a partial insert.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordHash } from '../../ledger/spool/record.js';
import { Shipper, storeTarget } from '../../ledger/store/shipper.js';
import { Spool } from '../../ledger/spool/spool.js';
import { openStore, rowToRecord, LEDGER_SELECT, type LedgerStore } from '../../ledger/store/index.js';
import { startClickHouse, until, type ClickHouseServer } from '../harness/index.js';
import { events, removeDir, tempDir } from '../harness/ledger.js';

let clickhouse: ClickHouseServer;
beforeAll(async () => { clickhouse = await startClickHouse(); });
afterAll(async () => { await clickhouse?.dispose(); });


async function counts(store: LedgerStore): Promise<{ rows: number; distinct: number; max: number }> {
  const [r] = await store.query<{ n: string; d: string; m: string }>('SELECT count() AS n, uniqExact(seq) AS d, max(seq) AS m FROM warden_ledger');
  return { rows: Number(r.n), distinct: Number(r.d), max: Number(r.m) };
}

describe.each([
  ['server (ClickHouse 18.16)', 'server'],
  ['embedded (chdb)', 'embedded'],
] as const)('shipper into the %s store', (_label, kind) => {
  let dir: string;
  let store: LedgerStore;
  beforeAll(async () => {
    dir = await tempDir();
    store = await openStore({ url: kind === 'server' ? clickhouse.url : undefined, dataDir: dir, database: `ship_${Date.now()}` });
    await store.migrate();
  });
  afterAll(async () => {
    await store?.close();
    await removeDir(dir);
  });

  it('ships every record once, in batches, and the rows rebuild to the same hashes', async () => {
    const spool = await Spool.open({ dir });
    const appended = await spool.append(events(2500));
    const shipper = new Shipper({ dataDir: dir, target: storeTarget(store), lastSeq: () => spool.lastSeq, batchRecords: 700, flushIntervalMs: 50 });
    await shipper.start();
    await until(() => shipper.status().committed === 2500, 30_000, 'shipped');
    await shipper.stop();
    await spool.close();
    expect(await counts(store)).toEqual({ rows: 2500, distinct: 2500, max: 2500 });
    const rows = await store.query(`SELECT ${LEDGER_SELECT} FROM warden_ledger WHERE seq IN (1, 777, 2500) ORDER BY seq`);
    const rebuilt = rows.map((r) => rowToRecord(r as never));
    for (const rec of rebuilt) {
      const orig = appended[rec.seq - 1];
      expect(rec.hash).toBe(orig.hash);
      expect(recordHash(rec.prev, rec.seq, rec.event)).toBe(orig.hash);
    }
  });

  it('inserts nothing twice when its position file is lost, or when part of a batch already landed', async () => {
    await rm(path.join(dir, 'shipper.json'));
    const spool = await Spool.open({ dir });
    const more = await spool.append(events(300));
    // A batch that landed partly before a crash: two of the new records are already in the store.
    await store.insert([more[10], more[200]]);
    const shipper = new Shipper({ dataDir: dir, target: storeTarget(store), lastSeq: () => spool.lastSeq, batchRecords: 128, flushIntervalMs: 50 });
    await shipper.start();
    await until(() => shipper.status().committed === 2800, 30_000, 'shipped');
    await shipper.stop();
    await spool.close();
    expect(await counts(store)).toEqual({ rows: 2800, distinct: 2800, max: 2800 });
  });

  if (kind === 'server') {
    it('keeps the backlog on disk when ClickHouse is killed under load, then drains it: zero lost, zero duplicated', async () => {
      const spool = await Spool.open({ dir });
      const errors: string[] = [];
      const shipper = new Shipper({
        dataDir: dir, target: storeTarget(store), lastSeq: () => spool.lastSeq, batchRecords: 500, flushIntervalMs: 50,
        retryMinMs: 50, retryMaxMs: 400, onError: (e) => errors.push(e.message),
      });
      await shipper.start();
      let writing = true;
      const load = (async () => { while (writing) { await spool.append(events(50)); await new Promise((r) => setTimeout(r, 10)); } })();
      await until(() => shipper.status().committed > 3000, 20_000, 'shipping under load');
      await clickhouse.kill9(); // a crash, not a clean shutdown: inserts in flight are cut off
      await until(() => shipper.status().failing !== null, 20_000, 'the outage noticed');
      const backlogDuring = shipper.status().backlog;
      await new Promise((r) => setTimeout(r, 1500));
      expect(shipper.status().backlog).toBeGreaterThan(backlogDuring); // still growing, on disk
      const heap = process.memoryUsage().heapUsed;
      await clickhouse.start();
      writing = false;
      await load;
      const total = spool.lastSeq;
      await until(() => shipper.status().committed === total, 60_000, 'backlog drained');
      expect(shipper.status().failing).toBeNull();
      expect(errors.length).toBeGreaterThan(0);
      expect(process.memoryUsage().heapUsed - heap).toBeLessThan(200 * 1024 * 1024);
      await shipper.stop();
      await spool.close();
      expect(await counts(store)).toEqual({ rows: total, distinct: total, max: total });
    });
  }
});

// A sidecar under steady traffic appends a few records at a time, all the time. Shipping each
// handful as soon as the last insert returned made one ClickHouse part per insert, dozens a second
// per sidecar: merges fall behind and the server delays, then refuses, inserts ("too many parts").
// A partial batch waits for the flush interval; only a full one goes at once.
describe('shipping a steady trickle', () => {
  let dir: string;
  let store: LedgerStore;
  beforeAll(async () => {
    dir = await tempDir();
    store = await openStore({ url: clickhouse.url, dataDir: dir, database: `trickle_${Date.now()}` });
    await store.migrate();
  });
  afterAll(async () => {
    await store?.close();
    await removeDir(dir);
  });

  it('inserts partial batches at most once per flush interval; a backlog still goes in full batches', async () => {
    const spool = await Spool.open({ dir });
    const target = storeTarget(store);
    let inserts = 0;
    const counting = {
      ...target,
      insert: (r: Parameters<typeof target.insert>[0]) => { inserts++; return target.insert(r); },
      insertEncoded: (t: string) => { inserts++; return target.insertEncoded!(t); },
    };
    const INTERVAL = 400;
    const shipper = new Shipper({ dataDir: dir, target: counting, lastSeq: () => spool.lastSeq, batchRecords: 1000, flushIntervalMs: INTERVAL });
    await shipper.start();
    const t0 = Date.now();
    let appended = 0;
    while (Date.now() - t0 < 2400) {
      await spool.append(events(3));
      appended += 3;
      await new Promise((r) => setTimeout(r, 15));
    }
    const trickleMs = Date.now() - t0;
    await until(() => shipper.status().committed === appended, 10_000, 'the trickle shipped');
    // One insert per interval while records trickle in (plus the one that catches the tail).
    expect(inserts).toBeLessThanOrEqual(Math.ceil(trickleMs / INTERVAL) + 2);
    expect(inserts).toBeGreaterThanOrEqual(2);
    // A backlog of full batches is not held back by the interval.
    const before = inserts;
    await spool.append(events(3000));
    await until(() => shipper.status().committed === appended + 3000, 10_000, 'the backlog shipped');
    expect(inserts - before).toBeGreaterThanOrEqual(3);
    await shipper.stop();
    await spool.close();
    expect(await counts(store)).toEqual({ rows: appended + 3000, distinct: appended + 3000, max: appended + 3000 });
  });
});
