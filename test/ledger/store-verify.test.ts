/**
 * `verifyStore`: the hash chain and the signed Merkle roots recomputed from the ClickHouse rows, on the
 * real server (18.16) and the embedded engine (chdb). A ledger is built with the Spool and the
 * Checkpointer, shipped with the Shipper, then tampered with in ClickHouse.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpointer, Spool, loadOrCreateSigningKey, verifyCheckpoints, verifyLedger } from '../../ledger/index.js';
import { GENESIS_HASH, recordHash, type LedgerRecord } from '../../ledger/spool/record.js';
import { Shipper, storeTarget } from '../../ledger/store/shipper.js';
import { verifyStore, type StoreVerifyOptions } from '../../ledger/store/verify.js';
import { LEDGER_TABLE, openStore, type LedgerStore } from '../../ledger/store/index.js';
import type { SigningKey } from '../../ledger/checkpoints/keys.js';
import { startClickHouse, until, type ClickHouseServer } from '../harness/index.js';
import { buildCheckpointed } from './checkpoint-helpers.js';
import { events, removeDir, tempDir } from '../harness/ledger.js';
import { waitForMutations } from './store/helpers.js';

const CLI = path.resolve('dist/agent/cli.js');
const N = 600;
const EVERY = 100;
const PRISTINE = 'warden_ledger_pristine';

let clickhouse: ClickHouseServer;
beforeAll(async () => { clickhouse = await startClickHouse(); });
afterAll(async () => { await clickhouse?.dispose(); });


async function ship(store: LedgerStore, dataDir: string, lastSeq: number): Promise<void> {
  const shipper = new Shipper({ dataDir, target: storeTarget(store), lastSeq: () => lastSeq, batchRecords: 5000, flushIntervalMs: 20 });
  await shipper.start();
  await until(() => shipper.status().committed === lastSeq, 30_000, 'shipped');
  await shipper.stop();
}

function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH }, timeout: 60_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

/** The records from `from` on, with record `from` changed and every hash after it recomputed. */
function rechained(records: readonly LedgerRecord[], from: number, mutate: (r: LedgerRecord) => void): LedgerRecord[] {
  let prev = from > 1 ? records[from - 2].hash : GENESIS_HASH;
  return records.map((orig) => {
    if (orig.seq < from) return orig;
    const r: LedgerRecord = { ...orig, event: structuredClone(orig.event), prev };
    if (r.seq === from) mutate(r);
    r.hash = recordHash(r.prev, r.seq, r.event);
    prev = r.hash;
    return r;
  });
}

const rate = (records: number, ms: number) => Math.round(records / (ms / 1000));

describe.each([
  ['server (ClickHouse 18.16)', 'server'],
  ['embedded (chdb)', 'embedded'],
] as const)('ledger verify from the %s store', (_label, kind) => {
  let dir: string;
  let store: LedgerStore;
  let key: SigningKey;
  let records: LedgerRecord[];
  let database: string;
  const verify = (o: Partial<StoreVerifyOptions> = {}) => verifyStore(store, { dataDir: dir, publicKeys: [key.publicKey], pageSize: 128, ...o });
  /** Puts the shipped rows back as they were. */
  const fresh = async () => {
    await store.exec(`TRUNCATE TABLE ${LEDGER_TABLE}`);
    await store.exec(`INSERT INTO ${LEDGER_TABLE} SELECT * FROM ${PRISTINE}`);
  };
  const mutate = async (sql: string) => {
    await store.exec(sql);
    await waitForMutations(store, LEDGER_TABLE);
  };

  beforeAll(async () => {
    dir = await tempDir();
    ({ key, records } = await buildCheckpointed(dir, N, EVERY, 50));
    database = `sv_${Date.now()}`;
    store = await openStore({ url: kind === 'server' ? clickhouse.url : undefined, dataDir: dir, database });
    await store.migrate();
    await ship(store, dir, N);
    await store.exec(`CREATE TABLE ${PRISTINE} AS ${LEDGER_TABLE}`);
    await store.exec(`INSERT INTO ${PRISTINE} SELECT * FROM ${LEDGER_TABLE}`);
  });
  afterAll(async () => {
    await store?.close();
    await removeDir(dir);
  });

  it('an untouched ledger verifies: chain from genesis and every signed root', async () => {
    const r = await verify();
    expect(r.problem).toBeUndefined();
    expect(r).toMatchObject({ ok: true, rows: N, records: N, lastSeq: N, headHash: records[N - 1].hash, warnings: [] });
    expect(r.checkpoints).toMatchObject({ count: N / EVERY, matched: N / EVERY, verifiedSize: N, keyIds: [key.keyId], notShipped: null });
  });

  it.each([
    ['attempt', 'attempt + 1'],
    ['input', `'{"to":"attacker@example.com"}'`],
    ['prev', `'${'e'.repeat(64)}'`],
    ['ts_ms', 'ts_ms + 1'],
  ])('ALTER TABLE UPDATE %s = ... WHERE seq = k names seq k', async (column, expr) => {
    await fresh();
    await mutate(`ALTER TABLE ${LEDGER_TABLE} UPDATE ${column} = ${expr} WHERE seq = 123`);
    const r = await verify();
    expect(r.ok).toBe(false);
    expect(r.problem).toMatchObject({ kind: 'modified', seq: 123 });
    expect(r.records).toBe(122);
    expect(r.checkpoints.verifiedSize).toBe(100);
  });

  it('an UPDATE that also recomputes the hash: the next record still links to the original', async () => {
    await fresh();
    const forged = { ...records[122], event: { ...records[122].event, attempt: 9 } };
    forged.hash = recordHash(forged.prev, forged.seq, forged.event);
    await mutate(`ALTER TABLE ${LEDGER_TABLE} UPDATE attempt = 9, hash = '${forged.hash}' WHERE seq = 123`);
    const r = await verify();
    expect(r.problem).toMatchObject({ kind: 'modified', seq: 123 });
    expect(r.problem!.message).toMatch(/seq 123 was changed and its hash recomputed: seq 124 still links to the original/);
  });

  it('a deleted row is missing', async () => {
    await fresh();
    await mutate(`ALTER TABLE ${LEDGER_TABLE} DELETE WHERE seq = 250`);
    const r = await verify();
    expect(r.problem).toMatchObject({ kind: 'missing', seq: 250, fromSeq: 250, toSeq: 250 });
    expect(r.records).toBe(249);
  });

  it('truncation: against a larger checkpoint, with --expect-complete or when the shipper had stored the rows', async () => {
    await fresh();
    await mutate(`ALTER TABLE ${LEDGER_TABLE} DELETE WHERE seq > 432`);
    const complete = await verify({ expectComplete: true });
    expect(complete.problem).toMatchObject({ kind: 'truncated', seq: 433, fromSeq: 433, toSeq: 500 });
    expect(complete.checkpoints.verifiedSize).toBe(400);
    // shipper.json says seq 1..600 were stored: those rows are gone, not late.
    const byShipper = await verify();
    expect(byShipper.problem).toMatchObject({ kind: 'truncated', seq: 433 });
    expect(byShipper.problem!.message).toMatch(/shipper recorded seq 1\.\.600 as stored/);
    // Shipping lagging behind (the shipper has stored only 1..432): a warning, not tampering.
    const shipperFile = path.join(dir, 'shipper.json');
    const saved = await readFile(shipperFile, 'utf8');
    await writeFile(shipperFile, JSON.stringify({ version: 1, committed: 432 }));
    try {
      const lag = await verify();
      expect(lag.problem).toBeUndefined();
      expect(lag.ok).toBe(true);
      expect(lag.records).toBe(432);
      expect(lag.checkpoints.verifiedSize).toBe(400);
      expect(lag.checkpoints.notShipped?.size).toBe(600);
      expect(lag.warnings.join('\n')).toMatch(/2 checkpoint\(s\) \(up to size 600\) cover records not yet in warden_ledger .*not yet shipped/);
    } finally {
      await writeFile(shipperFile, saved);
    }
  });

  it('a forged row with a self-consistent hash spliced in as a duplicate seq', async () => {
    await fresh();
    const genuine = records[299];
    const forgedEvent = { ...genuine.event, kind: 'job.failed' as const, error: 'forged' };
    const forged: LedgerRecord = { seq: 300, prev: genuine.prev, event: forgedEvent, hash: recordHash(genuine.prev, 300, forgedEvent) };
    await store.insert([forged]);
    const r = await verify();
    expect(r.problem).toMatchObject({ kind: 'inserted', seq: 300 });
    expect(r.problem!.message).toContain(`the one with hash ${genuine.hash.slice(0, 16)}… links to seq 299 and seq 301 links to it`);
    expect(r.problem!.message).toContain(`the other (hash ${forged.hash.slice(0, 16)}…) is a forged or spliced-in record`);
  });

  it('an identical repeated row fails, naming its seq (issue 12: counts over the table would double it)', async () => {
    await fresh();
    await store.insert([records[41]]);
    const r = await verify();
    expect(r.ok).toBe(false);
    expect(r.problem).toMatchObject({ kind: 'duplicated', seq: 42 });
    expect(r.problem!.message).toMatch(/^seq 42 is stored 2 times in identical rows/);
    expect(r.records).toBe(41);
  });

  it('reordering: two rows swapped with their content', async () => {
    await fresh();
    const [a, b] = [records[209], records[214]];
    await mutate(`ALTER TABLE ${LEDGER_TABLE} DELETE WHERE seq IN (210, 215)`);
    await store.insert([{ ...b, seq: 210 }, { ...a, seq: 215 }]);
    const r = await verify();
    expect(r.problem).toMatchObject({ kind: 'reordered', seq: 210 });
    expect(r.problem!.message).toMatch(/seq 210 and seq 215 were swapped/);
  });

  it('a whole-chain rewrite with recomputed hashes: only the signed checkpoints catch it', async () => {
    const rewritten = rechained(records, 250, (rec) => { rec.event.attempt = 2; });
    await store.exec(`TRUNCATE TABLE ${LEDGER_TABLE}`);
    await store.insert(rewritten);
    const r = await verify();
    expect(r.problem).toMatchObject({ kind: 'mismatch', seq: 201, fromSeq: 201, toSeq: 300, checkpointLine: 3 });
    expect(r.records).toBe(300); // the chain itself held
    expect(r.checkpoints.verifiedSize).toBe(200);
    // A forged checkpoint file is refused on its own.
    const cpFile = path.join(dir, 'checkpoints.jsonl');
    const lines = (await readFile(cpFile, 'utf8')).split('\n');
    const cp = JSON.parse(lines[2]) as { root: string };
    cp.root = 'ab'.repeat(32);
    const forgedFile = path.join(dir, 'forged-checkpoints.jsonl');
    await writeFile(forgedFile, [...lines.slice(0, 2), JSON.stringify(cp), ...lines.slice(3)].join('\n'));
    const f = await verify({ checkpointsFile: forgedFile });
    expect(f.problem).toMatchObject({ kind: 'checkpoint-signature', checkpointLine: 3 });
  });

  it('verify rate: rows from ClickHouse vs the spool', async () => {
    const big = await tempDir();
    try {
      const count = 12_000;
      const k = await loadOrCreateSigningKey(big);
      const spool = await Spool.open({ dir: big, fsync: false, groupCommitMs: 0 });
      const cp = await Checkpointer.open({ dir: big, key: k, every: 2000, intervalMs: 3_600_000, fsync: false, lastSeq: 0 });
      for (let i = 0; i < count; i += 1000) {
        cp.add(await spool.append(events(1000)));
        await cp.idle();
      }
      await spool.close();
      await cp.close({ lastSeq: spool.lastSeq });
      await store.exec(`TRUNCATE TABLE ${LEDGER_TABLE}`);
      await ship(store, big, count);

      let t = performance.now();
      const fromStore = await verifyStore(store, { dataDir: big, publicKeys: [k.publicKey], expectComplete: true });
      const storeMs = performance.now() - t;
      expect(fromStore.problem).toBeUndefined();
      expect(fromStore.records).toBe(count);
      expect(fromStore.checkpoints.verifiedSize).toBe(count);

      t = performance.now();
      const chain = await verifyLedger(big);
      const cps = await verifyCheckpoints(big, k.publicKey);
      const spoolMs = performance.now() - t;
      expect(chain.ok && cps.ok).toBe(true);
      console.log(`[verify rate, ${kind}] ${count} records: from ClickHouse ${rate(count, storeMs)} records/s (${storeMs.toFixed(0)} ms), ` +
        `from the spool (chain + checkpoints) ${rate(count, spoolMs)} records/s (${spoolMs.toFixed(0)} ms)`);
    } finally {
      await removeDir(big);
      await fresh();
    }
  });

  it('warden ledger verify --store as a child process: exit 0 clean, exit 1 naming the seq', async () => {
    const storeArgs = kind === 'server'
      ? ['--store', 'clickhouse', '--clickhouse-url', clickhouse.url, '--clickhouse-database', database]
      : ['--store', 'embedded'];
    // chdb binds its data directory to one process: hand it over to the child.
    const run = async (): Promise<{ code: number; stdout: string; stderr: string }> => {
      if (kind === 'server') return warden(['ledger', 'verify', '--data-dir', dir, ...storeArgs]);
      await store.close();
      try {
        return await warden(['ledger', 'verify', '--data-dir', dir, ...storeArgs]);
      } finally {
        store = await openStore({ dataDir: dir });
      }
    };
    await fresh();
    const clean = await run();
    expect(clean.stderr).toBe('');
    expect(clean.code).toBe(0);
    expect(clean.stdout).toContain(`store intact: ${N} records, seq 1..${N}`);
    expect(clean.stdout).toContain(`Merkle roots recomputed from the rows match ${N / EVERY} signed checkpoints (seq 1..${N})`);

    await mutate(`ALTER TABLE ${LEDGER_TABLE} UPDATE input = '{"to":"attacker@example.com"}' WHERE seq = 77`);
    const bad = await run();
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/STORE TAMPERED: first bad record seq 77 \(modified\)/);
  });
});
