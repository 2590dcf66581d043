/** The retry-storm signals, the event-time windows, version drift findings and the breaker state machine. */
import { describe, expect, it } from 'vitest';
import { makeEvent } from '../../core/event.js';
import { force, newBreaker, probe, tick, trip } from '../../policies/detect/breaker.js';
import { OutputDrift, VersionChecks } from '../../policies/detect/drift.js';
import { judgeStorm, retryBudget } from '../../policies/detect/retry-storm.js';
import { BreakerSchema, DriftSchema, RetryStormSchema } from '../../policies/schema.js';
import { AttemptWindow } from '../../policies/detect/window.js';

const storm = (o: Record<string, unknown> = {}) => RetryStormSchema.parse({ windowMs: 10_000, ...o });

describe('retry budget (Finagle-like)', () => {
  it('allows 20 % of first attempts plus the per-second allowance over the window', () => {
    expect(retryBudget(storm(), 100)).toBe(0.2 * 100 + 1 * 10);
    const w = new AttemptWindow(10_000);
    for (let i = 0; i < 100; i++) w.started(1000 + i, 1);
    for (let i = 0; i < 30; i++) w.started(2000 + i * 10, 2);
    expect(judgeStorm(w.sum(), storm()).trip).toBe(false); // 30 retries <= 30
    w.started(2500, 2);
    const v = judgeStorm(w.sum(), storm());
    expect(v).toMatchObject({ trip: true, signals: ['retry_budget'] });
    expect(v.retryRatio).toBeCloseTo(0.31);
    expect(v.budgetRatio).toBeCloseTo(0.3);
  });

  it('never trips below minRetries', () => {
    const w = new AttemptWindow(1000);
    for (let i = 0; i < 5; i++) w.started(i, 2);
    expect(judgeStorm(w.sum(), storm({ windowMs: 1000, budgetPerSecond: 0, minRetries: 6 })).trip).toBe(false);
  });
});

describe('the other storm signals', () => {
  it('terminal failures, stalls, attempt distribution, synchronized retries, dominant reason', () => {
    const off = { terminalFailures: null, stalls: null, attempts: null, synchronized: null, dominantReason: null, minRetries: 10_000 };
    const w = new AttemptWindow(10_000);
    for (let i = 0; i < 30; i++) { w.started(i, 1); w.finished(100 + i, i < 20, 'boom'); }
    expect(judgeStorm(w.sum(), storm({ ...off, terminalFailures: {} })).signals).toEqual(['terminal_failures']);

    const s = new AttemptWindow(10_000);
    for (let i = 0; i < 30; i++) s.started(i, 1);
    for (let i = 0; i < 7; i++) s.stalled(50 + i);
    expect(judgeStorm(s.sum(), storm({ ...off, stalls: {} })).signals).toEqual(['stalls']);

    const a = new AttemptWindow(10_000);
    for (let i = 0; i < 30; i++) a.started(i, i < 20 ? 4 : 1);
    const av = judgeStorm(a.sum(), storm({ ...off, attempts: {} }));
    expect(av.signals).toEqual(['attempt_distribution']);
    expect(av.evidence).toMatchObject({ attempts_ge_3: 20, 'attempt.4': 20, 'attempt.1': 10 });

    // 25 retries all due at the same instant (fixed backoff, failures at one moment): no jitter.
    const y = new AttemptWindow(10_000);
    for (let i = 0; i < 25; i++) y.attemptFailed(1000, 'x', 500);
    const yv = judgeStorm(y.sum(), storm({ ...off, synchronized: {} }));
    expect(yv.signals).toEqual(['synchronized_retries']);
    expect(yv.evidence.max_retries_due_together).toBe(25);
    // The same retries with jitter spread over a second: fine.
    const j = new AttemptWindow(10_000);
    for (let i = 0; i < 25; i++) j.attemptFailed(1000, 'x', 500 + i * 40);
    expect(judgeStorm(j.sum(), storm({ ...off, synchronized: {} })).trip).toBe(false);

    const d = new AttemptWindow(10_000);
    for (let i = 0; i < 60; i++) d.attemptFailed(i, i < 57 ? 'HTTP 429 from model' : `other ${i}`, null);
    const dv = judgeStorm(d.sum(), storm({ ...off, dominantReason: {} }));
    expect(dv.signals).toEqual(['dominant_reason']);
    // Over its threshold, but a qualifier: recorded as evidence, never a trip on its own.
    expect(dv).toMatchObject({ trip: false, trips: [], qualifiers: ['dominant_reason'] });
    expect(dv.evidence).toMatchObject({ top_reason: 'HTTP 429 from model', top_reason_count: 57 });
  });

  it('windows slide on event time: old buckets drop out', () => {
    const w = new AttemptWindow(1000);
    for (let i = 0; i < 10; i++) w.started(i, 2);
    expect(w.sum().retries).toBe(10);
    w.started(5000, 1);
    expect(w.sum()).toMatchObject({ retries: 0, first: 1 });
  });
});

describe('version drift', () => {
  const cfg = DriftSchema.parse({ approvedModels: { m: ['1', '2'] }, approvedPolicies: { refunds: ['7'] } });
  const ev = (o: Parameters<typeof makeEvent>[0]) => makeEvent(o);

  it('unapproved model and policy versions, served != requested, skew inside one correlation ID', () => {
    const v = new VersionChecks();
    expect(v.check(cfg, ev({ kind: 'job.added', source: 'bullmq', correlation_id: 'c1', model: 'm', model_version: '2' }))).toEqual([]);
    expect(v.check(cfg, ev({ kind: 'job.added', source: 'bullmq', correlation_id: 'c2', model: 'm', model_version: '3' })).map((f) => f.finding)).toEqual(['unapproved_model_version']);
    expect(v.check(cfg, ev({ kind: 'job.added', source: 'bullmq', correlation_id: 'c3', policy: 'refunds', policy_version: '6' })).map((f) => f.finding)).toEqual(['unapproved_policy_version']);
    expect(v.check(cfg, ev({ kind: 'job.completed', source: 'bullmq', correlation_id: 'c1', model: 'm', model_version: '2', attrs: { served_model: 'm', served_model_version: '1' } })).map((f) => f.finding)).toEqual(['served_model_mismatch']);
    expect(v.check(cfg, ev({ kind: 'activity.started', source: 'temporal', correlation_id: 'c1', model: 'm', model_version: '1' })).map((f) => f.finding)).toEqual(['version_skew']);
    // A model the file does not list is not judged (approval lists are opt-in per model).
    expect(v.check(cfg, ev({ kind: 'job.added', source: 'bullmq', correlation_id: 'c9', model: 'other', model_version: 'x' }))).toEqual([]);
    // Names that exist on every object are names like any other (not inherited properties).
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      expect(v.check(cfg, ev({ kind: 'job.added', source: 'bullmq', correlation_id: `c-${name}`, model: name, model_version: '1', policy: name, policy_version: '1' }))).toEqual([]);
    }
  });

  it('output drift: the first values are the baseline, the newest window is compared with it', () => {
    const od = new OutputDrift({ name: 'score', baselineSize: 50, windowSize: 20, method: 'auto' });
    for (let i = 0; i < 50; i++) expect(od.add((i % 10) / 10)).toBeNull();
    let last = null;
    for (let i = 0; i < 20; i++) last = od.add((i % 10) / 10) ?? last;
    expect(last).toMatchObject({ method: 'ks', drift: false });
    for (let i = 0; i < 20; i++) last = od.add(2 + (i % 10) / 10) ?? last;
    expect(last).toMatchObject({ method: 'ks', drift: true });
  });
});

describe('breaker state machine', () => {
  const cfg = BreakerSchema.parse({ resetTimeoutMs: 100, backoffMultiplier: 3, maxResetTimeoutMs: 500, probes: 2 });
  const scope = { system: 'bullmq', kind: 'queue', name: 'q' } as const;

  it('closed -> open -> half-open -> closed, with backoff on failed probes, capped', () => {
    const b = newBreaker('p', '1', 'bullmq.queue.q', scope, cfg, 0);
    expect(trip(b, cfg, 10, 'storm')).toMatchObject({ from: 'closed', to: 'open' });
    expect(trip(b, cfg, 11, 'storm')).toBeNull();
    expect(tick(b, 109)).toBeNull();
    expect(tick(b, 110)).toMatchObject({ to: 'half_open' });
    expect(probe(b, cfg, 120, false, 'boom')).toMatchObject({ to: 'open' });
    expect(b.resetTimeoutMs).toBe(300);
    tick(b, 420);
    probe(b, cfg, 421, false, 'boom');
    expect(b.resetTimeoutMs).toBe(500); // 900 capped
    tick(b, 921);
    expect(probe(b, cfg, 922, true, 'ok')).toBeNull();
    expect(probe(b, cfg, 923, true, 'ok')).toMatchObject({ to: 'closed' });
    expect(b).toMatchObject({ opens: 0, resetTimeoutMs: 100 });
  });

  it('forced states hold against the detector until handed back', () => {
    const b = newBreaker('p', '1', 'k', scope, cfg, 0);
    expect(force(b, cfg, 'open', 'alice', 5)).toMatchObject({ to: 'open', actor: 'alice' });
    expect(tick(b, 10_000)).toBeNull(); // no half-open while forced
    expect(force(b, cfg, 'auto', 'alice', 10_000)).toBeNull();
    expect(b.forced).toBeNull();
    expect(tick(b, 10_100)).toMatchObject({ to: 'half_open' });
    force(b, cfg, 'closed', 'bob', 10_200);
    expect(trip(b, cfg, 10_300, 'storm')).toBeNull();
    expect(b).toMatchObject({ phase: 'closed', forced_by: 'bob' });
  });
});
