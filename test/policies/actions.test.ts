/**
 * Breaker actions against real servers: BullMQ queue settings on a real Redis (pause, concurrency,
 * rate limit; restored on close; a queue someone else paused stays paused; a restart after the policy
 * was removed resumes the queue and says so), and breaker states in a real nats-server's KV bucket.
 */
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BREAKER_BUCKET, breakerKey, type BreakerStatus } from '../../core/breakers.js';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import { BullMQQueueActions } from '../../policies/act/bullmq.js';
import { KvBreakerPublisher } from '../../policies/act/kv.js';
import { PolicyEngine } from '../../policies/engine.js';
import { parsePolicies } from '../../policies/loader.js';
import { startNats, startRedis, tempDir, type NatsServer, type RedisServer, type TempDir } from '../harness/index.js';
import { connectionFor, until } from '../harness/bullmq.js';

let redis: RedisServer;
let nats: NatsServer;
let dir: TempDir;
beforeAll(async () => {
  [redis, nats, dir] = await Promise.all([startRedis(), startNats(), tempDir('warden-actions')]);
});
afterAll(async () => {
  await nats?.dispose();
  await redis?.dispose();
  await dir?.cleanup();
});

const policyFile = (queue: string, action: string, extra = '') => parsePolicies(`apiVersion: warden/v1
policies:
  - name: guard
    version: 1
    scope: { system: bullmq, queue: ${queue} }
    retryStorm: { windowMs: 2000, minRetries: 3, budgetPerSecond: 0 }
    breaker: { action: ${action}, concurrency: 2, rateLimit: { max: 5, durationMs: 1000 }, resetTimeoutMs: 100000 ${extra} }
`, 'p.yaml');

/** 5 first attempts and 5 retries on a BullMQ queue: over a budget of 0.2 x 5. */
const storm = (queue: string): WardenEvent[] => Array.from({ length: 10 }, (_, i) => makeEvent({
  kind: 'job.started', source: 'bullmq', queue, job_id: String(i % 5), attempt: i < 5 ? 1 : 2, ts: Date.now() + i,
}));

async function engineFor(dataDir: string, policies: ReturnType<typeof policyFile>, recorded: WardenEvent[], kv: KvBreakerPublisher | null = null) {
  const queues = new BullMQQueueActions({ redisUrl: redis.url, prefix: 'bull' });
  const e = await PolicyEngine.open({ dataDir, policies, queues, kv, record: async (evs) => { recorded.push(...evs); } });
  return { e, close: async () => { await e.stop(); await queues.close(); } };
}

describe('BullMQ queue actions', () => {
  it('pause: the queue is paused while open and resumed on close; a restart after the policy was removed resumes it and records why', async () => {
    const q = new Queue('a-pause', { connection: connectionFor(redis.url) });
    const recorded: WardenEvent[] = [];
    const dataDir = `${dir.path}/pause`;
    const { e, close } = await engineFor(dataDir, policyFile('a-pause', 'pause'), recorded);
    e.observe(storm('a-pause'));
    await e.idle();
    expect(await q.isPaused()).toBe(true);
    expect(e.list()[0].applied).toMatchObject({ kind: 'pause', wasPaused: false, pending: false, stage: 'open' });
    await close();
    // Restarted with a file that no longer has the policy: the queue is not left paused.
    const other = parsePolicies(`apiVersion: warden/v1\npolicies:\n  - { name: unrelated, version: 1, retryStorm: {} }\n`, 'p.yaml');
    recorded.length = 0;
    const again = await engineFor(dataDir, other, recorded);
    await again.e.idle();
    expect(await q.isPaused()).toBe(false);
    expect(recorded[0]).toMatchObject({ kind: 'breaker.closed', policy: 'guard', decision: 'restore', attrs: { restored_queue: true } });
    await again.close();
    await q.close();
  });

  it('a queue someone else had paused stays paused after the breaker closes', async () => {
    const q = new Queue('a-owner', { connection: connectionFor(redis.url) });
    await q.pause();
    const recorded: WardenEvent[] = [];
    const { e, close } = await engineFor(`${dir.path}/owner`, policyFile('a-owner', 'pause'), recorded);
    e.observe(storm('a-owner'));
    await e.idle();
    expect(recorded.find((r) => r.kind === 'breaker.opened')!.attrs['evidence.queue_was_paused']).toBe(true);
    await e.force('bullmq.queue.a-owner', 'closed', 'alice');
    expect(await q.isPaused()).toBe(true);
    await close();
    await q.close();
  });

  it('concurrency and rate_limit: lowered while open, the prior settings restored on close', async () => {
    const q = new Queue('a-conc', { connection: connectionFor(redis.url) });
    await q.setGlobalConcurrency(50);
    const recorded: WardenEvent[] = [];
    const { e, close } = await engineFor(`${dir.path}/conc`, policyFile('a-conc', 'concurrency'), recorded);
    e.observe(storm('a-conc'));
    await e.idle();
    expect(await q.getGlobalConcurrency()).toBe(2);
    expect(await q.isPaused()).toBe(false);
    await e.force('bullmq.queue.a-conc', 'closed', 'alice');
    expect(await q.getGlobalConcurrency()).toBe(50);
    await close();

    const r = new Queue('a-rate', { connection: connectionFor(redis.url) });
    const rateEngine = await engineFor(`${dir.path}/rate`, policyFile('a-rate', 'rate_limit'), []);
    rateEngine.e.observe(storm('a-rate'));
    await rateEngine.e.idle();
    expect(await r.getGlobalRateLimit()).toEqual({ max: 5, duration: 1000 });
    await rateEngine.e.force('bullmq.queue.a-rate', 'closed', 'alice');
    expect(await r.getGlobalRateLimit()).toBeNull();
    await rateEngine.close();
    await q.close();
    await r.close();
  });
});

describe('Redis away when the breaker opens', () => {
  it('the decision is recorded while Redis is down (after the action timeout); the pause happens when Redis is back', async () => {
    const own = await startRedis();
    try {
      await own.stop();
      const recorded: WardenEvent[] = [];
      const queues = new BullMQQueueActions({ redisUrl: own.url, prefix: 'bull' });
      const e = await PolicyEngine.open({ dataDir: `${dir.path}/away`, policies: policyFile('a-away', 'pause'), queues, kv: null, record: async (evs) => { recorded.push(...evs); } });
      e.start(200);
      e.observe(storm('a-away'));
      await until(() => recorded.some((r) => r.kind === 'breaker.opened'), 20_000, 'decision while Redis is down');
      expect(recorded.find((r) => r.kind === 'breaker.opened')!.attrs['evidence.queue_state_error']).toBeTypeOf('string');
      expect(e.list()[0].applied).toMatchObject({ pending: true });
      await own.start();
      const q = new Queue('a-away', { connection: connectionFor(own.url) });
      await until(async () => q.isPaused(), 20_000, 'paused once Redis is back');
      await until(() => e.list()[0].applied?.pending === false, 5_000, 'action done');
      await e.stop();
      await queues.close();
      await q.close();
    } finally {
      await own.dispose();
    }
  });
});

describe('Redis away when the breaker opens, with an operator\'s own setting on the queue', () => {
  it('the settings unread at the decision are read before the first change, so closing restores the operator\'s concurrency', async () => {
    const own = await startRedis({ persist: true });
    try {
      const before = new Queue('a-op', { connection: connectionFor(own.url) });
      await before.setGlobalConcurrency(7); // the operator's own limit
      await before.close();
      await own.stop();
      const recorded: WardenEvent[] = [];
      const queues = new BullMQQueueActions({ redisUrl: own.url, prefix: 'bull' });
      const e = await PolicyEngine.open({ dataDir: `${dir.path}/op`, policies: policyFile('a-op', 'concurrency'), queues, kv: null, record: async (evs) => { recorded.push(...evs); } });
      e.start(200);
      e.observe(storm('a-op'));
      await until(() => recorded.some((r) => r.kind === 'breaker.opened'), 20_000, 'decision while Redis is down');
      expect(e.list()[0].applied).toMatchObject({ priorUnknown: true, pending: true });
      await own.start();
      const q = new Queue('a-op', { connection: connectionFor(own.url) });
      await until(async () => (await q.getGlobalConcurrency()) === 2, 20_000, 'breaker concurrency once Redis is back');
      expect(e.list()[0].applied).toMatchObject({ priorUnknown: false, prevConcurrency: 7 });
      await e.force('bullmq.queue.a-op', 'closed', 'alice');
      expect(await q.getGlobalConcurrency()).toBe(7);
      await e.stop();
      await queues.close();
      await q.close();
    } finally {
      await own.dispose();
    }
  });
});

describe('NATS KV breaker state (enforced by the Temporal activity interceptor)', () => {
  it('an opened Temporal breaker is put into the bucket under breakerKey(scope), and its close too', async () => {
    const errors: string[] = [];
    const kv = new KvBreakerPublisher({ url: nats.url, onError: (err) => errors.push(err.message) });
    const recorded: WardenEvent[] = [];
    const policies = parsePolicies(`apiVersion: warden/v1
policies:
  - name: llm
    version: 9
    scope: { system: temporal, activityType: callModel }
    retryStorm: { windowMs: 2000, minRetries: 3, budgetPerSecond: 0 }
    breaker: { resetTimeoutMs: 30000, nonRetryable: false, probeRatio: 0.25 }
`, 'p.yaml');
    const e = await PolicyEngine.open({ dataDir: `${dir.path}/kv`, policies, queues: null, kv, record: async (evs) => { recorded.push(...evs); } });
    e.observe(Array.from({ length: 10 }, (_, i) => makeEvent({ kind: 'activity.started', source: 'temporal', queue: 'agents', activity_type: 'callModel', attempt: i < 5 ? 1 : 3, ts: Date.now() + i })));
    await e.idle();

    await until(() => kv.published > 0 || errors.length > 0, 10_000, 'a put or an error');
    expect(errors).toEqual([]);
    const nc = await connect({ servers: nats.url });
    const bucket = await new Kvm(nc).open(BREAKER_BUCKET);
    const key = breakerKey({ system: 'temporal', kind: 'activity', name: 'callModel' });
    let status: BreakerStatus | null = null;
    await until(async () => {
      const entry = await bucket.get(key);
      status = entry ? (entry.json() as BreakerStatus) : null;
      return status?.phase === 'open';
    }, 10_000, 'open status in the KV bucket');
    expect(status).toMatchObject({ key, phase: 'open', policy: 'llm', policy_version: '9', non_retryable: false, forced_by: null });
    expect(status!.retry_after_ms).toBeGreaterThan(25_000);
    expect(recorded.find((r) => r.kind === 'breaker.opened')!.decision).toBe('fail_fast');

    await e.force(key, 'closed', 'alice');
    await until(async () => ((await bucket.get(key))?.json() as BreakerStatus | undefined)?.phase === 'closed', 10_000, 'closed status');
    expect(((await bucket.get(key))!.json() as BreakerStatus).forced_by).toBe('alice');
    await nc.close();
    await e.stop();
    await kv.stop();
  });
});
