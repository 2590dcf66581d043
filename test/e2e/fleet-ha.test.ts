/**
 * Fleet HA on real processes: two `warden start` sidecars in fleet mode (WARDEN_FLEET=1) on one Redis
 * split four BullMQ queues under leases; one is killed with SIGKILL mid-workload; the other takes its
 * queues over from the fleet's recorded positions once the leases lapse. Afterwards every job has
 * exactly one terminal outcome across the two spools and both chains verify.
 *
 * Event IDs of BullMQ-derived events are still random on this branch (deterministic IDs are the ledger
 * half of the issue), so the overlap a takeover re-reads is recognized by (queue, job_id, kind): the
 * test counts distinct terminal outcomes per job, and reports the overlap records it found.
 */
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../core/event.js';
import { leaseKey, leasePositionKey } from '../../collectors/bullmq/lease.js';
import { Spool } from '../../ledger/spool/spool.js';
import { verifyLedger } from '../../ledger/spool/verify.js';
import { startRedis, tempDir, type RedisServer, type TempDir } from '../harness/index.js';
import { runWorkload, until } from '../harness/bullmq.js';
import { startSidecarProcess, sumMetric, type SidecarProcess } from '../harness/sidecar.js';

let redis: RedisServer;
let dir: TempDir;
beforeAll(async () => { [redis, dir] = await Promise.all([startRedis(), tempDir('warden-fleet')]); });
afterAll(async () => { await redis?.dispose(); await dir?.cleanup(); });

async function ledgerEvents(dataDir: string): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const rec of Spool.read(dataDir)) out.push(rec.event);
  return out;
}
const isTerminal = (e: WardenEvent) => e.kind === 'job.completed' || e.kind === 'job.failed';

describe('fleet: two sidecars on one Redis', () => {
  it('kill -9 of one sidecar mid-run: the other takes its queues over after the lease; every job has exactly one terminal outcome across both spools', async () => {
    const queues = ['fl-a', 'fl-b', 'fl-c', 'fl-d'];
    const leaseMs = 3000;
    const env = { WARDEN_FLEET: '1', WARDEN_FLEET_LEASE_MS: String(leaseMs), WARDEN_CLICKHOUSE: 'off' };
    const start = (name: string) => startSidecarProcess({ redisUrl: redis.url, dataDir: join(dir.path, name), queues, env: { ...env, WARDEN_FLEET_MEMBER_ID: name } });
    const held = async (s: SidecarProcess) => sumMetric(await s.metrics(), 'warden_fleet_leases_held', {});
    const r = new Redis(redis.url);
    let one: SidecarProcess | null = await start('one');
    const two = await start('two');
    try {
      // The newcomer gets its share: two queues each.
      await until(async () => (await held(one!)) === 2 && (await held(two)) === 2, 30_000, 'queues spread 2/2');
      const holders = await Promise.all(queues.map((q) => r.hget(leaseKey('bull', q), 'holder')));
      const ofOne = queues.filter((_, i) => holders[i] === 'one');
      expect(ofOne).toHaveLength(2);

      const w = await runWorkload(redis.url, { queues, jobsPerQueue: 120, seed: 21, failRate: 0.3, workMs: 40 });
      const total = queues.length * 120;
      await until(async () => sumMetric(await one!.metrics(), 'warden_jobs_total', { outcome: 'completed' }) > 40, 30_000, 'one makes progress');
      await one.proc.kill9();
      const killedAt = performance.now();
      one = null;
      await until(async () => sumMetric(await two.metrics(), 'warden_fleet_takeovers_total', {}) === 2, 60_000, 'two takes over');
      const takeoverMs = Math.round(performance.now() - killedAt);
      console.log(`takeover ${takeoverMs} ms after kill -9 (lease ${leaseMs} ms, renewed every ${leaseMs / 3} ms)`);
      expect(await held(two)).toBe(4);
      for (const q of ofOne) expect(await r.hget(leaseKey('bull', q), 'holder')).toBe('two');

      // BullMQ's own count of finished jobs, then the fleet's records of them.
      await until(async () => (await Promise.all(queues.map(async (q) => (await r.zcard(`bull:${q}:completed`)) + (await r.zcard(`bull:${q}:failed`))))).reduce((a, b) => a + b, 0) === total, 90_000, 'workload done');
      const distinct = async () => {
        const evs = [...await ledgerEvents(join(dir.path, 'one', 'data')), ...await ledgerEvents(join(dir.path, 'two', 'data'))].filter(isTerminal);
        return new Set(evs.map((e) => `${e.queue}/${e.job_id}`)).size;
      };
      await until(async () => (await distinct()) === total, 60_000, 'every job has a terminal record in the fleet');
      await w.close();
      await two.proc.stop();

      const evOne = await ledgerEvents(join(dir.path, 'one', 'data'));
      const evTwo = await ledgerEvents(join(dir.path, 'two', 'data'));
      const outcomes = new Map<string, Set<string>>();
      const records = new Map<string, number>();
      for (const e of [...evOne, ...evTwo].filter(isTerminal)) {
        const job = `${e.queue}/${e.job_id}`;
        outcomes.set(job, (outcomes.get(job) ?? new Set()).add(e.kind));
        records.set(`${job}/${e.kind}`, (records.get(`${job}/${e.kind}`) ?? 0) + 1);
      }
      expect(outcomes.size).toBe(total);
      for (const [job, kinds] of outcomes) expect([...kinds], job).toHaveLength(1);
      // Agreement with BullMQ: failed jobs are the ones in BullMQ's failed sets.
      const failedInBullmq = (await Promise.all(queues.map((q) => r.zcard(`bull:${q}:failed`)))).reduce((a, b) => a + b, 0);
      expect([...outcomes.values()].filter((k) => k.has('job.failed')).length).toBe(failedInBullmq);
      // Each queue was collected by one sidecar at a time: one's records of its queues stop at the kill, two's
      // records of them start at the fleet position; overlap is at most what one appended but had not advanced.
      const overlap = [...records.values()].filter((n) => n > 1).length;
      console.log(`terminal records: one ${evOne.filter(isTerminal).length}, two ${evTwo.filter(isTerminal).length}; overlap (same queue, job, kind in both) ${overlap}`);
      for (const q of queues.filter((x) => !ofOne.includes(x))) expect(evOne.some((e) => e.queue === q && isTerminal(e)), `one never collected ${q}`).toBe(false);
      expect(overlap).toBeLessThan(total / 4);
      // The fleet's position of every queue is two's now, and both chains verify.
      for (const q of queues) expect(await r.hget(leasePositionKey('bull', q), 'holder')).toBe('two');
      expect((await verifyLedger(join(dir.path, 'one', 'data'))).ok).toBe(true);
      expect((await verifyLedger(join(dir.path, 'two', 'data'))).ok).toBe(true);
    } finally {
      r.disconnect();
      await one?.proc.kill9().catch(() => undefined);
      await two.proc.stop().catch(() => undefined);
    }
  }, 240_000);
});
