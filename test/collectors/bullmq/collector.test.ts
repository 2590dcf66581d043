import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../../harness/index.js';
import { connectionFor, memoryCollector, runWorkload, until, waitFinished } from '../../harness/bullmq.js';
import type { WardenEvent } from '../../../core/event.js';
import { compareStreamIds } from '../../../collectors/bullmq/keys.js';

let redis: RedisServer;
beforeAll(async () => { redis = await startRedis({ persist: true }); });
afterAll(async () => { await redis?.dispose(); });

const terminal = (e: WardenEvent) => e.kind === 'job.completed' || e.kind === 'job.failed';

describe('BullMQ collector on a real Redis', () => {
  it('records exactly one terminal event per job, with BullMQ\'s attemptsMade, over several queues with retries', async () => {
    const names = ['c1-ingest', 'c1-embed', 'c1-model'];
    const { collector, events } = memoryCollector(redis.url, []); // discovery mode
    await collector.start();
    const w = await runWorkload(redis.url, { queues: names, jobsPerQueue: 120, seed: 7, failRate: 0.3 });
    await waitFinished(w);
    const total = 360;
    await until(() => events.filter(terminal).length >= total, 20_000, 'terminal events');
    await new Promise((r) => setTimeout(r, 300)); // anything extra would show up now
    await collector.stop();

    const byJob = new Map<string, WardenEvent[]>();
    for (const e of events.filter(terminal)) byJob.set(`${e.queue}:${e.job_id}`, [...(byJob.get(`${e.queue}:${e.job_id}`) ?? []), e]);
    expect(byJob.size).toBe(total);
    for (const list of byJob.values()) expect(list).toHaveLength(1);

    // Attempt numbers match BullMQ's own view of each job.
    let retried = 0;
    let exhausted = 0;
    for (const q of w.queues) {
      for (const id of w.jobIds.get(q.name)!) {
        const job = (await q.getJob(id))!;
        const ev = byJob.get(`${q.name}:${id}`)![0];
        expect(ev.attempt, `${q.name}:${id}`).toBe(job.attemptsMade);
        expect(ev.kind).toBe(job.finishedOn && job.failedReason && job.attemptsMade >= 3 && !job.returnvalue ? 'job.failed' : 'job.completed');
        const fails = events.filter((e) => e.kind === 'job.attempt_failed' && e.queue === q.name && e.job_id === id);
        // Every attempt but the last failed, numbered 1..n-1; a job that failed for good has n-1 retry failures too.
        expect(fails.map((f) => f.attempt)).toEqual(Array.from({ length: job.attemptsMade - 1 }, (_, i) => i + 1));
        const starts = events.filter((e) => e.kind === 'job.started' && e.queue === q.name && e.job_id === id);
        expect(starts.map((s) => s.attempt)).toEqual(Array.from({ length: job.attemptsMade }, (_, i) => i + 1));
        if (job.attemptsMade > 1) retried++;
        if (ev.kind === 'job.failed') exhausted++;
      }
    }
    expect(retried).toBeGreaterThan(20);
    expect(exhausted).toBeGreaterThan(5);

    // Inputs are redacted at the source and the digest is of the unredacted input.
    const added = events.filter((e) => e.kind === 'job.added');
    expect(added).toHaveLength(total);
    const text = JSON.stringify(events);
    expect(text).not.toMatch(/@example\.com/);
    expect(text).not.toContain('sk-live-abcdefghijklmnopqrstuv');
    expect(added[0].input_digest).toMatch(/^[0-9a-f]{64}$/);
    // Durations and wait times are real.
    const completed = events.filter((e) => e.kind === 'job.completed');
    expect(completed.every((e) => e.duration_ms !== null && e.duration_ms >= 0)).toBe(true);
    expect(events.filter((e) => e.kind === 'job.started').every((e) => typeof e.attrs.wait_ms === 'number')).toBe(true);
    await w.close();
  });

  it('discovers a queue created while running', async () => {
    const { collector, events } = memoryCollector(redis.url, []);
    await collector.start();
    const q = new Queue('c2-late', { connection: connectionFor(redis.url) });
    await q.add('x', { a: 1 });
    await until(() => events.some((e) => e.queue === 'c2-late' && e.kind === 'job.added'), 5_000, 'late queue');
    await collector.stop();
    await q.close();
  });

  it('reads model and policy versions from configured JSON paths (unmodified producers)', async () => {
    const { collector, events } = memoryCollector(redis.url, ['c3-model'], {
      metadata: { model: 'data.model.name', model_version: 'data.model.version' },
      queueMetadata: { 'c3-model': { policy_version: 'data.policy.v' } },
    });
    await collector.start();
    const q = new Queue('c3-model', { connection: connectionFor(redis.url) });
    await q.add('gen', { model: { name: 'llm-x', version: '2026-10' }, policy: { v: 'p7' } });
    await until(() => events.some((e) => e.kind === 'job.added'), 5_000, 'added');
    const ev = events.find((e) => e.kind === 'job.added')!;
    expect([ev.model, ev.model_version, ev.policy_version]).toEqual(['llm-x', '2026-10', 'p7']);
    await collector.stop();
    await q.close();
  });

  it('detects a trimmed stream, records a gap and reconciles every finished job from BullMQ\'s sets', async () => {
    const name = 'c4-trim';
    const connection = connectionFor(redis.url);
    const q = new Queue(name, { connection });
    await q.waitUntilReady(); // the Queue writes its meta (maxLenEvents 10000) when ready
    const raw = new Redis(redis.url);
    // What `streams.events.maxLen` sets; small, so the test trims with hundreds of events, not 10 000.
    await raw.hset(`bull:${name}:meta`, 'opts.maxLenEvents', 50);
    const first = memoryCollector(redis.url, [name]);
    await first.collector.start();
    await q.add('warmup', { i: -1 });
    const worker = new Worker(name, async () => 'ok', { connection, concurrency: 20 });
    await until(() => first.events.some((e) => e.kind === 'job.completed'), 5_000, 'warmup');
    await first.collector.stop();
    const checkpoint = first.collector.positions().get(name)!;

    // While no collector reads, far more than maxLen events are written: the stream is trimmed.
    await q.addBulk(Array.from({ length: 200 }, (_, i) => ({ name: 'n', data: { i } })));
    await until(async () => (await q.getJobCounts('completed')).completed >= 201, 15_000, 'jobs done');
    // Precondition: the checkpoint entry was trimmed away and the oldest retained entry is newer.
    expect(await raw.xrange(`bull:${name}:events`, checkpoint, checkpoint)).toHaveLength(0);
    const [[oldest]] = await raw.xrange(`bull:${name}:events`, '-', '+', 'COUNT', 1);
    expect(compareStreamIds(oldest, checkpoint)).toBeGreaterThan(0);

    const second = memoryCollector(redis.url, [name], {
      positions: new Map([[name, checkpoint]]),
      hasTerminal: (qq, id) => first.events.some((e) => e.queue === qq && e.job_id === id && (e.kind === 'job.completed' || e.kind === 'job.failed')),
    });
    await second.collector.start();
    await until(() => second.events.filter((e) => e.kind === 'job.completed').length >= 200, 10_000, 'reconciled terminals');
    await new Promise((r) => setTimeout(r, 300));
    await second.collector.stop();

    const gaps = second.events.filter((e) => e.kind === 'collector.gap');
    expect(gaps).toHaveLength(1);
    expect(gaps[0].attrs.gap_from).toBe(checkpoint);
    const terminals = [...first.events, ...second.events].filter((e) => e.kind === 'job.completed');
    const ids = terminals.map((e) => e.job_id);
    expect(new Set(ids).size).toBe(ids.length); // no job twice
    expect(ids.length).toBe(201); // every job, the warmup included
    expect(second.events.some((e) => e.attrs.reconciled === true)).toBe(true);
    await worker.close();
    await q.close();
    raw.disconnect();
  });

  it('keeps going through a Redis restart and loses nothing that was written to the stream', async () => {
    const name = 'c5-restart';
    const { collector, events } = memoryCollector(redis.url, [name]);
    await collector.start();
    const connection = connectionFor(redis.url);
    const q = new Queue(name, { connection });
    await q.addBulk(Array.from({ length: 20 }, (_, i) => ({ name: 'before', data: { i } })));
    await until(() => events.filter((e) => e.kind === 'job.added').length >= 20, 5_000, 'before restart');
    await redis.restart(); // persist: true keeps the data (AOF)
    await q.addBulk(Array.from({ length: 20 }, (_, i) => ({ name: 'after', data: { i } })));
    await until(() => events.filter((e) => e.kind === 'job.added').length >= 40, 15_000, 'after restart');
    const ids = events.filter((e) => e.kind === 'job.added').map((e) => e.job_id);
    expect(new Set(ids).size).toBe(40);
    await collector.stop();
    await q.close();
  });
});
