/**
 * Cost of Warden's activity interceptor per call, against no interceptor and against the official
 * OpenTelemetry interceptor (@temporalio/interceptors-opentelemetry), under MockActivityEnvironment.
 *
 *   npm run build && node dist/bench/temporal.js [calls per variant, default 20000]
 *
 * Every variant runs the same trivial activity with the same headers (a Warden stamp carrying a
 * traceparent) and the same OTel SDK (BasicTracerProvider, spans dropped by a no-op processor), so
 * the differences are the interceptors' own work: for Warden, one span, two events (input digest,
 * redaction, ULIDs) and a breaker lookup; events go to an emitter that only counts them (the
 * transport is not this scenario). Variants run interleaved in rounds; the median round is reported.
 */
import os from 'node:os';
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OpenTelemetryActivityInboundInterceptor } from '@temporalio/interceptors-opentelemetry';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, type ActivityInterceptorsFactory } from '@temporalio/worker';
import { breakerKey, MapBreakerView } from '../collectors/breakers.js';
import type { HookEmitter } from '../collectors/emitter.js';
import { wardenActivityInterceptors, withStamp, withTracerData } from '../collectors/temporal/index.js';

const N = Number(process.argv[2] ?? 20_000);
const ROUNDS = 5;

class CountingEmitter implements HookEmitter {
  n = 0;
  emit(): void { this.n++; }
}

const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const headers = withTracerData(withStamp({}, { cid: 'wc_BENCH', tp, model: 'm', model_version: '1' }), { traceparent: tp });
const inject: ActivityInterceptorsFactory = () => ({ inbound: { execute: (input, next) => next({ ...input, headers }) } });
const args = { claim: 'C-7', text: 'a short prompt for the model, contact jane@example.com', tokens: 512 };
const activity = async (a: typeof args) => a.tokens;

function environment(extra: ActivityInterceptorsFactory[]): MockActivityEnvironment {
  return new MockActivityEnvironment({ activityType: 'embed', taskQueue: 'bench', workflowType: 'W', workflowExecution: { workflowId: 'w', runId: 'r' } } as never,
    { interceptors: [inject, ...extra], logger: new DefaultLogger('ERROR') });
}

async function time(env: MockActivityEnvironment, n: number): Promise<number> {
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await env.run(activity, args);
  return Number(process.hrtime.bigint() - t) / n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const provider = new BasicTracerProvider({ spanProcessors: [new NoopSpanProcessor()] });
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());

  const emitter = new CountingEmitter();
  const view = new MapBreakerView();
  // A breaker on another activity: the lookup runs, nothing fails.
  view.set({ key: breakerKey({ system: 'temporal', kind: 'activity', name: 'other' }), phase: 'open', policy: 'p', policy_version: '1', retry_after_ms: 1000, non_retryable: false, probe_ratio: 0, reason: 'bench', since: Date.now(), forced_by: null });
  const variants: [string, MockActivityEnvironment][] = [
    ['no interceptor', environment([])],
    ['official OTel interceptor', environment([(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx) })])],
    ['Warden interceptor', environment([wardenActivityInterceptors({ emitter, breakers: view })])],
    ['Warden + official', environment([wardenActivityInterceptors({ emitter, breakers: view }), (ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx) })])],
  ];
  console.log(`node ${process.version}, ${os.cpus().length} cores, ${N} calls per variant per round, ${ROUNDS} rounds (median reported)`);
  for (const [, env] of variants) await time(env, Math.min(N, 2000)); // warm up
  const results = new Map<string, number[]>(variants.map(([k]) => [k, []]));
  for (let r = 0; r < ROUNDS; r++) for (const [k, env] of variants) results.get(k)!.push(await time(env, N));
  const base = median(results.get('no interceptor')!);
  const official = median(results.get('official OTel interceptor')!);
  for (const [k] of variants) {
    const ns = median(results.get(k)!);
    console.log(`${k.padEnd(28)} ${Math.round(ns).toLocaleString('en-US').padStart(9)} ns/call  x${(ns / base).toFixed(2)} vs none  x${(ns / official).toFixed(2)} vs official  (+${Math.round(ns - base).toLocaleString('en-US')} ns)`);
  }
  console.log(`events emitted: ${emitter.n.toLocaleString('en-US')} (2 per Warden call)`);
  await provider.shutdown();
}

await main();
