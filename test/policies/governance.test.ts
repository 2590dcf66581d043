/**
 * Governance that does not cry wolf, on the pure decider (no servers): noise with one dominant reason
 * trips nothing, a storm beside it does (the dominant reason is recorded as a qualifier), half-open
 * probes are judged as a window against the scope's baseline failure rate, drift breakers judge
 * probes on fresh values only, and `explain` says which signal is closest to tripping.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import { backtest } from '../../policies/backtest.js';
import { Decider, type Output, type TransitionOutput } from '../../policies/detect/decider.js';
import { binomialTail, judgeProbes } from '../../policies/detect/probes.js';
import { parsePolicies } from '../../policies/loader.js';
import { BreakerSchema } from '../../policies/schema.js';
import { rng } from '../harness/bullmq.js';

const T0 = 1_800_000_000_000;
const SHIPPED = readFileSync(resolve('policies/examples/default.yaml'), 'utf8');
const transitions = (outs: Output[]) => outs.filter((o): o is TransitionOutput => o.type === 'transition');

/**
 * A BullMQ queue as the collector records it: `rate` jobs/s, each attempt failing with probability
 * `fail(t)` and message `msg(t)`, retried (4 attempts) after an exponential backoff with jitter.
 */
function queueEvents(queue: string, o: { from: number; to: number; rate: number; fail: (t: number) => number; msg: (t: number) => string; seed: number }): WardenEvent[] {
  const random = rng(o.seed);
  const evs: WardenEvent[] = [];
  let id = 0;
  for (let t = o.from; t < o.to; t += 1000 / o.rate) {
    const job = `${queue}-${++id}`;
    let at = Math.round(t);
    for (let attempt = 1; attempt <= 4; attempt++) {
      evs.push(makeEvent({ kind: 'job.started', source: 'bullmq', queue, job_id: job, attempt, ts: at }));
      const end = at + 20 + Math.floor(random() * 40);
      if (random() < o.fail(at)) {
        if (attempt === 4) { evs.push(makeEvent({ kind: 'job.failed', source: 'bullmq', queue, job_id: job, attempt, ts: end, error: o.msg(at) })); break; }
        const delay = Math.round(200 * 2 ** (attempt - 1) * (1 - 0.5 * random()));
        evs.push(makeEvent({ kind: 'job.attempt_failed', source: 'bullmq', queue, job_id: job, attempt, ts: end, error: o.msg(at), attrs: { retry_delay_ms: delay } }));
        at = end + delay;
      } else {
        evs.push(makeEvent({ kind: 'job.completed', source: 'bullmq', queue, job_id: job, attempt, ts: end }));
        break;
      }
    }
  }
  return evs.sort((a, b) => a.ts - b.ts);
}

const noise = (queue: string, seed: number, minutes = 10, rate = 40) => queueEvents(queue, { from: T0, to: T0 + minutes * 60_000, rate, fail: () => 0.06, msg: () => 'embedding service 503', seed });

describe('signals that trip vs signals that qualify (the shipped example policy)', () => {
  const shipped = parsePolicies(SHIPPED, 'default.yaml');

  it('ten minutes of noise (6 % failing, one message, jittered exponential retries) trip nothing, though one reason dominates', async () => {
    const evs = noise('demo-embed', 1);
    const failed = evs.filter((e) => e.kind === 'job.attempt_failed').length;
    expect(failed).toBeGreaterThan(1000); // about 6 % of ~25 000 attempts, every one "embedding service 503"
    const r = await backtest(shipped, evs);
    expect(r.decisions).toEqual([]);
    // The dominant reason is over its threshold (it qualifies) without tripping.
    const d = new Decider({ policies: shipped });
    d.observe(evs, evs.at(-1)!.ts);
    const [ex] = d.explain('bullmq.queue.demo-embed');
    expect(ex.signals!.find((s) => s.signal === 'dominant_reason')).toMatchObject({ trips: false, over: true });
    expect(ex.signals!.filter((s) => s.trips && s.over)).toEqual([]);
    expect(ex.baseline!.failure_rate).toBeGreaterThan(0.03);
    expect(ex.baseline!.failure_rate).toBeLessThan(0.1);
  });

  it('a storm beside the noise opens its own breaker; the dominant reason is recorded as a qualifier', async () => {
    const storm = queueEvents('demo-model-call', {
      from: T0, to: T0 + 240_000, rate: 20, seed: 2,
      fail: (t) => (t >= T0 + 90_000 && t < T0 + 150_000 ? 1 : 0.06),
      msg: () => 'model provider rate limited (429)', // the noise before and after has the storm's message too
    });
    const evs = [...noise('demo-embed', 3, 4), ...storm].sort((a, b) => a.ts - b.ts);
    const r = await backtest(parsePolicies(SHIPPED, 'default.yaml'), evs);
    expect(r.decisions.filter((d) => d.scope !== 'bullmq.queue.demo-model-call')).toEqual([]);
    const opened = r.decisions.find((d) => d.transition === 'closed->open')!;
    expect(opened.ts - (T0 + 90_000)).toBeLessThan(30_000); // within the window
    expect(opened).toMatchObject({ decision: 'pause', evidence: { qualifiers: 'dominant_reason', top_reason: 'model provider rate limited (429)' } });
    expect(String(opened.evidence.signals)).not.toContain('dominant_reason');
    // Probes during the storm fail and re-open; after it, with the noise still there, the breaker closes.
    const last = r.decisions.filter((d) => d.scope === 'bullmq.queue.demo-model-call').at(-1)!;
    expect(last).toMatchObject({ transition: 'half_open->closed', decision: 'restore' });
    expect(last.ts).toBeGreaterThan(T0 + 150_000);
    expect(r.decisions.some((d) => d.transition === 'half_open->open')).toBe(true);
  });

  it('a policy file that sets dominantReason alone stays valid and never trips on it', async () => {
    const p = parsePolicies(`apiVersion: warden/v1
policies:
  - name: only-reason
    version: 1
    retryStorm: { windowMs: 10000, minRetries: 100000, terminalFailures: null, stalls: null, attempts: null, synchronized: null, dominantReason: { maxShare: 0.5, minFailures: 5 } }
`, 'p.yaml');
    const evs = queueEvents('q', { from: T0, to: T0 + 60_000, rate: 20, fail: () => 0.5, msg: () => 'same', seed: 4 });
    expect((await backtest(p, evs)).decisions).toEqual([]);
  });
});

describe('half-open probes judged against the baseline failure rate', () => {
  const cfg = BreakerSchema.parse({ probes: 3 });

  it('the probe window is judged by rate: within the band closes, improbable failures re-open, no baseline is strict', () => {
    expect(binomialTail(1, 1, 0.2)).toBeCloseTo(0.2);
    expect(binomialTail(2, 3, 0.5)).toBeCloseTo(0.5);
    expect(binomialTail(0, 5, 0.1)).toBe(1);
    // Band 0.21 (baseline 8 % x 2 + 5 %): one failed probe waits, then successes close.
    expect(judgeProbes(cfg, 0, 1, 0.21)).toBe('wait');
    expect(judgeProbes(cfg, 3, 1, 0.21)).toBe('wait'); // 25 % > 21 %: one more
    expect(judgeProbes(cfg, 4, 1, 0.21)).toBe('close');
    // Two failures in a row are possible under 21 % (4.4 %), three are not (0.9 % < alpha 1 %): re-open.
    expect(judgeProbes(cfg, 0, 2, 0.21)).toBe('wait');
    expect(judgeProbes(cfg, 0, 3, 0.21)).toBe('reopen');
    // Without a baseline, as before: one failure re-opens, `probes` successes close.
    expect(judgeProbes(cfg, 0, 1, null)).toBe('reopen');
    expect(judgeProbes(cfg, 3, 0, null)).toBe('close');
  });

  const POL = parsePolicies(`apiVersion: warden/v1
policies:
  - name: q
    version: 1
    scope: { system: bullmq, queue: q }
    retryStorm: { windowMs: 2000, minRetries: 3, synchronized: null }
    breaker: { resetTimeoutMs: 1000, probes: 3 }
`, 'p.yaml');
  const ev = (kind: WardenEvent['kind'], id: string, attempt: number, ts: number, error: string | null = null) => makeEvent({ kind, source: 'bullmq', queue: 'q', job_id: id, attempt, ts, error });

  /** 20 s of a noisy-but-healthy queue (8 % failing), a storm, the breaker opens; returns the decider at half-open. */
  function halfOpen(): { d: Decider; at: number } {
    const d = new Decider({ policies: POL });
    const random = rng(9);
    for (let i = 0; i < 400; i++) {
      const t = T0 + i * 50;
      d.observe([ev('job.started', `n${i}`, 1, t)], t);
      d.observe([random() < 0.08 ? ev('job.failed', `n${i}`, 1, t + 10, 'flaky') : ev('job.completed', `n${i}`, 1, t + 10)], t + 10);
    }
    const s = T0 + 20_000;
    const outs: Output[] = [];
    for (let i = 0; i < 20; i++) outs.push(...d.observe([ev('job.started', `s${i}`, 1, s + i), ev('job.attempt_failed', `s${i}`, 1, s + i + 1, 'down'), ev('job.started', `s${i}`, 2, s + 100 + i)], s + 200));
    const [opened] = transitions(outs);
    expect(opened.transition.to).toBe('open');
    expect(opened.evidence.baseline_failure_rate).toBeGreaterThan(0.04);
    const half = transitions(d.tick(opened.state.since + 1000));
    expect(half[0].transition.to).toBe('half_open');
    return { d, at: half[0].state.since };
  }

  it('one failed probe on a noisy-but-healthy queue does not re-open; the window closes within the baseline band', () => {
    const { d, at } = halfOpen();
    expect(d.observe([ev('job.failed', 'p0', 1, at + 10, 'flaky')], at + 10)).toEqual([]);
    const outs: Output[] = [];
    for (let i = 1; i <= 5; i++) outs.push(...d.observe([ev('job.completed', `p${i}`, 1, at + 10 + i)], at + 20));
    const [closed] = transitions(outs);
    expect(closed).toMatchObject({ transition: { from: 'half_open', to: 'closed' }, evidence: { probes_failed: 1 } });
    expect(closed.transition.reason).toMatch(/within the baseline band/);
    expect(closed.evidence.probes_ok).toBeGreaterThanOrEqual(4);
  });

  it('probes still failing like the storm re-open, with backoff', () => {
    const { d, at } = halfOpen();
    const outs: Output[] = [];
    for (let i = 0; i < 6; i++) outs.push(...d.observe([ev('job.attempt_failed', `p${i}`, 2, at + 10 + i, 'down')], at + 20));
    const [reopened] = transitions(outs);
    expect(reopened).toMatchObject({ transition: { from: 'half_open', to: 'open' }, state: { resetTimeoutMs: 2000, opens: 2 } });
    expect(reopened.transition.reason).toMatch(/above the baseline band/);
    expect(reopened.evidence.probes_failed).toBeLessThanOrEqual(4);
  });
});

describe('drift breakers judge probes on fresh values only', () => {
  const POL = parsePolicies(`apiVersion: warden/v1
policies:
  - name: scores
    version: 1
    drift: { metrics: [{ name: score, baselineSize: 40, windowSize: 20 }], action: breaker }
    breaker: { resetTimeoutMs: 1000, probes: 2 }
`, 'p.yaml');
  const done = (i: number, score: number, ts: number) => makeEvent({ kind: 'job.completed', source: 'bullmq', queue: 'q', job_id: `j${i}`, ts, model: 'ranker', attrs: { 'output.score': score } });

  it('after half-open, no verdict until a window of fresh values is full; fresh healthy values close it at once', () => {
    const d = new Decider({ policies: POL });
    let i = 0;
    const outs: Output[] = [];
    for (; i < 40; i++) outs.push(...d.observe([done(i, (i % 10) / 10, T0 + i)], T0 + i));
    for (; i < 60; i++) outs.push(...d.observe([done(i, 3 + (i % 10) / 10, T0 + i)], T0 + i));
    const opened = transitions(outs).find((t) => t.transition.to === 'open')!;
    expect(opened.state.key).toBe('any.model.ranker');
    const half = transitions(d.tick(opened.state.since + 1000));
    expect(half[0].transition.to).toBe('half_open');
    const at = half[0].state.since;
    // Healthy values again. The current window still held 20 drifted values: judged on it, these
    // probes would fail and re-open. Fresh only: nothing for 19 values, then the 20th decides.
    const after: Output[][] = [];
    for (let k = 0; k < 21; k++, i++) after.push(d.observe([done(i, (k % 10) / 10, at + 1 + k)], at + 1 + k));
    expect(after.slice(0, 19).flat().filter((o) => o.type === 'transition')).toEqual([]);
    const moved = after.flat().filter((o): o is TransitionOutput => o.type === 'transition');
    expect(moved.map((t) => `${t.transition.from}->${t.transition.to}`)).toEqual(['half_open->closed']);
    expect(moved[0].evidence).toMatchObject({ fresh_values: 20 });
  });
});

describe('explain', () => {
  it('window counts, budget, baseline and the signal closest to tripping; 400 for a non-scope, 404 for an uncovered one', () => {
    const p = parsePolicies(SHIPPED, 'default.yaml');
    const d = new Decider({ policies: p });
    const evs = noise('ingest', 5, 2);
    d.observe(evs, evs.at(-1)!.ts);
    const [ex] = d.explain('bullmq.queue.ingest');
    expect(ex).toMatchObject({ policy: 'bullmq-retry-storm', phase: 'closed', window: { window_ms: 30_000 }, budget: { allowed: expect.any(Number) } });
    expect(ex.window!.first_attempts).toBeGreaterThan(400);
    expect(ex.closest).toBe('retry_budget');
    expect(ex.baseline!.probe_band_upper).toBeGreaterThan(ex.baseline!.failure_rate);
    expect(() => d.explain('nonsense')).toThrow(/not a breaker scope/);
    expect(() => d.explain('temporal.activity.other')).toThrow(/no policy covers/);
  });
});
