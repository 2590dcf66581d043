/**
 * Many sidecars, one ledger table, on both engines (ClickHouse 18.16 server and chdb): ledger IDs,
 * the migration of a single-ledger table to the fleet form, per-ledger verify that names the ledger
 * and seq of a tampered row, and compliance reads that count an event held by two ledgers once.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../../core/event.js';
import { Checkpointer, Spool, loadOrCreateSigningKey, keyPaths, listLedgers, proveInclusion, verifyInclusionProof } from '../../../ledger/index.js';
import type { Checkpoint } from '../../../ledger/checkpoints/checkpoint.js';
import type { SigningKey } from '../../../ledger/checkpoints/keys.js';
import type { LedgerRecord } from '../../../ledger/spool/record.js';
import { countEvents, lineage, queryEvents } from '../../../ledger/compliance/queries.js';
import { exportEvents } from '../../../ledger/compliance/export.js';
import {
  CHECKPOINTS_TABLE, LEDGER_INSERT_COLUMNS, LEDGER_TABLE, MIGRATIONS, insertJsonEachRow, insertTabSeparated, migrate, openStore, recordToRow,
  dateTimeText, resolveLedgerId, LedgerIdError, type LedgerStore,
} from '../../../ledger/store/index.js';
import { Shipper, storeTarget } from '../../../ledger/store/shipper.js';
import { verifyStore } from '../../../ledger/store/verify.js';
import { startClickHouse, until, type ClickHouseServer } from '../../harness/index.js';
import { event, waitForMutations } from './helpers.js';

const CLI = path.resolve('dist/agent/cli.js');

let server: ClickHouseServer;
const dirs: string[] = [];
async function tmp(name: string): Promise<string> {
  const d = await fs.mkdtemp(path.join(os.tmpdir(), `warden-fleet-${name}-`));
  dirs.push(d);
  return d;
}

beforeAll(async () => { server = await startClickHouse(); });
afterAll(async () => {
  await server?.dispose();
  await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
});

interface Built { dir: string; records: LedgerRecord[]; key: SigningKey; checkpoints: Checkpoint[] }

/** A sidecar's data dir: these events appended to its spool, a signed checkpoint every `every` records. */
async function buildLedger(dir: string, evs: readonly WardenEvent[], every: number): Promise<Built> {
  const key = await loadOrCreateSigningKey(dir);
  const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0 });
  const cp = await Checkpointer.open({ dir, key, every, intervalMs: 3_600_000, fsync: false, lastSeq: spool.lastSeq });
  const records: LedgerRecord[] = [];
  for (let i = 0; i < evs.length; i += 5) {
    const recs = await spool.append(evs.slice(i, i + 5));
    cp.add(recs);
    records.push(...recs);
    await cp.idle();
  }
  await spool.close();
  await cp.close({ lastSeq: spool.lastSeq });
  const lines = (await fs.readFile(path.join(dir, 'checkpoints.jsonl'), 'utf8')).trim().split('\n');
  return { dir, records, key, checkpoints: lines.map((l) => JSON.parse(l) as Checkpoint) };
}

async function ship(store: LedgerStore, b: Built, ledgerId: string): Promise<void> {
  const shipper = new Shipper({ dataDir: b.dir, target: storeTarget(store, ledgerId), lastSeq: () => b.records.length, flushIntervalMs: 20, prepare: () => store.migrate() });
  await shipper.start();
  await until(async () => shipper.status().committed === b.records.length
    && Number((await store.query<{ n: string }>(`SELECT count() AS n FROM ${CHECKPOINTS_TABLE} WHERE ledger_id = '${ledgerId}'`))[0].n) === new Set(b.checkpoints.map((c) => c.size)).size, 30_000, `ledger ${ledgerId} shipped`);
  await shipper.stop();
}

function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH }, timeout: 60_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('ledger identity (<dataDir>/ledger-id)', () => {
  it('is created once (random 128 bits, 0600), read back, configured, refused when it would rename a chain; an upgraded data dir adopts legacy', async () => {
    const fresh = await tmp('id');
    const a = await resolveLedgerId(fresh);
    expect(a.source).toBe('created');
    expect(a.id).toMatch(/^[0-9a-f]{32}$/);
    expect((await fs.stat(path.join(fresh, 'ledger-id'))).mode & 0o777).toBe(0o600);
    expect(await resolveLedgerId(fresh)).toEqual({ id: a.id, source: 'file' });
    expect((await resolveLedgerId(await tmp('id2'))).id).not.toBe(a.id);
    await expect(resolveLedgerId(fresh, 'eu-1')).rejects.toThrow(LedgerIdError);
    const configured = await tmp('id3');
    expect(await resolveLedgerId(configured, 'eu-1')).toEqual({ id: 'eu-1', source: 'config' });
    expect(await resolveLedgerId(configured)).toEqual({ id: 'eu-1', source: 'file' });
    await expect(resolveLedgerId(configured, "x'; DROP TABLE warden_ledger; --")).rejects.toThrow(LedgerIdError);
    // A data dir whose spool holds records from before ledger IDs: its rows in the store are ledger legacy.
    const old = await tmp('old');
    await buildLedger(old, [event(), event()], 10);
    expect(await resolveLedgerId(old)).toEqual({ id: 'legacy', source: 'legacy' });
    expect(await resolveLedgerId(old)).toEqual({ id: 'legacy', source: 'file' });
  });
});

const stores: LedgerStore[] = [];
afterAll(async () => { await Promise.allSettled(stores.map((s) => s.close())); });
let embedded: LedgerStore | null = null;
/** chdb holds one data directory per process: both embedded tests use one store, emptied between them. */
const ENGINES = [
  {
    name: 'server store on ClickHouse 18.16',
    open: async (db: string) => { const s = await openStore({ url: server.url, database: db, dataDir: await tmp('srv') }); stores.push(s); return s; },
  },
  {
    name: 'embedded store on chdb',
    open: async () => {
      if (!embedded) { embedded = await openStore({ dataDir: await tmp('chdb') }); stores.push(embedded); return embedded; }
      await embedded.migrate();
      for (const t of [LEDGER_TABLE, 'warden_lineage', CHECKPOINTS_TABLE]) await embedded.exec(`TRUNCATE TABLE ${t}`);
      return embedded;
    },
  },
] as const;

describe.each(ENGINES)('fleet ledger: $name', ({ name, open }) => {
  const isServer = name.startsWith('server');

  it('migrates a single-ledger table forward: existing rows and checkpoints become ledger legacy and still verify', async () => {
    const store = await open('fleet_migrate');
    {
      if (isServer) await (store as unknown as { beforeMigrate(): Promise<void> }).beforeMigrate();
      await migrate(store, MIGRATIONS.filter((m) => m.version <= 4));
      const b = await buildLedger(await tmp('legacy'), Array.from({ length: 40 }, (_, i) => event({ correlation_id: `old-${i % 4}` })), 10);
      // Shipped by a Warden from before ledger IDs: the old columns, the old checkpoint columns.
      await store.exec(insertTabSeparated(LEDGER_TABLE, LEDGER_INSERT_COLUMNS, b.records.map(recordToRow)));
      await store.exec(insertJsonEachRow(CHECKPOINTS_TABLE, ['size', 'root', 'ts', 'ts_ms', 'last_seq', 'key_id', 'sig'],
        b.checkpoints.map((cp) => ({ size: cp.size, root: cp.root, ts: dateTimeText(cp.ts), ts_ms: cp.ts, last_seq: cp.last_seq, key_id: cp.key_id, sig: cp.sig }))));
      const lineageBefore = b.records.filter((r) => r.event.correlation_id === 'old-1');

      await store.migrate();
      const versions = (await store.query<{ version: string }>('SELECT version FROM warden_migrations ORDER BY version')).map((r) => Number(r.version));
      expect(versions.filter((v) => v >= 5)).toEqual(isServer ? [5, 6, 7] : [5, 6, 7, 8]);
      expect(await listLedgers(store)).toEqual(['legacy']);
      const create = await store.query<{ statement: string }>(`SHOW CREATE TABLE ${LEDGER_TABLE}`);
      expect(create[0].statement.replace(/\s+/g, ' ')).toContain('ORDER BY (ledger_id, queue, ts, seq)');
      // The old tables stay, with their rows, until an operator drops them.
      expect(Number((await store.query<{ n: string }>(`SELECT count() AS n FROM ${LEDGER_TABLE}_pre_fleet`))[0].n)).toBe(40);

      const fromFile = await verifyStore(store, { ledgerId: 'legacy', dataDir: b.dir, publicKeys: [b.key.publicKey], expectComplete: true });
      expect(fromFile.ok, fromFile.problem?.message).toBe(true);
      expect(fromFile.records).toBe(40);
      expect(fromFile.checkpoints.matched).toBe(4);
      const fromStore = await verifyStore(store, { ledgerId: 'legacy', publicKeys: [b.key.publicKey] });
      expect(fromStore.ok, fromStore.problem?.message).toBe(true);
      expect(fromStore.checkpoints.matched).toBe(4);
      expect(await lineage(store, 'old-1')).toEqual(lineageBefore);
      expect(lineageBefore).toHaveLength(10);

      // A run cut off after the swap but before it was recorded: the guards skip the copies.
      await store.exec('DROP TABLE warden_migrations');
      await store.migrate();
      expect(Number((await store.query<{ n: string }>(`SELECT count() AS n FROM ${LEDGER_TABLE}`))[0].n)).toBe(40);
      expect((await verifyStore(store, { ledgerId: 'legacy', dataDir: b.dir, publicKeys: [b.key.publicKey], expectComplete: true })).ok).toBe(true);
      expect(await lineage(store, 'old-1')).toEqual(lineageBefore);
    }
  });

  it('two ledgers in one table: each verifies, an event held by both counts once, a tampered row is named with its ledger and seq', async () => {
    const store = await open('fleet_two');
    {
      await store.migrate();
      // Overlap: events 10..19 reached both sidecars (same event IDs), each also has events of its own.
      const shared = Array.from({ length: 30 }, (_, i) => event({ correlation_id: `work-${i % 3}`, job_id: `job-${i}` }));
      const onlyA = Array.from({ length: 10 }, (_, i) => event({ correlation_id: 'work-a', job_id: `a-${i}` }));
      const onlyB = Array.from({ length: 5 }, (_, i) => event({ correlation_id: 'work-1', job_id: `b-${i}` }));
      const a = await buildLedger(await tmp('a'), [...shared.slice(0, 20), ...onlyA], 7);
      const b = await buildLedger(await tmp('b'), [...shared.slice(10), ...onlyB], 7);
      const idA = (await resolveLedgerId(a.dir, 'sidecar-a')).id;
      const idB = (await resolveLedgerId(b.dir)).id;
      await Promise.all([ship(store, a, idA), ship(store, b, idB)]);

      expect(await listLedgers(store)).toEqual([idA, idB].sort());
      // Proofs name their ledger.
      const proof = await proveInclusion(a.dir, a.records[3].event.event_id);
      expect(proof.ledger_id).toBe(idA);
      expect(verifyInclusionProof(proof, a.key.publicKey).ok).toBe(true);
      for (const [x, id] of [[a, idA], [b, idB]] as const) {
        const local = await verifyStore(store, { ledgerId: id, dataDir: x.dir, publicKeys: [x.key.publicKey], expectComplete: true });
        expect(local.ok, local.problem?.message).toBe(true);
        expect([local.records, local.lastSeq, local.checkpoints.matched]).toEqual([x.records.length, x.records.length, new Set(x.checkpoints.map((c) => c.size)).size]);
        const remote = await verifyStore(store, { ledgerId: id, publicKeys: [a.key.publicKey, b.key.publicKey] });
        expect(remote.ok, remote.problem?.message).toBe(true);
      }
      // Another sidecar's checkpoints need its key.
      const wrongKey = await verifyStore(store, { ledgerId: idB, publicKeys: [a.key.publicKey] });
      expect(wrongKey.problem?.kind).toBe('checkpoint-signature');
      expect(wrongKey.problem?.ledgerId).toBe(idB);

      // One answer across the fleet: 30 shared + 10 + 5 events, each once.
      const unique = new Set([...shared, ...onlyA, ...onlyB].map((e) => e.event_id));
      expect(Number((await store.query<{ n: string }>(`SELECT count() AS n FROM ${LEDGER_TABLE}`))[0].n)).toBe(a.records.length + b.records.length);
      expect(await countEvents(store, {})).toBe(unique.size);
      const all = await queryEvents(store, {});
      expect(all.map((r) => r.event.event_id)).toEqual([...unique].sort());
      expect(await countEvents(store, { ledgerId: idB })).toBe(b.records.length);
      const pages: string[] = [];
      const exported = await exportEvents(store, {}, 'jsonl', (s) => { pages.push(s); }, { pageSize: 7 });
      expect(exported.rows).toBe(unique.size);
      const ids = pages.join('').trim().split('\n').map((l) => (JSON.parse(l) as { event_id: string }).event_id);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.length).toBe(unique.size);
      const story = await lineage(store, 'work-1');
      const want = [...shared, ...onlyB].filter((e) => e.correlation_id === 'work-1');
      expect(story.map((r) => r.event.event_id).sort()).toEqual(want.map((e) => e.event_id).sort());
      expect(await countEvents(store, { jobId: 'job-15' })).toBe(1);
      expect(await queryEvents(store, { jobId: 'job-15' })).toHaveLength(1);

      // Tamper with ledger B's seq 9 (an event both ledgers hold): B fails there, A still verifies.
      await store.exec(`ALTER TABLE ${LEDGER_TABLE} UPDATE error = 'rewritten' WHERE ledger_id = '${idB}' AND seq = 9`);
      await waitForMutations(store, LEDGER_TABLE);
      const bad = await verifyStore(store, { ledgerId: idB, dataDir: b.dir, publicKeys: [b.key.publicKey] });
      expect(bad.ok).toBe(false);
      expect(bad.problem).toMatchObject({ kind: 'modified', seq: 9, ledgerId: idB });
      expect(bad.problem!.message).toMatch(/^record seq 9 was altered/);
      expect((await verifyStore(store, { ledgerId: idA, dataDir: a.dir, publicKeys: [a.key.publicKey] })).ok).toBe(true);

      if (isServer) {
        // The CLI from sidecar A's data dir: every ledger in the store, B named with its seq.
        const r = await warden(['ledger', 'verify', '--store', 'clickhouse', '--clickhouse-url', server.url, '--clickhouse-database', 'fleet_two',
          '--data-dir', a.dir, '--public-key', keyPaths(a.dir).publicFile, keyPaths(b.dir).publicFile]);
        expect(r.code, r.stdout + r.stderr).toBe(1);
        expect(r.stdout).toContain(`2 ledger(s) in the server store`);
        expect(r.stdout).toContain(`ledger ${idA} (this data dir): store intact: ${a.records.length} records`);
        expect(r.stdout).toContain(`STORE TAMPERED: first bad record seq 9 (modified) of ledger ${idB}:`);
        expect(r.stdout).toContain('1 of 2 ledger(s) TAMPERED');
        const onlyAOk = await warden(['ledger', 'verify', '--store', 'clickhouse', '--clickhouse-url', server.url, '--clickhouse-database', 'fleet_two',
          '--data-dir', a.dir, '--ledger-id', idA]);
        expect(onlyAOk.code, onlyAOk.stdout + onlyAOk.stderr).toBe(0);
        expect(onlyAOk.stdout).toContain(`1 ledger(s) in the server store`);
      }
    }
  });
});
