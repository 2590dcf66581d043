import { trace, context, propagation } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Queue, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentCorrelationId, wardenProcessor, withCorrelation, withWarden } from '../../../hooks/bullmq/index.js';
import { INSTRUMENTED_TTL_MS, instrumentedKey } from '../../../core/bullmq-convention.js';
import { traceIdForCorrelation, stableSpanId } from '../../../core/ids.js';
import { startRedis, type RedisServer } from '../../harness/index.js';
import { connectionFor, until } from '../../harness/bullmq.js';

let redis: RedisServer;
const exporter = new InMemorySpanExporter();
let provider: BasicTracerProvider;

beforeAll(async () => {
  redis = await startRedis();
  provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
});
afterAll(async () => {
  await provider?.shutdown();
  trace.disable(); context.disable(); propagation.disable();
  await redis?.dispose();
});

describe('warden/bullmq hooks', () => {
  it('stamps correlation, trace and model metadata; one consumer span per attempt, retries in one trace', async () => {
    const connection = connectionFor(redis.url);
    const queue = withWarden(new Queue('h1', { connection }), { model: 'llm-x', model_version: '7' });
    const seen: { cid?: string; attempt: number }[] = [];
    const worker = new Worker('h1', wardenProcessor(async (job: Job) => {
      seen.push({ cid: currentCorrelationId(), attempt: job.attemptsMade + 1 });
      if (job.attemptsMade < 2) throw new Error('transient, user a@b.io');
      return 'ok';
    }), { connection });
    const job = await queue.add('gen', { prompt: 'hi' }, { attempts: 3, backoff: { type: 'fixed', delay: 10 } });
    await until(async () => (await job.isCompleted()), 10_000, 'job done');
    await worker.close();

    const stamp = (await queue.getJob(job.id!))!.opts as Record<string, any>;
    expect(stamp.warden.cid).toMatch(/^wc_/);
    expect(stamp.warden.model).toBe('llm-x');
    expect(stamp.warden.model_version).toBe('7');
    expect(stamp.warden.tp).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect((await queue.getJob(job.id!))!.data).toEqual({ prompt: 'hi' }); // user data untouched

    const spans = exporter.getFinishedSpans();
    const producer = spans.find((s) => s.name === 'send h1')!;
    const consumers = spans.filter((s) => s.name === 'process h1');
    expect(consumers).toHaveLength(3);
    for (const c of consumers) {
      expect(c.spanContext().traceId).toBe(producer.spanContext().traceId);
      expect(c.parentSpanContext?.spanId).toBe(producer.spanContext().spanId);
      expect(c.attributes['messaging.system']).toBe('bullmq');
      expect(c.attributes['warden.correlation_id']).toBe(stamp.warden.cid);
      expect(c.attributes['warden.model']).toBe('llm-x'); // from the stamp
      expect(c.attributes['warden.model_version']).toBe('7');
    }
    expect(consumers.map((c) => c.attributes['warden.attempt']).sort()).toEqual([1, 2, 3]);
    expect(consumers.filter((c) => c.status.code === 2)).toHaveLength(2);
    expect(JSON.stringify(consumers.map((c) => [c.status, c.events]))).not.toContain('a@b.io');
    expect(seen.every((s) => s.cid === stamp.warden.cid)).toBe(true);
    // The worker told the sidecar it traces this queue's attempts (so they are not rebuilt too).
    const ttl = await ((await queue.getBackend().client) as unknown as Redis).pttl(instrumentedKey('bull', 'h1'));
    expect(ttl).toBeGreaterThan(INSTRUMENTED_TTL_MS - 10_000);
    await queue.close();
  });

  it('jobs added inside a processor or a withCorrelation scope inherit the correlation ID', async () => {
    const connection = connectionFor(redis.url);
    const next = withWarden(new Queue('h2-next', { connection }));
    const first = withWarden(new Queue('h2-first', { connection }));
    const worker = new Worker('h2-first', wardenProcessor(async () => { await next.add('child', {}); }), { connection });
    await withCorrelation('order-42', () => first.add('parent', {}));
    await until(async () => (await next.getJobCounts('wait')).wait === 1, 10_000, 'child job');
    const [child] = await next.getJobs(['wait']);
    expect((child.opts as Record<string, any>).warden.cid).toBe('order-42');
    await worker.close();
    await Promise.all([next.close(), first.close()]);
  });

  it('a job with no trace context joins the trace derived from its correlation ID', async () => {
    exporter.reset();
    const connection = connectionFor(redis.url);
    const plain = new Queue('h3', { connection }); // not wrapped: no stamp at all
    const worker = new Worker('h3', wardenProcessor(async () => 'ok'), { connection });
    const job = await plain.add('x', {});
    await until(async () => (await job.isCompleted()), 10_000, 'job done');
    await worker.close();
    const span = exporter.getFinishedSpans().find((s) => s.name === 'process h3')!;
    const cid = `bullmq:h3:${job.id}`;
    expect(span.spanContext().traceId).toBe(traceIdForCorrelation(cid));
    expect(span.parentSpanContext?.spanId).toBe(stableSpanId('bullmq', 'h3', job.id!));
    await plain.close();
  });
});

describe('what the sidecar reads from hooked and telemetry-stamped jobs', () => {
  it('the collector records the stamp: correlation ID, model/policy versions, and the producer trace', async () => {
    const { memoryCollector } = await import('../../harness/bullmq.js');
    const connection = connectionFor(redis.url);
    const queue = withWarden(new Queue('h4', { connection }), { model: 'llm-x', model_version: '7', policy: 'pii', policy_version: '2' });
    const { collector, events } = memoryCollector(redis.url, ['h4']);
    await collector.start();
    const job = await withCorrelation('case-9', () => queue.add('gen', { q: 1 }));
    await until(() => events.some((e) => e.kind === 'job.added'), 5_000, 'added');
    await collector.stop();
    const ev = events.find((e) => e.kind === 'job.added')!;
    const stamp = (await queue.getJob(job.id!))!.opts as Record<string, any>;
    expect(ev).toMatchObject({ correlation_id: 'case-9', model: 'llm-x', model_version: '7', policy: 'pii', policy_version: '2' });
    expect(ev.trace_id).toBe(stamp.warden.tp.split('-')[1]);
    expect(ev.attrs.parent_span_id).toBe(stamp.warden.tp.split('-')[2]);
    await queue.close();
  });

  it('continues BullMQ telemetry context (opts.tm) when a job has no Warden stamp, in the worker and in the sidecar', async () => {
    exporter.reset();
    const { memoryCollector } = await import('../../harness/bullmq.js');
    const connection = connectionFor(redis.url);
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parentId = '00f067aa0ba902b7';
    const plain = new Queue('h5', { connection });
    const { collector, events } = memoryCollector(redis.url, ['h5']);
    await collector.start();
    // What bullmq-otel stores: its propagation carrier as JSON text in the job options.
    const job = await plain.add('x', {}, { telemetry: { metadata: JSON.stringify({ traceparent: `00-${traceId}-${parentId}-01` }) } });
    const worker = new Worker('h5', wardenProcessor(async () => 'ok'), { connection });
    await until(async () => (await job.isCompleted()), 10_000, 'job done');
    await worker.close();
    await until(() => events.some((e) => e.kind === 'job.completed'), 5_000, 'completed');
    await collector.stop();
    const span = exporter.getFinishedSpans().find((s) => s.name === 'process h5')!;
    expect(span.spanContext().traceId).toBe(traceId);
    expect(span.parentSpanContext?.spanId).toBe(parentId);
    expect(events.every((e) => e.trace_id === traceId)).toBe(true);
    await plain.close();
  });
});
