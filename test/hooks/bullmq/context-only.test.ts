/**
 * `wardenProcessor(fn, { span: false })`: no span in the worker, but the attempt's span context (the
 * IDs the sidecar gives the `process <queue>` span it rebuilds) is in scope, so the user's own spans
 * parent under it; the correlation ID is in scope; the queue is not marked instrumented (so the
 * sidecar does rebuild the attempt span).
 */
import { trace, context, propagation } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { currentCorrelationId, wardenProcessor, withWarden } from '../../../hooks/bullmq/index.js';
import { instrumentedKey } from '../../../core/bullmq-convention.js';
import { stableSpanId, traceIdForCorrelation } from '../../../core/ids.js';
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

describe('wardenProcessor with { span: false }', () => {
  it('puts the sidecar attempt span context and the correlation ID in scope, makes no span, marks nothing', async () => {
    const connection = connectionFor(redis.url);
    const queue = withWarden(new Queue('ctx1', { connection }));
    const plain = new Queue('ctx2', { connection });
    const seen: { cid?: string; attempt: number; job: string }[] = [];
    const proc = wardenProcessor(async (job: Job) => {
      seen.push({ cid: currentCorrelationId(), attempt: job.attemptsMade + 1, job: job.id! });
      trace.getTracer('user').startSpan(`child ${job.queueName}`).end(); // the user's own span
      if (job.queueName === 'ctx1' && job.attemptsMade < 1) throw new Error('transient');
      return 'ok';
    }, { span: false });
    const w1 = new Worker('ctx1', proc, { connection });
    const w2 = new Worker('ctx2', proc, { connection });
    exporter.reset();
    const stamped = await queue.add('gen', {}, { attempts: 2, backoff: { type: 'fixed', delay: 10 } });
    const unstamped = await plain.add('gen', {});
    await until(async () => (await stamped.isCompleted()) && (await unstamped.isCompleted()), 10_000, 'jobs done');
    await w1.close();
    await w2.close();

    const tp = ((await queue.getJob(stamped.id!))!.opts as Record<string, any>).warden.tp as string;
    const cid = ((await queue.getJob(stamped.id!))!.opts as Record<string, any>).warden.cid as string;
    const spans = exporter.getFinishedSpans();
    expect(spans.filter((s) => s.name.startsWith('process '))).toHaveLength(0);
    const children = spans.filter((s) => s.name === 'child ctx1');
    expect(children).toHaveLength(2);
    for (const [i, c] of children.entries()) {
      expect(c.spanContext().traceId).toBe(tp.split('-')[1]);
      expect(c.parentSpanContext?.spanId).toBe(stableSpanId('bullmq', 'ctx1', stamped.id!, i + 1));
    }
    const other = spans.find((s) => s.name === 'child ctx2')!;
    const otherCid = `bullmq:ctx2:${unstamped.id}`;
    expect(other.spanContext().traceId).toBe(traceIdForCorrelation(otherCid));
    expect(other.parentSpanContext?.spanId).toBe(stableSpanId('bullmq', 'ctx2', unstamped.id!, 1));
    expect(seen.filter((s) => s.job === stamped.id && s.cid === cid)).toHaveLength(2);
    expect(seen.find((s) => s.cid === otherCid)).toBeDefined();

    const r = new Redis(redis.url);
    expect(await r.exists(instrumentedKey('bull', 'ctx1'), instrumentedKey('bull', 'ctx2'))).toBe(0);
    r.disconnect();
    await queue.close();
    await plain.close();
  });
});
