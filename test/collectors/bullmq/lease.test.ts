/**
 * Fleet leases (collectors/bullmq/lease.ts) on a real Redis: fencing tokens, a stale holder refused,
 * queues spread across live collectors, and a holder stalled past its lease (its append blocked)
 * losing the queue to another collector without moving the fleet's position backwards or appending
 * after it learned it lost.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaseKey, leasePositionKey, membersKey, QueueLeases } from '../../../collectors/bullmq/lease.js';
import type { CollectedBatch } from '../../../collectors/bullmq/collector.js';
import { startRedis, type RedisServer } from '../../harness/index.js';
import { memoryCollector, runWorkload, until } from '../../harness/bullmq.js';

let redis: RedisServer;
let r: Redis;
beforeAll(async () => { redis = await startRedis(); r = new Redis(redis.url); });
afterAll(async () => { r.disconnect(); await redis?.dispose(); });

const terminal = (k: string) => k === 'job.completed' || k === 'job.failed';

describe('queue leases', () => {
  it('fences: each acquisition gets a higher token; a holder whose lease lapsed cannot confirm, advance or release', async () => {
    const a = new QueueLeases(r, { prefix: 'f1', memberId: 'a', leaseMs: 1000 });
    const b = new QueueLeases(r, { prefix: 'f1', memberId: 'b', leaseMs: 1000 });
    const ra = await a.round(['q']);
    expect(ra.acquired.map((x) => [x.queue, x.token, x.takeover])).toEqual([['q', '1', false]]);
    expect((await b.round(['q'])).acquired).toEqual([]); // held by a
    expect(await a.advance([{ queue: 'q', position: '100-0' }])).toEqual([]);
    expect(await r.hget(leasePositionKey('f1', 'q'), 'id')).toBe('100-0');
    expect(await a.advance([{ queue: 'q', position: '90-5' }])).toEqual([]); // never backwards
    expect(await r.hget(leasePositionKey('f1', 'q'), 'id')).toBe('100-0');

    // a "pauses": its lease expires; b takes the queue over from the fleet's position with token 2.
    await until(async () => (await r.exists(leaseKey('f1', 'q'))) === 0, 5000);
    const rb = await b.round(['q']);
    expect(rb.acquired).toEqual([{ queue: 'q', token: '2', position: '100-0', takeover: true, previousHolder: 'a' }]);
    expect(rb.members).toBe(1); // a stopped heartbeating too: it is no longer a live member

    // a wakes up: its token is stale everywhere.
    expect(a.valid('q')).toBe(false); // its own clock already says so
    expect(await a.confirm(['q'])).toEqual(new Set());
    expect(a.heldQueues).toEqual([]);
    const a2 = new QueueLeases(r, { prefix: 'f1', memberId: 'a', leaseMs: 1000 });
    (a2 as unknown as { held: Map<string, unknown> }).held.set('q', { token: '1', validUntil: Infinity }); // a stale holder that insists
    expect(await a2.advance([{ queue: 'q', position: '200-0' }])).toEqual(['q']);
    await a2.release('q');
    expect(await r.hget(leasePositionKey('f1', 'q'), 'id')).toBe('100-0');
    expect(await r.hgetall(leaseKey('f1', 'q'))).toEqual({ holder: 'b', token: '2' });
    expect(await b.advance([{ queue: 'q', position: '150-0' }])).toEqual([]);
    expect(await r.hget(leasePositionKey('f1', 'q'), 'id')).toBe('150-0');
    await b.leave();
    expect(await r.exists(leaseKey('f1', 'q'))).toBe(0);
    expect(await r.zscore(membersKey('f1'), 'b')).toBeNull();
  });

  it('spreads queues over the live members: a newcomer gets its share, the surplus is given back', async () => {
    const queues = ['s1', 's2', 's3', 's4', 's5'];
    const a = new QueueLeases(r, { prefix: 'f2', memberId: 'a', leaseMs: 5000 });
    const b = new QueueLeases(r, { prefix: 'f2', memberId: 'b', leaseMs: 5000 });
    expect((await a.round(queues)).acquired).toHaveLength(5); // alone: everything
    const rb = await b.round(queues); // b joins: nothing free yet
    expect(rb.acquired).toHaveLength(0);
    const ra = await a.round(queues);
    expect(ra.members).toBe(2);
    expect(ra.surplus).toHaveLength(2); // share = ceil(5/2) = 3
    for (const q of ra.surplus) await a.release(q);
    expect((await b.round(queues)).acquired).toHaveLength(2);
    expect(new Set([...a.heldQueues, ...b.heldQueues])).toEqual(new Set(queues));
    expect(a.heldQueues.filter((q) => b.heldQueues.includes(q))).toEqual([]);
    await a.leave();
    await b.leave();
  });

  it('two collectors split four queues; a collector stalled past its lease loses its queues, and after it resumes it appends nothing more for them', async () => {
    const queues = ['c1', 'c2', 'c3', 'c4'];
    const leaseMs = 1500;
    const base = { discoverIntervalMs: 200, blockMs: 100 };
    let stall: Promise<void> | null = null;
    let release!: () => void;
    const aBatches: { at: number; b: CollectedBatch[] }[] = []; // one entry per append (sink call)
    const a = memoryCollector(redis.url, queues, {
      ...base,
      fleet: { memberId: 'ca', leaseMs },
      sink: async (bs) => { if (stall) await stall; aBatches.push({ at: performance.now(), b: bs }); for (const b of bs) a.events.push(...b.events); },
    });
    const b = memoryCollector(redis.url, queues, { ...base, fleet: { memberId: 'cb', leaseMs }});
    await a.collector.start();
    await b.collector.start();
    try {
      await until(() => a.collector.queues.length === 2 && b.collector.queues.length === 2, 15_000);
      expect(new Set([...a.collector.queues, ...b.collector.queues])).toEqual(new Set(queues));
      const aQueues = [...a.collector.queues];

      const w1 = await runWorkload(redis.url, { queues, jobsPerQueue: 30, seed: 7, failRate: 0 });
      // BullMQ's completed/failed sets keep earlier workloads' jobs: wait for the running total.
      const finished = async (n: number) => until(async () => (await Promise.all(queues.map(async (q) => (await r.zcard(`bull:${q}:completed`)) + (await r.zcard(`bull:${q}:failed`))))).reduce((x, y) => x + y, 0) >= n, 30_000);
      await finished(120);
      await w1.close();
      const done = (evs: typeof a.events) => new Set(evs.filter((e) => terminal(e.kind)).map((e) => `${e.queue}/${e.job_id}`));
      await until(() => new Set([...done(a.events), ...done(b.events)]).size === 120, 15_000);

      // a's appends stall (a disk that hangs) longer than its lease: b takes a's queues over.
      stall = new Promise((res) => { release = res; });
      const w2 = await runWorkload(redis.url, { queues, jobsPerQueue: 30, seed: 8, failRate: 0 });
      await finished(240);
      await w2.close();
      await until(() => b.collector.queues.length === 4, 20_000);
      const tookOver = performance.now();
      release();
      // a finds out before appending again: its queues are gone; whatever it appended after resuming was
      // the one append already past its fence (a duplicate of what b read, never a position b relies on).
      await until(() => a.collector.queues.length === 0, 10_000);
      const lateBatches = aBatches.filter((x) => x.at > tookOver);
      expect(lateBatches.length).toBeLessThanOrEqual(1);
      const w3 = await runWorkload(redis.url, { queues: aQueues, jobsPerQueue: 10, seed: 9, failRate: 0 });
      await finished(260);
      await w3.close();
      const total = 120 + 120 + 20;
      await until(() => new Set([...done(a.events), ...done(b.events)]).size === total, 20_000);
      const aAfter = aBatches.filter((x) => x.at > tookOver).length;
      expect(aAfter).toBe(lateBatches.length); // nothing after a learned it lost
      // Every job has a terminal record in one of the two; overlap is only ever the same (queue, job, kind).
      const both = [...a.events, ...b.events].filter((e) => terminal(e.kind));
      const kinds = new Map<string, Set<string>>();
      for (const e of both) { const k = `${e.queue}/${e.job_id}`; kinds.set(k, (kinds.get(k) ?? new Set()).add(e.kind)); }
      expect(kinds.size).toBe(total);
      for (const [k, s] of kinds) expect(s.size, k).toBe(1);
      // The fleet's position is b's, for every queue.
      for (const q of queues) expect(await r.hget(leasePositionKey('bull', q), 'holder')).toBe('cb');
    } finally {
      release?.();
      await a.collector.stop();
      await b.collector.stop();
    }
  }, 90_000);
});
