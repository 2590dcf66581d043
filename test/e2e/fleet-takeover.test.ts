/**
 * Issue 16's must-show, end to end on real processes and servers: two `warden start` sidecars in fleet
 * mode (WARDEN_FLEET=1, 3 s lease) on one Redis, both shipping into ClickHouse (one 18.16 server, then
 * the two-shard 18.16 cluster with ZooKeeper). A workload over four queues; `kill -9` of one sidecar
 * mid-run; the other takes its queues over (takeover time printed, not asserted). The killed sidecar is
 * then restarted on its data dir: it keeps its ledger_id and ships the backlog it had spooled but not
 * shipped. Before that restart, every job already has its terminal record in ClickHouse: the fleet's
 * position advances only to what the holder has shipped, so the survivor re-reads the rest. Afterwards every job has exactly one terminal record in the fleet's compliance reads (export,
 * counts, lineage; each event_id once), both ledgers verify in ClickHouse, and a tampered row in either
 * is named with its ledger and seq (exit 1).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaseKey } from '../../collectors/bullmq/lease.js';
import { keyPaths } from '../../ledger/checkpoints/keys.js';
import { exportEvents } from '../../ledger/compliance/export.js';
import { countEvents, lineage } from '../../ledger/compliance/queries.js';
import { Spool } from '../../ledger/spool/spool.js';
import { openStore, type LedgerStore } from '../../ledger/store/index.js';
import { startClickHouse, startRedis, tempDir, type ClickHouseServer, type RedisServer, type TempDir } from '../harness/index.js';
import { startClickHouseCluster, type ClickHouseCluster } from '../harness/clickhouse-cluster.js';
import { runWorkload, until } from '../harness/bullmq.js';
import { startSidecarProcess, sumMetric, type SidecarProcess } from '../harness/sidecar.js';
import { waitForMutations } from '../ledger/store/helpers.js';

const CLI = resolve('dist/agent/cli.js');
const TERMINAL = ['job.completed', 'job.failed'];
const LEASE_MS = 3000;
const JOBS = 100;

function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH }, timeout: 120_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function spoolCount(dataDir: string): Promise<number> {
  let n = 0;
  for await (const _ of Spool.read(dataDir)) n++;
  return n;
}

/** Where the two sidecars ship and how the test reads, verifies and tampers with the store. */
interface Target {
  /** Env of sidecar i (0 = the one killed, 1 = the survivor). */
  env(i: number): Record<string, string>;
  store: LedgerStore;
  /** `--store clickhouse ...` arguments of `warden ledger verify` (without --data-dir and keys). */
  verifyArgs: string[];
  /** ALTER TABLE ... UPDATE of one row, waited for. */
  tamper(ledgerId: string, seq: number, set: string): Promise<void>;
}

async function takeoverScenario(name: string, redisUrl: string, base: string, t: Target): Promise<void> {
  const queues = ['a', 'b', 'c', 'd'].map((x) => `${name}-${x}`);
  const num = async (sql: string): Promise<number> => Number((await t.store.query<{ n: string }>(sql))[0]?.n ?? 0);
  const rowsOf = (id: string) => num(`SELECT count() AS n FROM warden_ledger WHERE ledger_id = '${id}'`).catch(() => -1);
  const fleet = { WARDEN_FLEET: '1', WARDEN_FLEET_LEASE_MS: String(LEASE_MS) };
  const start = (i: number) => startSidecarProcess({
    redisUrl, dataDir: join(base, `s${i}`), queues, env: { ...fleet, ...t.env(i), WARDEN_FLEET_MEMBER_ID: `${name}-${i}` },
  });
  const held = async (s: SidecarProcess) => sumMetric(await s.metrics(), 'warden_fleet_leases_held', {});
  const dataOne = join(base, 's0', 'data');
  const dataTwo = join(base, 's1', 'data');
  const r = new Redis(redisUrl);
  let one: SidecarProcess | null = await start(0);
  let two: SidecarProcess | null = await start(1);
  try {
    await until(async () => (await held(one!)) === 2 && (await held(two!)) === 2, 30_000, 'queues spread 2/2');
    const ofOne = (await Promise.all(queues.map(async (q) => [q, await r.hget(leaseKey('bull', q), 'holder')] as const))).filter(([, h]) => h === `${name}-0`).map(([q]) => q);
    expect(ofOne).toHaveLength(2);
    const idOne = (await readFile(join(dataOne, 'ledger-id'), 'utf8')).trim();
    const idTwo = (await readFile(join(dataTwo, 'ledger-id'), 'utf8')).trim();
    expect(idOne).not.toBe(idTwo);

    const w = await runWorkload(redisUrl, { queues, jobsPerQueue: JOBS, seed: 16, failRate: 0.3, workMs: 40 });
    const total = queues.length * JOBS;
    // Kill one once it has shipped some of its records to ClickHouse.
    await until(async () => sumMetric(await one!.metrics(), 'warden_jobs_total', { outcome: 'completed' }) > 30 && (await rowsOf(idOne)) > 0, 60_000, 'one collects and ships');
    await one.proc.kill9();
    const killedAt = performance.now();
    one = null;
    const [spooledAtKill, shippedAtKill] = [await spoolCount(dataOne), await rowsOf(idOne)];
    await until(async () => sumMetric(await two!.metrics(), 'warden_fleet_takeovers_total', {}) === 2, 60_000, 'two takes over');
    const takeoverMs = Math.round(performance.now() - killedAt);
    expect(await held(two)).toBe(4);
    for (const q of ofOne) expect(await r.hget(leaseKey('bull', q), 'holder')).toBe(`${name}-1`);

    const finished = async () => (await Promise.all(queues.map(async (q) => (await r.zcard(`bull:${q}:completed`)) + (await r.zcard(`bull:${q}:failed`))))).reduce((a, b) => a + b, 0);
    await until(async () => (await finished()) === total, 90_000, 'workload done');
    await w.close();
    // Before the restart: the fleet's position advanced only as far as each holder had shipped, so the
    // survivor re-read what only the killed sidecar's spool held, and ClickHouse has every job already.
    await until(async () => (await rowsOf(idTwo)) === await spoolCount(dataTwo), 60_000, 'the survivor ships what it spooled');
    const terminalEvents = () => num(`SELECT uniqExact(event_id) AS n FROM warden_ledger WHERE kind IN ('job.completed', 'job.failed')`).catch(() => 0);
    const terminalJobs = () => num(`SELECT uniqExact(queue, job_id) AS n FROM warden_ledger WHERE kind IN ('job.completed', 'job.failed')`).catch(() => 0);
    await until(async () => (await terminalJobs()) === total, 60_000, 'every job has its terminal record in ClickHouse before the killed sidecar restarts');
    const beforeRestart = await terminalEvents();
    expect(beforeRestart).toBe(total);
    expect(await terminalJobs()).toBe(total);

    // The killed sidecar comes back on its data dir: same ledger_id, and its unshipped backlog is shipped.
    one = await start(0);
    expect((await readFile(join(dataOne, 'ledger-id'), 'utf8')).trim()).toBe(idOne);
    await until(async () => (await rowsOf(idOne)) === await spoolCount(dataOne), 60_000, 'the restarted sidecar ships its backlog');
    await until(async () => (await terminalEvents()) === total && (await rowsOf(idTwo)) === await spoolCount(dataTwo), 90_000, 'every job has its terminal event in ClickHouse');
    await Promise.all([one.proc.stop(), two.proc.stop()]);
    one = null;
    two = null;
    expect((await t.store.query<{ l: string }>('SELECT DISTINCT ledger_id AS l FROM warden_ledger ORDER BY l')).map((x) => x.l)).toEqual([idOne, idTwo].sort());
    expect(await rowsOf(idOne)).toBe(await spoolCount(dataOne));
    expect(await rowsOf(idTwo)).toBe(await spoolCount(dataTwo));

    // The fleet's answer: one terminal record per job, in agreement with BullMQ.
    const lines: string[] = [];
    const exported = await exportEvents(t.store, { kind: TERMINAL }, 'jsonl', (s) => { lines.push(s); }, { pageSize: 64 });
    expect(exported.rows).toBe(total);
    const perJob = new Map<string, string[]>();
    for (const l of lines.join('').trim().split('\n')) {
      const e = JSON.parse(l) as { queue: string; job_id: string; kind: string };
      perJob.set(`${e.queue}/${e.job_id}`, [...(perJob.get(`${e.queue}/${e.job_id}`) ?? []), e.kind]);
    }
    expect(perJob.size).toBe(total);
    for (const [job, kinds] of perJob) expect(kinds, job).toHaveLength(1);
    const failedInBullmq = (await Promise.all(queues.map((q) => r.zcard(`bull:${q}:failed`)))).reduce((a, b) => a + b, 0);
    expect([...perJob.values()].filter((k) => k[0] === 'job.failed')).toHaveLength(failedInBullmq);
    expect(await countEvents(t.store, { kind: TERMINAL })).toBe(total);
    for (const q of ofOne) {
      const job = w.jobIds.get(q)![JOBS - 1];
      const story = await lineage(t.store, `bullmq:${q}:${job}`);
      expect(story.filter((x) => TERMINAL.includes(x.event.kind)), `${q}/${job}`).toHaveLength(1);
      expect(new Set(story.map((x) => x.event.event_id)).size).toBe(story.length);
    }
    // Terminal events recorded by both ledgers (the overlap a takeover re-reads): one event_id each.
    const overlap = await num(`SELECT count() AS n FROM (SELECT event_id FROM warden_ledger WHERE kind IN ('job.completed', 'job.failed') GROUP BY event_id HAVING uniqExact(ledger_id) = 2)`);
    const rowsTerminal = await num(`SELECT count() AS n FROM warden_ledger WHERE kind IN ('job.completed', 'job.failed')`);
    console.log(`[${name}] takeover ${takeoverMs} ms after kill -9 (lease ${LEASE_MS} ms); killed sidecar: ${spooledAtKill} records spooled, ${shippedAtKill} shipped at the kill, backlog ${spooledAtKill - shippedAtKill} shipped after restart; jobs with a terminal event in ClickHouse before the restart ${beforeRestart} of ${total}; terminal rows ${rowsTerminal} for ${total} jobs, ${overlap} terminal events in both ledgers`);

    // Both ledgers verify in ClickHouse (from the killed sidecar's data dir, with both public keys).
    const keys = ['--public-key', keyPaths(dataOne).publicFile, keyPaths(dataTwo).publicFile];
    const via = [...t.verifyArgs, '--data-dir', dataOne];
    const ok = await warden(['ledger', 'verify', ...via, ...keys, '--expect-complete']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`ledger ${idOne} (this data dir): store intact`);
    expect(ok.stdout).toContain(`ledger ${idTwo}: store intact`);
    expect(ok.stdout).toContain('all 2 ledgers intact');

    // A tampered row in the survivor's ledger, then in the killed one's: each named with ledger and seq.
    const seqOf = async (id: string, offset: number) => num(`SELECT seq AS n FROM warden_ledger WHERE ledger_id = '${id}' AND kind = 'job.completed' ORDER BY seq LIMIT 1 OFFSET ${offset}`);
    const [seqOne, seqTwo] = [await seqOf(idOne, 10), await seqOf(idTwo, 25)];
    await t.tamper(idTwo, seqTwo, "error = 'edited'");
    const badTwo = await warden(['ledger', 'verify', ...via, ...keys]);
    expect(badTwo.code, badTwo.stdout + badTwo.stderr).toBe(1);
    expect(badTwo.stdout).toContain(`STORE TAMPERED: first bad record seq ${seqTwo} (modified) of ledger ${idTwo}:`);
    expect(badTwo.stdout).toContain(`ledger ${idOne} (this data dir): store intact`);
    await t.tamper(idOne, seqOne, 'attempt = 9');
    const both = await warden(['ledger', 'verify', ...via, ...keys]);
    expect(both.code, both.stdout + both.stderr).toBe(1);
    expect(both.stdout).toContain(`STORE TAMPERED: first bad record seq ${seqOne} (modified) of ledger ${idOne}:`);
    expect(both.stdout).toContain(`STORE TAMPERED: first bad record seq ${seqTwo} (modified) of ledger ${idTwo}:`);
    expect(both.stdout).toContain('2 of 2 ledger(s) TAMPERED');
  } finally {
    r.disconnect();
    await one?.proc.kill9().catch(() => undefined);
    await two?.proc.kill9().catch(() => undefined);
  }
}

describe('fleet takeover, one ClickHouse server', () => {
  const DB = 'warden_takeover';
  let redis: RedisServer;
  let clickhouse: ClickHouseServer;
  let dir: TempDir;
  let store: LedgerStore;
  beforeAll(async () => {
    [redis, clickhouse, dir] = await Promise.all([startRedis(), startClickHouse(), tempDir('warden-fleet-takeover')]);
    store = await openStore({ url: clickhouse.url, dataDir: dir.path, database: DB });
  });
  afterAll(async () => {
    await store?.close();
    await clickhouse?.dispose();
    await redis?.dispose();
    await dir?.cleanup();
  });

  it('kill -9 of one of two shipping sidecars: takeover; one terminal per job across ledgers; both verify; tampering named by ledger and seq', async () => {
    await takeoverScenario('one', redis.url, dir.path, {
      env: () => ({ WARDEN_CLICKHOUSE_URL: clickhouse.url, WARDEN_CLICKHOUSE_DATABASE: DB }),
      store,
      verifyArgs: ['--store', 'clickhouse', '--clickhouse-url', clickhouse.url, '--clickhouse-database', DB],
      tamper: async (id, seq, set) => {
        await store.exec(`ALTER TABLE warden_ledger UPDATE ${set} WHERE ledger_id = '${id}' AND seq = ${seq}`);
        await waitForMutations(store, 'warden_ledger');
      },
    });
  }, 240_000);
});

describe('fleet takeover, two-shard ClickHouse cluster', () => {
  let redis: RedisServer;
  let cluster: ClickHouseCluster;
  let dir: TempDir;
  let store: LedgerStore;
  beforeAll(async () => {
    [redis, cluster, dir] = await Promise.all([startRedis(), startClickHouseCluster({ shards: 2, name: 'warden_takeover' }), tempDir('warden-fleet-takeover-cluster')]);
    store = await openStore({ url: cluster.nodes[0].url, dataDir: dir.path });
  }, 120_000);
  afterAll(async () => {
    await store?.close();
    await cluster?.dispose();
    await redis?.dispose();
    await dir?.cleanup();
  });

  it('the same on two shards: schema --cluster, each sidecar ships through its own node, the reads go through the Distributed tables', async () => {
    const schema = await warden(['ledger', 'schema', '--cluster', cluster.name]);
    expect(schema.code, schema.stderr).toBe(0);
    for (const s of schema.stdout.split(/;\n\n/).map((x) => x.replace(/^--.*\n/gm, '').trim()).filter(Boolean)) await cluster.nodes[0].query(s);
    await until(async () => {
      for (const n of cluster.nodes) if ((await n.query("SELECT count() FROM system.tables WHERE database = 'default' AND name = 'warden_ledger'")).trim() !== '1') return false;
      return true;
    }, 30_000, 'the Distributed tables on every node');
    await takeoverScenario('two', redis.url, dir.path, {
      env: (i) => ({ WARDEN_CLICKHOUSE_URL: cluster.nodes[i].url }),
      store,
      verifyArgs: ['--store', 'clickhouse', '--clickhouse-url', cluster.nodes[1].url],
      tamper: async (id, seq, set) => {
        for (const n of cluster.nodes) await n.query(`ALTER TABLE warden_ledger_local UPDATE ${set} WHERE ledger_id = '${id}' AND seq = ${seq}`);
        await until(async () => {
          for (const n of cluster.nodes) if (Number((await n.query("SELECT count() FROM system.mutations WHERE table = 'warden_ledger_local' AND is_done = 0")).trim()) !== 0) return false;
          return true;
        }, 30_000, 'mutations of warden_ledger_local');
      },
    });
    // Both shards hold rows of the fleet.
    const perShard = await Promise.all(cluster.nodes.map(async (n) => Number((await n.query('SELECT count() FROM warden_ledger_local')).trim())));
    expect(perShard.every((x) => x > 0), `${perShard}`).toBe(true);
  }, 300_000);
});
