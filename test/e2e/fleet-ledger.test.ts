/**
 * Fleet, ledger half, with real servers: two real sidecar processes (`warden start`) read the same
 * Redis (every stream entry seen by both: the worst overlap a failover can cause) and ship into one
 * ClickHouse 18.16. Each keeps its own chain (ledger_id); the BullMQ events they both derived from one
 * stream entry have one deterministic event ID, so the fleet's compliance reads hold exactly one
 * terminal record per job; both ledgers verify in ClickHouse, and a tampered row in either is named
 * with its ledger and seq.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyPaths } from '../../ledger/checkpoints/keys.js';
import { exportEvents } from '../../ledger/compliance/export.js';
import { countEvents, lineage } from '../../ledger/compliance/queries.js';
import { openStore, type LedgerStore } from '../../ledger/store/index.js';
import { startClickHouse, startRedis, tempDir, type ClickHouseServer, type RedisServer, type TempDir } from '../harness/index.js';
import { runWorkload, until, waitFinished } from '../harness/bullmq.js';
import { startSidecarProcess } from '../harness/sidecar.js';
import { waitForMutations } from '../ledger/store/helpers.js';

const CLI = resolve('dist/agent/cli.js');
const DB = 'warden_fleet';
const QUEUES = ['fleet-a', 'fleet-b', 'fleet-c'];
const JOBS = 60;
const TERMINAL = ['job.completed', 'job.failed'];

let redis: RedisServer;
let clickhouse: ClickHouseServer;
let dir: TempDir;
let store: LedgerStore;
beforeAll(async () => {
  [redis, clickhouse, dir] = await Promise.all([startRedis(), startClickHouse(), tempDir('warden-fleet-e2e')]);
  store = await openStore({ url: clickhouse.url, dataDir: dir.path, database: DB });
});
afterAll(async () => {
  await store?.close();
  await clickhouse?.dispose();
  await redis?.dispose();
  await dir?.cleanup();
});

function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH }, timeout: 60_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const num = async (sql: string): Promise<number> => Number((await store.query<{ n: string }>(sql))[0]?.n ?? 0);

describe('two sidecars, one Redis, one ClickHouse', () => {
  it('one terminal record per job across both ledgers; both verify; a tampered row in either is named by ledger and seq', async () => {
    const env = { WARDEN_CLICKHOUSE_URL: clickhouse.url, WARDEN_CLICKHOUSE_DATABASE: DB };
    const [a, b] = await Promise.all([
      startSidecarProcess({ redisUrl: redis.url, dataDir: join(dir.path, 'a'), queues: QUEUES, env: { ...env, WARDEN_LEDGER_ID: 'sidecar-a' } }),
      startSidecarProcess({ redisUrl: redis.url, dataDir: join(dir.path, 'b'), queues: QUEUES, env }),
    ]);
    const dataA = join(dir.path, 'a', 'data');
    const dataB = join(dir.path, 'b', 'data');
    const idA = (await readFile(join(dataA, 'ledger-id'), 'utf8')).trim();
    const idB = (await readFile(join(dataB, 'ledger-id'), 'utf8')).trim();
    expect(idA).toBe('sidecar-a');
    expect(idB).toMatch(/^[0-9a-f]{32}$/);

    const w = await runWorkload(redis.url, { queues: QUEUES, jobsPerQueue: JOBS, seed: 16, failRate: 0.25 });
    await waitFinished(w);
    const jobs = QUEUES.length * JOBS;
    const terminalIn = (id: string) => num(`SELECT count() AS n FROM warden_ledger WHERE ledger_id = '${id}' AND kind IN ('job.completed', 'job.failed')`);
    // Failed once in CI by the test's own timeout, with no word of where: each wait now names itself
    // and says what each sidecar had shipped and logged.
    const shipping = async (): Promise<string> => {
      const lines = await Promise.all([a, b].map(async (s, i) => {
        const m = await s.metrics().catch((err: Error) => `metrics unavailable: ${err.message}`);
        const own = m.split('\n').filter((l) => /^warden_ledger_(backlog_events|last_seq|ship_errors_total|shipped_total|append_errors_total)|^warden_collector_(errors_total|gaps_total|stream_entries_total)/.test(l)).join('; ');
        return `sidecar ${'ab'[i]}: terminal rows ${await terminalIn(i === 0 ? idA : idB).catch((err: Error) => err.message)}; ${own}\n${s.proc.logTail(3000)}`;
      }));
      return lines.join('\n');
    };
    await until(async () => (await terminalIn(idA).catch(() => 0)) === jobs && (await terminalIn(idB).catch(() => 0)) === jobs, 120_000, 'both ledgers to hold every terminal record')
      .catch(async (err: Error) => { throw new Error(`${err.message}\n${await shipping()}`); });
    await Promise.all([a.proc.stop(), b.proc.stop()]);
    await w.close();

    // Both sidecars recorded every job: the BullMQ events of one stream entry have one ID in both ledgers.
    const bullmqIds = async (id: string) => (await store.query<{ e: string }>(`SELECT event_id AS e FROM warden_ledger WHERE ledger_id = '${id}' AND source = 'bullmq' ORDER BY e`)).map((r) => r.e);
    const [fromA, fromB] = await Promise.all([bullmqIds(idA), bullmqIds(idB)]);
    expect(fromA.length).toBeGreaterThan(jobs * 3);
    expect(fromB).toEqual(fromA);

    // The fleet's answer: each job has exactly one terminal record (export, counts, lineage).
    const lines: string[] = [];
    const exported = await exportEvents(store, { kind: TERMINAL }, 'jsonl', (s) => { lines.push(s); }, { pageSize: 50 });
    expect(exported.rows).toBe(jobs);
    const perJob = new Map<string, number>();
    for (const l of lines.join('').trim().split('\n')) {
      const e = JSON.parse(l) as { queue: string; job_id: string };
      perJob.set(`${e.queue}/${e.job_id}`, (perJob.get(`${e.queue}/${e.job_id}`) ?? 0) + 1);
    }
    expect(perJob.size).toBe(jobs);
    expect([...perJob.values()].every((n) => n === 1)).toBe(true);
    expect(await countEvents(store, { kind: TERMINAL })).toBe(jobs);
    const someJob = w.jobIds.get('fleet-b')![7];
    const story = await lineage(store, `bullmq:fleet-b:${someJob}`);
    expect(story.filter((r) => TERMINAL.includes(r.event.kind))).toHaveLength(1);
    expect(new Set(story.map((r) => r.event.event_id)).size).toBe(story.length);
    expect(story.map((r) => r.event.kind)[0]).toBe('job.added');

    // Both ledgers verify in ClickHouse (from A's data dir, with both sidecars' public keys).
    const keys = ['--public-key', keyPaths(dataA).publicFile, keyPaths(dataB).publicFile];
    const store_ = ['--store', 'clickhouse', '--clickhouse-url', clickhouse.url, '--clickhouse-database', DB, '--data-dir', dataA];
    const ok = await warden(['ledger', 'verify', ...store_, ...keys, '--expect-complete']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toContain('2 ledger(s) in the server store');
    expect(ok.stdout).toMatch(new RegExp(`ledger sidecar-a \\(this data dir\\): store intact: \\d+ records`));
    expect(ok.stdout).toMatch(new RegExp(`ledger ${idB}: store intact: \\d+ records`));
    expect(ok.stdout).toContain('all 2 ledgers intact');

    // A terminal record's row tampered in B, then in A: each is named with its ledger and seq.
    const seqOf = async (id: string, offset: number) => num(`SELECT seq AS n FROM warden_ledger WHERE ledger_id = '${id}' AND kind = 'job.completed' ORDER BY seq LIMIT 1 OFFSET ${offset}`);
    const [seqA, seqB] = [await seqOf(idA, 20), await seqOf(idB, 30)];
    await store.exec(`ALTER TABLE warden_ledger UPDATE error = 'edited' WHERE ledger_id = '${idB}' AND seq = ${seqB}`);
    await waitForMutations(store, 'warden_ledger');
    const badB = await warden(['ledger', 'verify', ...store_, ...keys]);
    expect(badB.code, badB.stdout + badB.stderr).toBe(1);
    expect(badB.stdout).toContain(`STORE TAMPERED: first bad record seq ${seqB} (modified) of ledger ${idB}:`);
    expect(badB.stdout).toContain('ledger sidecar-a (this data dir): store intact');
    await store.exec(`ALTER TABLE warden_ledger UPDATE attempt = 9 WHERE ledger_id = '${idA}' AND seq = ${seqA}`);
    await waitForMutations(store, 'warden_ledger');
    const both = await warden(['ledger', 'verify', ...store_, ...keys]);
    expect(both.code).toBe(1);
    expect(both.stdout).toContain(`STORE TAMPERED: first bad record seq ${seqA} (modified) of ledger sidecar-a:`);
    expect(both.stdout).toContain(`STORE TAMPERED: first bad record seq ${seqB} (modified) of ledger ${idB}:`);
    expect(both.stdout).toContain('2 of 2 ledger(s) TAMPERED');
    const one = await warden(['ledger', 'verify', ...store_, ...keys, '--ledger-id', idB]);
    expect(one.code).toBe(1);
    expect(one.stdout).toContain('1 ledger(s) in the server store');
    expect(one.stdout).not.toContain('sidecar-a');
  }, 180_000);
});
