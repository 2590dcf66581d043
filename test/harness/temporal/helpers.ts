import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Payload } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { HookEmitter } from '../../../hooks/emitter.js';
import { WardenEventSchema, type WardenEvent } from '../../../core/event.js';
import type { BreakerStatus } from '../../../core/breakers.js';

/** Collects what hooks emit, and checks every event against the one event schema. */
export class CollectingEmitter implements HookEmitter {
  readonly events: WardenEvent[] = [];
  emit(event: WardenEvent): void {
    WardenEventSchema.parse(event);
    this.events.push(event);
  }
  kinds(): string[] {
    return this.events.map((e) => e.kind);
  }
  of(kind: string): WardenEvent[] {
    return this.events.filter((e) => e.kind === kind);
  }
}

export class ThrowingEmitter implements HookEmitter {
  calls = 0;
  emit(): void {
    this.calls++;
    throw new Error('transport exploded');
  }
}

/**
 * A real OTel SDK with an in-memory exporter, installed globally for one test file. With `otlp`, spans
 * are also exported over OTLP/HTTP (`<otlp.url>/v1/traces`, batched) as a worker's SDK would.
 */
export function installOtel(otlp?: { url: string; serviceName: string }) {
  const exporter = new InMemorySpanExporter();
  const spanProcessors: SpanProcessor[] = [new SimpleSpanProcessor(exporter)];
  if (otlp) spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: `${otlp.url}/v1/traces` }), { scheduledDelayMillis: 200 }));
  const provider = new BasicTracerProvider({ spanProcessors, ...(otlp ? { resource: resourceFromAttributes({ 'service.name': otlp.serviceName }) } : {}) });
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  // All of them as one, for a sink that takes one processor (the official workflow span exporter).
  const processor: SpanProcessor = {
    onStart: (span, ctx) => { for (const p of spanProcessors) p.onStart(span, ctx); },
    onEnd: (span) => { for (const p of spanProcessors) p.onEnd(span); },
    forceFlush: async () => { await Promise.all(spanProcessors.map((p) => p.forceFlush())); },
    shutdown: async () => undefined, // the provider shuts them down
  };
  return {
    exporter,
    provider,
    processor,
    async dispose() {
      await provider.shutdown();
      trace.disable(); context.disable(); propagation.disable();
    },
  };
}

/**
 * A processor for the official workflow span exporter sink (`makeWorkflowExporter`): spans made in the
 * sandbox by @temporalio/interceptors-opentelemetry's own OTel SDK 1.x copy arrive in 1.x shape
 * (`instrumentationLibrary`, `parentSpanId`); this passes them on in the 2.x shape the exporter reads.
 */
export function sandboxSpanProcessor(processor: SpanProcessor): { onStart(): void; onEnd(span: object): void; forceFlush(): Promise<void>; shutdown(): Promise<void> } {
  return {
    onStart: () => undefined,
    onEnd: (span) => {
      const s = span as Record<string, any> & { spanContext(): { traceId: string; traceFlags: number } };
      const ctx = s.spanContext();
      const adapted = Object.assign(Object.create(null), s, {
        spanContext: () => ctx,
        instrumentationScope: s.instrumentationScope ?? s.instrumentationLibrary ?? { name: 'temporal-workflow' },
        parentSpanContext: s.parentSpanContext ?? (s.parentSpanId ? { traceId: ctx.traceId, spanId: s.parentSpanId, traceFlags: ctx.traceFlags, isRemote: false } : undefined),
      });
      processor.onEnd(adapted as never);
    },
    forceFlush: () => processor.forceFlush(),
    shutdown: async () => undefined,
  };
}

/** MockActivityEnvironment runs activities with empty headers; this outer interceptor supplies some. */
export function headerInjector(headers: Record<string, Payload>): ActivityInterceptorsFactory {
  return () => ({ inbound: { execute: (input, next) => next({ ...input, headers: { ...input.headers, ...headers } }) } });
}

export function breaker(key: string, over: Partial<BreakerStatus> = {}): BreakerStatus {
  return {
    key, phase: 'open', policy: 'retry-storm', policy_version: '3', retry_after_ms: 30_000, non_retryable: false,
    probe_ratio: 0, reason: 'retry ratio 0.62 over budget 0.20', since: Date.now(), forced_by: null, ...over,
  };
}
