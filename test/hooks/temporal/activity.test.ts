import { trace, type Tracer, type TracerProvider } from '@opentelemetry/api';
import { SpanStatusCode } from '@opentelemetry/api';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { breakerKey, MapBreakerView } from '../../../core/breakers.js';
import { currentCorrelationId } from '../../../hooks/correlation.js';
import { canonicalJson } from '../../../core/event.js';
import { sha256Hex } from '../../../core/hash.js';
import { traceIdForCorrelation } from '../../../core/ids.js';
import { BREAKER_FAILURE_TYPE, wardenActivityInterceptors } from '../../../hooks/temporal/index.js';
import { withStamp, workflowRunSpanId } from '../../../hooks/temporal/headers.js';
import { breaker, CollectingEmitter, headerInjector, installOtel, ThrowingEmitter } from '../../harness/temporal/helpers.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const WF = { workflowId: 'wf-claims-1', runId: '11111111-2222-3333-4444-555555555555' };
const stampHeaders = withStamp({}, { cid: 'wc_STITCH', tp: `00-${TRACE}-${PARENT}-01`, model: 'claims-llm', model_version: '2024-06', policy: 'claims-policy', policy_version: '5' });

let otel: ReturnType<typeof installOtel>;
beforeAll(() => { otel = installOtel(); });
afterAll(async () => { await otel.dispose(); });

function env(emitter: CollectingEmitter | ThrowingEmitter, info: Record<string, unknown> = {}, opts: Parameters<typeof wardenActivityInterceptors>[0] = {}, headers = stampHeaders) {
  return new MockActivityEnvironment(
    { activityType: 'scoreClaim', activityId: 'act-1', taskQueue: 'claims', workflowType: 'ClaimWorkflow', workflowExecution: WF, ...info } as never,
    { interceptors: [headerInjector(headers), wardenActivityInterceptors({ emitter, ...opts })], logger: new DefaultLogger('ERROR') },
  );
}

describe('warden/temporal activity interceptor (MockActivityEnvironment)', () => {
  it('records started/completed with digest, redacted input, header metadata and result outputs; one span in the propagated trace', async () => {
    otel.exporter.reset();
    const em = new CollectingEmitter();
    let scopeCid: string | undefined;
    const args = { claim: 'C-7', apiKey: 'sk-live-0123456789abcdefghij', contact: 'jane@example.com' };
    const result = await env(em, {}, { resultPaths: { score: 'quality.score' }, servedModelPaths: { model: 'served.model', model_version: 'served.version' } })
      .run(async (a: typeof args) => {
        scopeCid = currentCorrelationId();
        return { quality: { score: 0.82 }, served: { model: 'claims-llm-mini', version: '2024-05' } };
      }, args);
    expect((result as { quality: { score: number } }).quality.score).toBe(0.82);
    expect(scopeCid).toBe('wc_STITCH');
    expect(em.kinds()).toEqual(['activity.started', 'activity.completed']);
    const [started, done] = em.events;
    for (const ev of em.events) {
      expect(ev).toMatchObject({
        source: 'temporal', correlation_id: 'wc_STITCH', trace_id: TRACE, queue: 'claims', job_name: null, activity_type: 'scoreClaim',
        workflow_id: WF.workflowId, run_id: WF.runId, attempt: 1, model: 'claims-llm', model_version: '2024-06', policy: 'claims-policy', policy_version: '5',
      });
      expect(ev.attrs).toMatchObject({ workflow_type: 'ClaimWorkflow', parent_span_id: PARENT, in_process_span: true });
    }
    expect(started.input_digest).toBe(sha256Hex(canonicalJson([args])));
    const stored = JSON.stringify(started.input);
    expect(stored).not.toContain('sk-live');
    expect(stored).not.toContain('jane@example.com');
    expect(stored).toContain('C-7');
    expect(done.duration_ms).toBeGreaterThanOrEqual(0);
    expect(done.attrs['output.score']).toBe(0.82);
    expect(done.attrs.served_model).toBe('claims-llm-mini');
    expect(done.attrs.served_model_version).toBe('2024-05');

    const spans = otel.exporter.getFinishedSpans();
    expect(spans).toHaveLength(1);
    expect(spans[0].name).toBe('activity scoreClaim');
    expect(spans[0].spanContext().traceId).toBe(TRACE);
    expect(spans[0].parentSpanContext?.spanId).toBe(PARENT);
    expect(spans[0].spanContext().spanId).toBe(done.span_id);
    expect(spans[0].attributes['messaging.system']).toBe('temporal');
    expect(spans[0].attributes['warden.attempt']).toBe(1);
    expect(JSON.stringify(spans[0].attributes)).not.toContain('sk-live');
  });

  it('each attempt reads its own stamp: attempts of different runs interleaved (decoded stamps are remembered by their text)', async () => {
    const em = new CollectingEmitter();
    const stamps = [
      { cid: 'wc_RUN_A', tp: `00-${TRACE}-${PARENT}-01`, model: 'claims-llm', model_version: '2024-06' },
      { cid: 'wc_RUN_B', tp: `00-${'b'.repeat(32)}-${'c'.repeat(16)}-01`, model: 'claims-llm', model_version: '2024-07' },
      { cid: 'wc_RUN_C', psid: 'd'.repeat(16) }, // no traceparent: the trace is derived from the correlation ID
    ];
    for (const i of [0, 1, 0, 2, 1, 2, 0]) await env(em, {}, {}, withStamp({}, stamps[i])).run(async () => 'ok');
    const started = em.events.filter((e) => e.kind === 'activity.started');
    expect(started.map((e) => e.correlation_id)).toEqual(['wc_RUN_A', 'wc_RUN_B', 'wc_RUN_A', 'wc_RUN_C', 'wc_RUN_B', 'wc_RUN_C', 'wc_RUN_A']);
    expect(started.map((e) => e.model_version)).toEqual(['2024-06', '2024-07', '2024-06', null, '2024-07', null, '2024-06']);
    expect(started.map((e) => e.trace_id)).toEqual([TRACE, 'b'.repeat(32), TRACE, traceIdForCorrelation('wc_RUN_C'), 'b'.repeat(32), traceIdForCorrelation('wc_RUN_C'), TRACE]);
    expect(started[3].attrs.parent_span_id).toBe('d'.repeat(16));
  });

  it('one span per attempt: a retryable failure is attempt_failed, the last allowed attempt and non-retryable failures are failed', async () => {
    otel.exporter.reset();
    const em = new CollectingEmitter();
    const retry = { retryPolicy: { maximumAttempts: 3 } };
    const boom = async () => { throw new Error('upstream 503 token=abc123secret'); };
    await expect(env(em, { attempt: 1, ...retry }).run(boom)).rejects.toThrow('upstream 503');
    await expect(env(em, { attempt: 2, ...retry }).run(boom)).rejects.toThrow('upstream 503');
    await expect(env(em, { attempt: 3, ...retry }).run(boom)).rejects.toThrow('upstream 503');
    const fatal = async () => { throw ApplicationFailure.create({ message: 'bad claim', nonRetryable: true, type: 'BadClaim' }); };
    await expect(env(em, { attempt: 1, ...retry }).run(fatal)).rejects.toThrow('bad claim');

    expect(em.kinds()).toEqual([
      'activity.started', 'activity.attempt_failed', 'activity.started', 'activity.attempt_failed',
      'activity.started', 'activity.failed', 'activity.started', 'activity.failed',
    ]);
    const ends = em.events.filter((e) => e.kind !== 'activity.started');
    expect(ends.map((e) => e.attempt)).toEqual([1, 2, 3, 1]);
    expect(ends[0].error).toContain('upstream 503');
    expect(ends[0].error).not.toContain('abc123secret');
    expect(ends[3].attrs.error_type).toBe('BadClaim');
    for (const e of ends) expect(e.duration_ms).not.toBeNull();

    const spans = otel.exporter.getFinishedSpans();
    expect(spans).toHaveLength(4);
    expect(spans.map((s) => s.attributes['warden.attempt'])).toEqual([1, 2, 3, 1]);
    expect(new Set(spans.map((s) => s.spanContext().spanId)).size).toBe(4);
    for (const s of spans) {
      expect(s.status.code).toBe(SpanStatusCode.ERROR);
      expect(s.spanContext().traceId).toBe(TRACE);
    }
    expect(ends.map((e) => e.span_id)).toEqual(spans.map((s) => s.spanContext().spanId));
  });

  it('an open breaker fails fast with a retryable ApplicationFailure whose nextRetryDelay follows the breaker, and records why', async () => {
    otel.exporter.reset();
    const em = new CollectingEmitter();
    const view = new MapBreakerView();
    const key = breakerKey({ system: 'temporal', kind: 'activity', name: 'scoreClaim' });
    view.set(breaker(key, { retry_after_ms: 45_000 }));
    let ran = false;
    const err: any = await env(em, { retryPolicy: { maximumAttempts: 5 } }, { breakers: view }).run(async () => { ran = true; }).catch((e) => e as any);
    expect(ran).toBe(false);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err.type).toBe(BREAKER_FAILURE_TYPE);
    expect(err.nonRetryable).toBe(false);
    expect(err.nextRetryDelay).toBe(45_000);
    expect(em.kinds()).toEqual(['activity.attempt_failed']);
    const ev = em.events[0];
    expect(ev.reason).toBe('retry ratio 0.62 over budget 0.20');
    expect(ev.attrs).toMatchObject({ fail_fast: true, breaker_key: key, breaker_phase: 'open', breaker_policy: 'retry-storm', breaker_policy_version: '3', next_retry_delay_ms: 45_000 });
    expect(ev.duration_ms).toBe(0);
    const spans = otel.exporter.getFinishedSpans();
    expect(spans).toHaveLength(1);
    expect(spans[0].attributes['warden.breaker.key']).toBe(key);

    // Closed again: the activity runs.
    view.delete(key);
    await env(em, {}, { breakers: view }).run(async () => { ran = true; });
    expect(ran).toBe(true);
  });

  it('fails non-retryably where the policy says so, and applies model-route breakers to the model read from arguments', async () => {
    const em = new CollectingEmitter();
    const view = new MapBreakerView();
    const modelKey = breakerKey({ system: 'any', kind: 'model', name: 'gpt-route-b' });
    view.set(breaker(modelKey, { non_retryable: true, reason: 'model gpt-route-b not approved', policy: 'version-drift' }));
    const opts = { breakers: view, argumentPaths: { model: '0.route.model' } };
    const noHeaders = {};
    const err: any = await env(em, {}, opts, noHeaders).run(async (_a: unknown) => 'ran', { route: { model: 'gpt-route-b' } }).catch((e) => e as any);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err.nonRetryable).toBe(true);
    expect(err.nextRetryDelay).toBeUndefined();
    expect(em.events[0]).toMatchObject({ kind: 'activity.failed', model: 'gpt-route-b', reason: 'model gpt-route-b not approved' });
    expect(em.events[0].attrs).toMatchObject({ breaker_key: modelKey, breaker_policy: 'version-drift', next_retry_delay_ms: null });
    // Another model is not affected.
    await expect(env(em, {}, opts, noHeaders).run(async (_a: unknown) => 'ran', { route: { model: 'gpt-route-a' } })).resolves.toBe('ran');
  });

  it('half-open breakers let probes through by probe_ratio', async () => {
    const em = new CollectingEmitter();
    const view = new MapBreakerView();
    const key = breakerKey({ system: 'temporal', kind: 'task_queue', name: 'claims' });
    view.set(breaker(key, { phase: 'half_open', probe_ratio: 1 }));
    await expect(env(em, {}, { breakers: view }).run(async () => 'probe')).resolves.toBe('probe');
    view.set(breaker(key, { phase: 'half_open', probe_ratio: 0 }));
    await expect(env(em, {}, { breakers: view }).run(async () => 'probe')).rejects.toBeInstanceOf(ApplicationFailure);
    expect(em.kinds()).toEqual(['activity.started', 'activity.completed', 'activity.attempt_failed']);
  });

  it('without trace headers: joins the trace derived from the workflow correlation ID, under the workflow run span', async () => {
    const em = new CollectingEmitter();
    await env(em, {}, {}, {}).run(async () => 'ok');
    const cid = `temporal:${WF.workflowId}`;
    expect(em.events[0].correlation_id).toBe(cid);
    expect(em.events[0].trace_id).toBe(traceIdForCorrelation(cid));
    expect(em.events[0].attrs.parent_span_id).toBe(workflowRunSpanId(WF.workflowId, WF.runId));
  });

  it('a throwing emitter or a broken tracer never reaches the activity: results and errors pass through unchanged', async () => {
    const bad = new ThrowingEmitter();
    await expect(env(bad).run(async () => 42)).resolves.toBe(42);
    const original = new Error('the activity error');
    await expect(env(bad).run(async () => { throw original; })).rejects.toBe(original);
    expect(bad.calls).toBeGreaterThanOrEqual(3);

    const broken: TracerProvider = { getTracer: (): Tracer => ({ startSpan: () => { throw new Error('tracer down'); }, startActiveSpan: () => { throw new Error('tracer down'); } }) as unknown as Tracer };
    trace.disable();
    trace.setGlobalTracerProvider(broken);
    try {
      const em = new CollectingEmitter();
      await expect(env(em).run(async () => 'still runs')).resolves.toBe('still runs');
      await expect(env(em).run(async () => { throw original; })).rejects.toBe(original);
    } finally {
      trace.disable();
      trace.setGlobalTracerProvider(otel.provider);
    }
  });

  it('without an OTel SDK: events still carry a stable span id and are marked for the sidecar to rebuild', async () => {
    trace.disable();
    try {
      const em = new CollectingEmitter();
      await env(em, { attempt: 2 }).run(async () => 'ok');
      const ev = em.of('activity.completed')[0];
      expect(ev.attrs.in_process_span).toBe(false);
      expect(ev.trace_id).toBe(TRACE);
      expect(ev.span_id).toMatch(/^[0-9a-f]{16}$/);
      expect(ev.span_id).not.toBe(PARENT);
    } finally {
      trace.setGlobalTracerProvider(otel.provider);
    }
  });
});
