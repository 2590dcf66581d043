/**
 * Issue 12, observation 10: a row inserted twice in ClickHouse. `warden ledger verify --store` fails
 * naming its seq, and every compliance query and dashboard panel counts each event_id once, on
 * ClickHouse 18.16 (server) and on the embedded engine (chdb).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import type { KeyObject } from 'node:crypto';
import { Checkpointer, loadOrCreateSigningKey, loadPublicKey, Spool, type LedgerRecord } from '../../ledger/index.js';
import * as c from '../../ledger/compliance/queries.js';
import { openStore, type LedgerStore } from '../../ledger/store/index.js';
import { verifyStore } from '../../ledger/store/verify.js';
import { startClickHouse, type ClickHouseServer } from '../harness/index.js';
import { removeDir, tempDir } from '../harness/ledger.js';

const CLI = path.resolve('dist/agent/cli.js');
const T0 = Date.UTC(2026, 10, 20, 10);

function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH }, timeout: 60_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function story(): WardenEvent[] {
  const out: WardenEvent[] = [];
  for (let i = 0; i < 3; i++) {
    const base = { source: 'bullmq' as const, queue: 'loans', correlation_id: `loan-${i}`, job_id: `j${i}`, model: 'm', model_version: '1', policy: 'p', policy_version: '2' };
    const t = T0 + i * 1000;
    out.push(
      makeEvent({ ...base, kind: 'job.added', ts: t }),
      makeEvent({ ...base, source: 'warden', kind: 'policy.decision', decision: 'require_approval', reason: 'large loan', ts: t + 1 }),
      makeEvent({ ...base, source: 'warden', kind: 'approval.granted', actor: 'alice', ts: t + 2 }),
      makeEvent({ ...base, kind: 'job.completed', ts: t + 3, duration_ms: 5 }),
    );
  }
  return out;
}

let base: string;
let dataDir: string;
let records: LedgerRecord[];
let publicKeys: KeyObject[];
let clickhouse: ClickHouseServer;
let server: LedgerStore;
let embedded: LedgerStore;
const DB = 'trust_redact';

beforeAll(async () => {
  base = await tempDir();
  dataDir = path.join(base, 'data');
  const key = await loadOrCreateSigningKey(dataDir);
  const spool = await Spool.open({ dir: dataDir, fsync: false, groupCommitMs: 0 });
  const cp = await Checkpointer.open({ dir: dataDir, key, every: 1000, intervalMs: 3_600_000, fsync: false, lastSeq: spool.lastSeq });
  records = await spool.append(story());
  cp.add(records);
  await spool.close();
  await cp.close({ lastSeq: spool.lastSeq });
  publicKeys = [await loadPublicKey(key.publicFile)];
  [clickhouse, embedded] = await Promise.all([startClickHouse(), openStore({ dataDir })]);
  server = await openStore({ url: clickhouse.url, dataDir, database: DB });
  await Promise.all([server.migrate(), embedded.migrate()]);
});
afterAll(async () => {
  await Promise.allSettled([server?.close(), embedded?.close()]);
  await clickhouse?.dispose();
  if (base) await removeDir(base);
});

/** Every query's answer, as plain data. */
async function answers(store: LedgerStore): Promise<unknown> {
  return {
    approvals: await c.approvals(store),
    perDay: await c.approvalsPerDay(store),
    versions: await c.versions(store),
    unapproved: await c.unapproved(store),
    decisions: await c.decisions(store),
    counts: await c.decisionCounts(store),
  };
}

/** The Compliance dashboard's SQL panels with Grafana's macros expanded for the whole range. */
function dashboardSql(): { title: string; sql: string }[] {
  const d = JSON.parse(fs.readFileSync('grafana/dashboards/warden-compliance.json', 'utf8')) as { panels: { title: string; targets?: { rawSql?: string }[]; panels?: unknown[] }[] };
  const out: { title: string; sql: string }[] = [];
  const walk = (p: { title: string; targets?: { rawSql?: string }[]; panels?: unknown[] }) => {
    for (const t of p.targets ?? []) {
      if (!t.rawSql) continue;
      out.push({ title: p.title, sql: t.rawSql.replace(/\$__timeFilter\((\w+)\)/g, '$1 >= toDateTime(0)').replace(/\$\{queue:regex\}/g, '.*').replace(/\$\{[^}]+\}/g, '.*') });
    }
    for (const c2 of (p.panels ?? []) as typeof p[]) walk(c2);
  };
  for (const p of d.panels) walk(p);
  return out;
}

describe.each([
  { name: 'ClickHouse 18.16 server', get: () => server, args: () => ['--store', 'clickhouse', '--clickhouse-url', clickhouse.url, '--clickhouse-database', DB] },
  { name: 'embedded chdb', get: () => embedded, args: () => null },
])('a row inserted twice: $name', ({ get, args }) => {
  it('verify --store fails naming the seq; queries and dashboard panels count each event once', async () => {
    const store = get();
    await store.insert(records);
    const clean = await answers(store);
    const panelsClean = await Promise.all(dashboardSql().map(async (p) => ({ title: p.title, rows: await store.query(p.sql) })));
    const before = await verifyStore(store, { dataDir, publicKeys });
    expect(before.problem).toBeUndefined();
    expect(before.ok).toBe(true);
    expect((clean as { counts: { decisions: number }[] }).counts).toEqual([{ policy: 'p', policy_version: '2', decision: 'require_approval', decisions: 3 }]);

    // A repeated insert of a decision and an approval (seq 6 and 7).
    const twice = records.filter((r) => r.seq === 6 || r.seq === 7);
    await store.insert(twice);
    const r = await verifyStore(store, { dataDir, publicKeys });
    expect(r.ok).toBe(false);
    expect(r.problem).toMatchObject({ kind: 'duplicated', seq: 6 });
    const a = args(); // the CLI on the server (the embedded engine is held open by this process)
    if (a) {
      const cli = await warden(['ledger', 'verify', '--data-dir', dataDir, ...a]);
      expect(cli.stdout).toMatch(/STORE TAMPERED: first bad record seq 6 \(duplicated\)/);
      expect(cli.code).toBe(1);
    }

    expect(await answers(store)).toEqual(clean);
    const panels = await Promise.all(dashboardSql().map(async (p) => ({ title: p.title, rows: await store.query(p.sql) })));
    expect(panels.length).toBeGreaterThanOrEqual(6);
    expect(panels).toEqual(panelsClean);
  });
});
