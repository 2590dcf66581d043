/**
 * The decider alone, offline, as a backtest runs it: a recorded (generated) event list and given
 * times in, decisions out. No servers, no data dir, no clock: every time is passed in.
 */
import { describe, expect, it } from 'vitest';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import { Decider, type Output, type TransitionOutput } from '../../policies/detect/decider.js';
import { parsePolicies } from '../../policies/loader.js';

const POLICIES = parsePolicies(`apiVersion: warden/v1
policies:
  - name: guard
    version: 3
    scope: { system: bullmq, queue: ingest }
    retryStorm: { windowMs: 2000, budgetRatio: 0.2, budgetPerSecond: 1, minRetries: 3, synchronized: null }
    breaker: { action: pause, resetTimeoutMs: 1000, probes: 2 }
`, 'p.yaml');

const T0 = 1_800_000_000_000;
const job = (kind: WardenEvent['kind'], id: number, attempt: number, ts: number, error: string | null = null) => makeEvent({
  kind, source: 'bullmq', queue: 'ingest', job_id: `j${id}`, attempt, ts, error,
});

/**
 * 10 jobs start and fail once, then their retries start 100 ms later. The budget over the 2 s window
 * is 0.2 x 10 first attempts + 1/s x 2 s = 4 retries: the 5th retry (at T0 + 104) is over it.
 */
function recordedStorm(): WardenEvent[] {
  const evs: WardenEvent[] = [];
  for (let i = 0; i < 10; i++) evs.push(job('job.started', i, 1, T0 + i), job('job.attempt_failed', i, 1, T0 + i + 1, 'ECONNRESET'));
  for (let i = 0; i < 10; i++) evs.push(job('job.started', i, 2, T0 + 100 + i));
  return evs;
}

/** A backtest: each event observed at its own time, then the clock ticks past the reset timeout, then two probes succeed. */
function backtest(events: readonly WardenEvent[]): { outputs: Output[]; at: number[] } {
  const d = new Decider({ policies: POLICIES });
  const outputs: Output[] = [];
  const at: number[] = [];
  const take = (now: number, outs: Output[]) => { for (const o of outs) { outputs.push(o); at.push(now); } };
  for (const ev of events) take(ev.ts, d.observe([ev], ev.ts));
  take(T0 + 1103, d.tick(T0 + 1103));
  take(T0 + 1104, d.tick(T0 + 1104));
  const probe1 = job('job.completed', 0, 2, T0 + 1150);
  const probe2 = job('job.completed', 1, 2, T0 + 1160);
  take(probe1.ts, d.observe([probe1], probe1.ts));
  take(probe2.ts, d.observe([probe2], probe2.ts));
  return { outputs, at };
}

const transitions = (outs: Output[]) => outs.filter((o): o is TransitionOutput => o.type === 'transition');

describe('decider (offline, no servers)', () => {
  it('a recorded storm opens the breaker at the event that exceeds the budget, with its evidence; ticks half-open it; probes close it', () => {
    const { outputs, at } = backtest(recordedStorm());
    const ts = transitions(outputs);
    expect(ts.map((t) => `${t.transition.from}->${t.transition.to}`)).toEqual(['closed->open', 'open->half_open', 'half_open->closed']);

    const [opened, halfOpened, closed] = ts;
    expect(at[outputs.indexOf(opened)]).toBe(T0 + 104); // the 5th retry
    expect(opened).toMatchObject({
      decision: 'pause', dryRun: false, digest: POLICIES.digest, policy: { name: 'guard', version: '3' },
      state: { key: 'bullmq.queue.ingest', phase: 'open', since: T0 + 104, opens: 1, resetTimeoutMs: 1000, policy_version: '3', applied: null },
      evidence: { retries: 5, first_attempts: 10, retry_budget: 4, signals: 'retry_budget', top_reason: 'ECONNRESET', failed_attempts: 10 },
    });
    expect(opened.transition.reason).toMatch(/^retry storm on bullmq\.queue\.ingest: retry_budget/);

    // T0 + 1103 is 999 ms after the open: nothing; T0 + 1104 is the reset timeout.
    expect(at[outputs.indexOf(halfOpened)]).toBe(T0 + 1104);
    expect(halfOpened).toMatchObject({ decision: 'probe', state: { phase: 'half_open', since: T0 + 1104 } });
    expect(at[outputs.indexOf(closed)]).toBe(T0 + 1160); // the second of two probes
    expect(closed).toMatchObject({ decision: 'restore', state: { phase: 'closed', since: T0 + 1160, opens: 0 }, evidence: { probe_job: 'j1', probes_ok: 2 } });
    // Nothing but the three transitions: the retries after the open are not a second decision.
    expect(outputs).toHaveLength(3);
  });

  it('the same events into fresh deciders give identical outputs', () => {
    const events = recordedStorm();
    const a = backtest(events);
    const b = backtest(events);
    expect(b).toEqual(a);
    expect(JSON.stringify(b.outputs)).toBe(JSON.stringify(a.outputs));
  });

  // Was: "one batch is judged once, after counting all of it" (opened at the batch time with all 10
  // retries). Decisions are now judged in event time, so batching cannot change them.
  it('batching does not matter: one batch, any split into batches, and one event at a time give the same decisions at the same times', () => {
    const d = new Decider({ policies: POLICIES });
    const [opened] = transitions(d.observe(recordedStorm(), T0 + 200));
    expect(opened).toMatchObject({ state: { since: T0 + 104 }, evidence: { retries: 5, first_attempts: 10 } });
    const one = backtest(recordedStorm()).outputs;
    for (const size of [2, 3, 7, 30]) {
      const split = new Decider({ policies: POLICIES });
      const outs: Output[] = [];
      const evs = recordedStorm();
      for (let i = 0; i < evs.length; i += size) outs.push(...split.observe(evs.slice(i, i + size), T0 + 5000));
      // The clock ticks late (as a timer would): the half-open is still stamped when it was due.
      outs.push(...split.tick(T0 + 1900));
      const probe1 = job('job.completed', 0, 2, T0 + 1150);
      const probe2 = job('job.completed', 1, 2, T0 + 1160);
      outs.push(...split.observe([probe1, probe2], T0 + 2000));
      expect(JSON.stringify(outs)).toBe(JSON.stringify(one));
    }
  });

  it('snapshot and restore: an open breaker comes back in a fresh decider and half-opens on its own schedule; dry-run names the decision', () => {
    const d = new Decider({ policies: POLICIES });
    d.observe(recordedStorm(), T0 + 200);
    const saved = d.snapshot();
    const again = new Decider({ policies: POLICIES, dryRun: true });
    expect(again.restore(saved, T0 + 500)).toMatchObject([{ type: 'restored', state: { phase: 'open', since: T0 + 104 } }]);
    expect(again.tick(T0 + 1103)).toEqual([]);
    expect(again.tick(T0 + 1104)).toMatchObject([{ type: 'transition', decision: 'dry_run:probe', dryRun: true }]);
    expect(again.force('bullmq.queue.ingest', 'closed', 'alice', T0 + 1300)).toMatchObject([{ type: 'transition', transition: { to: 'closed', actor: 'alice' }, evidence: { forced: 'closed' } }]);
    expect(() => again.force('bullmq.queue.other', 'open', 'alice', T0 + 1300)).toThrow(/no policy covers/);
  });
});
