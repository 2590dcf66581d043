/**
 * The sidecar shipping its ledger into a real ClickHouse server while BullMQ work runs, through an
 * outage: /readyz says why, the backlog and error metrics rise, and when the server returns the
 * backlog drains with nothing lost or duplicated; signed checkpoints land beside the records.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Spool } from '../../ledger/spool/spool.js';
import { openStore, type LedgerStore } from '../../ledger/store/index.js';
import { httpGet, startClickHouse, startRedis, tempDir, type ClickHouseServer, type RedisServer, type TempDir } from '../harness/index.js';
import { runWorkload, until, waitFinished } from '../harness/bullmq.js';
import { startSidecarProcess, sumMetric } from '../harness/sidecar.js';

let redis: RedisServer;
let clickhouse: ClickHouseServer;
let dir: TempDir;
let store: LedgerStore;
beforeAll(async () => {
  [redis, clickhouse, dir] = await Promise.all([startRedis(), startClickHouse(), tempDir('warden-ship')]);
  store = await openStore({ url: clickhouse.url, dataDir: dir.path, database: 'warden_e2e' });
});
afterAll(async () => {
  await store?.close();
  await clickhouse?.dispose();
  await redis?.dispose();
  await dir?.cleanup();
});

async function spoolSeq(dataDir: string): Promise<number> {
  let n = 0;
  for await (const r of Spool.read(dataDir)) n = r.seq;
  return n;
}

const inStore = async () => {
  const [r] = await store.query<{ n: string; d: string }>('SELECT count() AS n, uniqExact(seq) AS d FROM warden_ledger');
  return { rows: Number(r.n), distinct: Number(r.d) };
};

describe('shipping the ledger to ClickHouse', () => {
  it('drains a backlog built during a ClickHouse outage: zero lost, zero duplicated; readyz and metrics tell', async () => {
    const dataDir = join(dir.path, 'data');
    const sidecar = await startSidecarProcess({
      redisUrl: redis.url, dataDir: dir.path, queues: ['s1'],
      env: { WARDEN_CLICKHOUSE_URL: clickhouse.url, WARDEN_CLICKHOUSE_DATABASE: 'warden_e2e' },
    });
    const w1 = await runWorkload(redis.url, { queues: ['s1'], jobsPerQueue: 100, seed: 8, failRate: 0.2 });
    await waitFinished(w1);
    await until(async () => (await inStore().catch(() => ({ rows: 0 }))).rows > 300, 20_000, 'first records in ClickHouse');

    await clickhouse.stop();
    const w2 = await runWorkload(redis.url, { queues: ['s1'], jobsPerQueue: 150, seed: 9, failRate: 0.2 });
    await waitFinished(w2);
    await until(async () => (await httpGet(`${sidecar.url}/readyz`)).status === 503, 20_000, 'readyz to report the outage');
    const ready = JSON.parse((await httpGet(`${sidecar.url}/readyz`)).body) as { reasons: string[] };
    expect(ready.reasons.join(' ')).toMatch(/ledger store .* failing since .* records waiting on disk/);
    const m = await sidecar.metrics();
    expect(sumMetric(m, 'warden_ledger_ship_errors_total', {})).toBeGreaterThan(0);
    expect(m).toMatch(/warden_ledger_backlog_events [1-9]\d*/);

    await clickhouse.start();
    await until(async () => (await httpGet(`${sidecar.url}/readyz`)).status === 200, 30_000, 'readyz back');
    await until(async () => /warden_ledger_backlog_events 0\b/.test(await sidecar.metrics()), 30_000, 'backlog drained');
    await sidecar.proc.stop();
    const total = await spoolSeq(dataDir);
    expect(await inStore()).toEqual({ rows: total, distinct: total });
    // The signed checkpoints are in ClickHouse too (the file copy stays in the data dir).
    const [cp] = await store.query<{ n: string; m: string }>('SELECT count() AS n, max(size) AS m FROM warden_checkpoints');
    expect(Number(cp.n)).toBeGreaterThan(0);
    expect(Number(cp.m)).toBe(total); // the final checkpoint, written at stop, covers everything
    await w1.close();
    await w2.close();
  });
});
