/** Numeric outputs and the served model, read from a completed job's return value for drift policies. */
import { Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractOutputs } from '../../../collectors/bullmq/metadata.js';
import { startRedis, type RedisServer } from '../../harness/index.js';
import { connectionFor, memoryCollector, until } from '../../harness/bullmq.js';

describe('extractOutputs', () => {
  const rv = JSON.stringify({ eval: { score: 0.82, label: 'ok' }, usage: { tokens: 512 }, model: { name: 'gpt-4o', version: '2024-08-06' } });

  it('reads configured numbers by path, and the served model and version', () => {
    expect(extractOutputs(rv, { served_model: 'returnvalue.model.name', served_model_version: 'returnvalue.model.version' }, { score: 'returnvalue.eval.score', tokens: 'returnvalue.usage.tokens' }))
      .toEqual({ 'output.score': 0.82, 'output.tokens': 512, served_model: 'gpt-4o', served_model_version: '2024-08-06' });
  });

  it('skips what is not a finite number, missing paths, non-JSON values, and parses nothing when nothing is configured', () => {
    expect(extractOutputs(rv, {}, { label: 'returnvalue.eval.label', gone: 'returnvalue.nope.x' })).toEqual({});
    expect(extractOutputs('not json', {}, { score: 'returnvalue.score' })).toEqual({});
    expect(extractOutputs('{"score":1}', {}, {})).toEqual({});
    expect(extractOutputs('0.5', {}, { v: 'returnvalue' } as Record<string, string>)).toEqual({ 'output.v': 0.5 });
  });
});

let redis: RedisServer;
beforeAll(async () => { redis = await startRedis(); });
afterAll(async () => redis?.dispose());

describe('BullMQ collector outputs', () => {
  it('job.completed carries output.<metric> and served_model from the stream entry\'s return value', async () => {
    const { collector, events } = memoryCollector(redis.url, ['outq'], {
      outputs: { score: 'returnvalue.score' },
      metadata: { model: 'data.model', served_model: 'returnvalue.served' },
    });
    await collector.start();
    const q = new Queue('outq', { connection: connectionFor(redis.url) });
    const w = new Worker('outq', async (job) => ({ score: job.data.i / 10, served: 'm-fallback' }), { connection: connectionFor(redis.url) });
    await q.addBulk([1, 2, 3].map((i) => ({ name: 'score', data: { i, model: 'm' } })));
    await until(() => events.filter((e) => e.kind === 'job.completed').length === 3, 10_000, 'three completions');
    const done = events.filter((e) => e.kind === 'job.completed');
    expect(done.map((e) => e.attrs['output.score']).sort()).toEqual([0.1, 0.2, 0.3]);
    expect(done.every((e) => e.attrs.served_model === 'm-fallback' && e.model === 'm')).toBe(true);
    await w.close();
    await q.close();
    await collector.stop();
  });
});
