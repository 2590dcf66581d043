/**
 * Fleet, ledger half, on a real ClickHouse cluster: ZooKeeper and two ClickHouse 18.16 shards on
 * loopback (test/harness/clickhouse-cluster.ts). The schema is what `warden ledger schema --cluster`
 * prints (ON CLUSTER DDL, ReplicatedMergeTree locals, Distributed tables), run on one node. Two real
 * sidecars read one Redis (every stream entry seen by both) and ship through different nodes; the
 * fleet's compliance reads hold one terminal record per job, both ledgers verify through the
 * Distributed table, and a tampered row (on whichever shard holds it) is named with its ledger and seq.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyPaths } from '../../ledger/checkpoints/keys.js';
import { exportEvents } from '../../ledger/compliance/export.js';
import { countEvents, lineage } from '../../ledger/compliance/queries.js';
import { MIGRATIONS, openStore, type LedgerStore } from '../../ledger/store/index.js';
import { startRedis, tempDir, type RedisServer, type TempDir } from '../harness/index.js';
import { startClickHouseCluster, type ClickHouseCluster } from '../harness/clickhouse-cluster.js';
import { runWorkload, until, waitFinished } from '../harness/bullmq.js';
import { startSidecarProcess } from '../harness/sidecar.js';

const CLI = resolve('dist/agent/cli.js');
const QUEUES = ['shard-a', 'shard-b'];
const JOBS = 50;
const TERMINAL = ['job.completed', 'job.failed'];

let redis: RedisServer;
let cluster: ClickHouseCluster;
let dir: TempDir;
let store: LedgerStore;
beforeAll(async () => {
  [redis, cluster, dir] = await Promise.all([startRedis(), startClickHouseCluster({ shards: 2, name: 'warden_test' }), tempDir('warden-fleet-cluster')]);
  store = await openStore({ url: cluster.nodes[0].url, dataDir: dir.path });
}, 120_000);
afterAll(async () => {
  await store?.close();
  await cluster?.dispose();
  await redis?.dispose();
  await dir?.cleanup();
});

function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH }, timeout: 120_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const num = async (sql: string, on: LedgerStore = store): Promise<number> => Number((await on.query<{ n: string }>(sql))[0]?.n ?? 0);

/** ALTER ... UPDATE is asynchronous, per shard: waits for every node's mutations of `table`. */
async function waitMutations(table: string): Promise<void> {
  await until(async () => {
    for (const n of cluster.nodes) {
      const text = await n.query(`SELECT count() FROM system.mutations WHERE table = '${table}' AND is_done = 0`);
      if (Number(text.trim()) !== 0) return false;
    }
    return true;
  }, 30_000, `mutations of ${table}`);
}

describe('two sidecars, one Redis, a two-shard ClickHouse cluster', () => {
  it('schema --cluster runs for real; one terminal per job across ledgers and shards; both verify; a tampered row is named', async () => {
    const schema = await warden(['ledger', 'schema', '--cluster', cluster.name]);
    expect(schema.code, schema.stderr).toBe(0);
    const statements = schema.stdout.split(/;\n\n/).map((s) => s.replace(/^--.*\n/gm, '').trim()).filter(Boolean);
    expect(statements.length).toBe(9);
    for (const s of statements) await cluster.nodes[0].query(s);
    for (const n of cluster.nodes) {
      expect((await n.query("SELECT name, engine FROM system.tables WHERE database = 'default' AND name LIKE 'warden%' ORDER BY name FORMAT TSV")).trim().split('\n')).toEqual([
        'warden_checkpoints\tDistributed', 'warden_checkpoints_local\tReplicatedMergeTree', 'warden_ledger\tDistributed', 'warden_ledger_local\tReplicatedMergeTree',
        'warden_lineage\tReplicatedMergeTree', 'warden_lineage_mv\tMaterializedView', 'warden_migrations\tDistributed', 'warden_migrations_local\tReplicatedMergeTree',
      ]);
    }
    await until(async () => (await num('SELECT uniqExact(version) AS n FROM warden_migrations')) === MIGRATIONS.length, 30_000, 'migrations recorded on the cluster');

    // Each sidecar ships through a different node; the Distributed tables route the rows by correlation ID.
    const [a, b] = await Promise.all(cluster.nodes.map((n, i) => startSidecarProcess({
      redisUrl: redis.url, dataDir: join(dir.path, `s${i}`), queues: QUEUES,
      env: { WARDEN_CLICKHOUSE_URL: n.url, ...(i === 0 ? { WARDEN_LEDGER_ID: 'shard-sidecar-a' } : {}) },
    })));
    const dataA = join(dir.path, 's0', 'data');
    const dataB = join(dir.path, 's1', 'data');
    const idA = 'shard-sidecar-a';
    const idB = (await readFile(join(dataB, 'ledger-id'), 'utf8')).trim();

    const w = await runWorkload(redis.url, { queues: QUEUES, jobsPerQueue: JOBS, seed: 33, failRate: 0.25 });
    await waitFinished(w);
    const jobs = QUEUES.length * JOBS;
    const terminalIn = (id: string) => num(`SELECT count() AS n FROM warden_ledger WHERE ledger_id = '${id}' AND kind IN ('job.completed', 'job.failed')`);
    await until(async () => (await terminalIn(idA).catch(() => 0)) === jobs && (await terminalIn(idB).catch(() => 0)) === jobs, 90_000, 'both ledgers to hold every terminal record');
    await Promise.all([a.proc.stop(), b.proc.stop()]);
    await w.close();
    // Nothing still queued in the Distributed tables' send queues: what each ledger holds on the shards is final.
    await until(async () => {
      const total = await num('SELECT count() AS n FROM warden_ledger');
      await new Promise((r) => setTimeout(r, 1500));
      return total === await num('SELECT count() AS n FROM warden_ledger');
    }, 30_000, 'the Distributed inserts to settle');

    // Both shards hold rows, and copies of one event (two ledgers) sit on one shard.
    const perShard = await Promise.all(cluster.nodes.map(async (n) => Number((await n.query('SELECT count() FROM warden_ledger_local')).trim())));
    expect(perShard.every((x) => x > 0), `${perShard}`).toBe(true);
    for (const n of cluster.nodes) {
      const split = Number((await n.query("SELECT count() FROM (SELECT event_id FROM warden_ledger_local GROUP BY event_id HAVING uniqExact(ledger_id) = 1 AND event_id IN (SELECT event_id FROM warden_ledger WHERE source = 'bullmq' GROUP BY event_id HAVING uniqExact(ledger_id) = 2))")).trim());
      expect(split).toBe(0);
    }

    // The fleet's answer, through the Distributed tables: one terminal record per job.
    const lines: string[] = [];
    const exported = await exportEvents(store, { kind: TERMINAL }, 'jsonl', (s) => { lines.push(s); }, { pageSize: 40 });
    expect(exported.rows).toBe(jobs);
    const keys = new Set(lines.join('').trim().split('\n').map((l) => { const e = JSON.parse(l) as { queue: string; job_id: string }; return `${e.queue}/${e.job_id}`; }));
    expect(keys.size).toBe(jobs);
    expect(await countEvents(store, { kind: TERMINAL })).toBe(jobs);
    const job = w.jobIds.get('shard-b')![5];
    const story = await lineage(store, `bullmq:shard-b:${job}`);
    expect(story.filter((r) => TERMINAL.includes(r.event.kind))).toHaveLength(1);
    expect(story[0].event.kind).toBe('job.added');

    // Both ledgers verify through the Distributed table (the CLI pointed at the second node).
    const pub = ['--public-key', keyPaths(dataA).publicFile, keyPaths(dataB).publicFile];
    const via = ['--store', 'clickhouse', '--clickhouse-url', cluster.nodes[1].url, '--data-dir', dataA];
    const ok = await warden(['ledger', 'verify', ...via, ...pub, '--expect-complete']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toContain('all 2 ledgers intact');

    // Tamper with one of B's rows on whichever shard holds it.
    const seqB = await num(`SELECT seq AS n FROM warden_ledger WHERE ledger_id = '${idB}' AND kind = 'job.completed' ORDER BY seq LIMIT 1 OFFSET 12`);
    for (const n of cluster.nodes) await n.query(`ALTER TABLE warden_ledger_local UPDATE error = 'edited' WHERE ledger_id = '${idB}' AND seq = ${seqB}`);
    await waitMutations('warden_ledger_local');
    const bad = await warden(['ledger', 'verify', ...via, ...pub]);
    expect(bad.code, bad.stdout + bad.stderr).toBe(1);
    expect(bad.stdout).toContain(`STORE TAMPERED: first bad record seq ${seqB} (modified) of ledger ${idB}:`);
    expect(bad.stdout).toContain(`ledger ${idA} (this data dir): store intact`);
  });
});
