/**
 * The engine on its own: events in, decisions and transitions out (recorded in order), timers on an
 * injected clock. Queue actions are tested against a real Redis in sidecar-breakers.test.ts; here the
 * engine runs without a job system (queues: null), as it does for Temporal scopes.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import { PolicyEngine } from '../../policies/engine.js';
import { parsePolicies } from '../../policies/loader.js';
import { readBreakerStates } from '../../policies/act/state-file.js';
import { tempDir, type TempDir } from '../harness/index.js';

const FILE = (extra = '') => `apiVersion: warden/v1
policies:
  - name: llm
    version: 4
    scope: { system: temporal, activityType: callModel }
    retryStorm: { windowMs: 2000, budgetRatio: 0.2, budgetPerSecond: 1, minRetries: 3, synchronized: null }
    breaker: { resetTimeoutMs: 1000, backoffMultiplier: 2, probes: 2 }
${extra}`;

let dir: TempDir;
let now: number;
let recorded: WardenEvent[];
let phases: string[];
beforeEach(async () => {
  dir = await tempDir('warden-engine');
  now = 1_800_000_000_000;
  recorded = [];
  phases = [];
});
afterEach(async () => dir.cleanup());

async function engine(text = FILE(), dryRun = false): Promise<PolicyEngine> {
  return PolicyEngine.open({
    dataDir: dir.path, policies: parsePolicies(text, 'p.yaml'), queues: null, kv: null, dryRun, clock: () => now,
    record: async (evs) => { recorded.push(...evs); },
    observer: { breakerState: (_p, _s, phase) => phases.push(phase) },
  });
}

const activity = (kind: WardenEvent['kind'], attempt: number, ts: number, error: string | null = null) => makeEvent({
  kind, source: 'temporal', ts, queue: 'agents', activity_type: 'callModel', attempt, error, workflow_id: `wf-${ts}`,
});

/** 10 first attempts, then 10 failures each retried: 10 retries > budget 0.2 x 10 + 2 = 4. */
function storm(at: number): WardenEvent[] {
  const evs: WardenEvent[] = [];
  for (let i = 0; i < 10; i++) evs.push(activity('activity.started', 1, at + i), activity('activity.attempt_failed', 1, at + i + 1, 'rate limited'));
  for (let i = 0; i < 10; i++) evs.push(activity('activity.started', 2, at + 100 + i));
  return evs;
}

describe('policy engine', () => {
  it('a storm opens the breaker with its evidence; after the reset timeout it half-opens; a failed probe re-opens with doubled timeout; successes close', async () => {
    const e = await engine();
    e.observe(storm(now));
    await e.idle();
    const opened = recorded.find((r) => r.kind === 'breaker.opened')!;
    expect(opened).toMatchObject({ policy: 'llm', policy_version: '4', decision: 'fail_fast', activity_type: 'callModel', actor: 'warden' });
    // Judged in event time: the 5th retry (over the budget of 4) opens it, whatever the batch held.
    expect(opened.attrs).toMatchObject({ scope: 'temporal.activity.callModel', 'evidence.retries': 5, 'evidence.first_attempts': 10, 'evidence.retry_budget': 4, 'evidence.signals': 'retry_budget' });
    expect(recorded.filter((r) => r.kind === 'policy.decision' && r.decision === 'fail_fast')).toHaveLength(1);
    // More storm while open: no second decision.
    e.observe(storm(now + 200));
    e.tick();
    await e.idle();
    expect(recorded.filter((r) => r.kind === 'breaker.opened')).toHaveLength(1);

    // Stamped in event time: opened at the 5th retry (now + 104), so due to half-open at now + 1104.
    now += 1103;
    e.tick();
    expect(e.list()[0].phase).toBe('open');
    now += 1;
    e.tick();
    await e.idle();
    expect(e.list()[0].phase).toBe('half_open');
    e.observe([activity('activity.attempt_failed', 3, now + 5, 'still rate limited')]);
    await e.idle();
    expect(e.list()[0]).toMatchObject({ phase: 'open', resetTimeoutMs: 2000, opens: 2 });
    // Re-opened at the failed probe's time (now + 5): due again at now + 2005.
    now += 2004;
    e.tick();
    expect(e.list()[0].phase).toBe('open');
    now += 1;
    e.tick();
    e.observe([activity('activity.completed', 3, now + 1), activity('activity.completed', 1, now + 2)]);
    await e.idle();
    expect(e.list()[0]).toMatchObject({ phase: 'closed', opens: 0, resetTimeoutMs: 1000 });
    expect(recorded.filter((r) => r.kind.startsWith('breaker.')).map((r) => r.kind)).toEqual([
      'breaker.opened', 'breaker.half_opened', 'breaker.opened', 'breaker.half_opened', 'breaker.closed',
    ]);
    // The gauge saw every phase in order (repeats come from re-asserting the state on each save).
    expect(phases.filter((p, i) => p !== phases[i - 1])).toEqual(['open', 'half_open', 'open', 'half_open', 'closed']);
    // Persisted: closed breakers with nothing applied are not kept.
    expect(await readBreakerStates(dir.path)).toEqual([]);
    await e.stop();
  });

  it('below the budget nothing trips', async () => {
    const e = await engine();
    const evs: WardenEvent[] = [];
    for (let i = 0; i < 40; i++) evs.push(activity('activity.started', 1, now + i * 40));
    for (let i = 0; i < 9; i++) evs.push(activity('activity.started', 2, now + 50 + i * 170)); // 9 <= 0.2 x 40 + 2
    e.observe(evs);
    await e.idle();
    expect(recorded).toEqual([]);
  });

  it('dry-run decides and records but does not act or publish', async () => {
    const e = await engine(FILE(), true);
    e.observe(storm(now));
    await e.idle();
    expect(recorded.find((r) => r.kind === 'breaker.opened')).toMatchObject({ decision: 'dry_run:fail_fast', attrs: { dry_run: true } });
  });

  it('an open breaker survives a restart; an admin force is recorded with the actor', async () => {
    const e = await engine();
    e.observe(storm(now));
    await e.stop();
    recorded = [];
    const again = await engine();
    await again.idle();
    expect(again.list()[0]).toMatchObject({ phase: 'open', key: 'temporal.activity.callModel' });
    expect(recorded[0]).toMatchObject({ decision: 'restore', attrs: { phase: 'open' } });
    await again.force('temporal.activity.callModel', 'closed', 'alice');
    expect(again.list()[0]).toMatchObject({ phase: 'closed', forced: 'closed', forced_by: 'alice' });
    expect(recorded.find((r) => r.kind === 'breaker.closed')).toMatchObject({ actor: 'alice', decision: 'close' });
    expect(recorded.find((r) => r.kind === 'policy.decision' && r.decision === 'force_closed')).toMatchObject({ actor: 'alice' });
    // Held closed: a new storm does not open it.
    again.observe(storm(now + 10_000));
    await again.idle();
    expect(again.list()[0].phase).toBe('closed');
    await expect(again.force('bullmq.queue.x', 'open', 'alice')).rejects.toThrow(/no policy covers bullmq\.queue\.x/);
    await expect(again.force('not a key', 'open', 'alice')).rejects.toThrow(/not a breaker scope/);
  });

  it('a policy removed while Warden was down: its breaker is closed at start and the ledger says why', async () => {
    const e = await engine();
    e.observe(storm(now));
    await e.stop();
    recorded = [];
    const other = FILE().replace('name: llm', 'name: other');
    const again = await engine(other);
    await again.idle();
    expect(again.list()).toEqual([]);
    expect(recorded[0]).toMatchObject({ kind: 'breaker.closed', policy: 'llm', attrs: { scope: 'temporal.activity.callModel' } });
    expect(recorded[0].reason).toMatch(/no longer in the policy file/);
  });

  it('reload: new policies apply without restart; a rejected reload keeps the old ones and is recorded', async () => {
    const e = await engine();
    e.reloadRejected('p.yaml', ['policies[0].retryStorm.budgetRatio: expected number, received string']);
    await e.idle();
    expect(recorded[0]).toMatchObject({ kind: 'policy.decision', decision: 'reload_rejected' });
    expect(recorded[0].reason).toContain('policies[0].retryStorm.budgetRatio');
    expect(e.loaded!.policies[0].name).toBe('llm');
    e.setPolicies(parsePolicies(FILE().replace('version: 4', 'version: 5'), 'p.yaml'));
    e.observe(storm(now));
    await e.idle();
    expect(recorded.find((r) => r.kind === 'breaker.opened')).toMatchObject({ policy_version: '5' });
    expect(recorded.find((r) => r.decision === 'reload')!.attrs.policy_digest).toBe(e.loaded!.digest);
  });

  it('drift with action breaker: a drifting model opens a breaker on its route, and new work on it needs an approval', async () => {
    const text = `apiVersion: warden/v1
policies:
  - name: scores
    version: 1
    drift:
      metrics: [{ name: score, baselineSize: 30, windowSize: 20 }]
      action: breaker
    breaker: { resetTimeoutMs: 5000 }
`;
    const e = await engine(text);
    const done = (i: number, score: number) => makeEvent({ kind: 'activity.completed', source: 'temporal', ts: now + i, model: 'ranker', correlation_id: `c${i}`, activity_type: 'rank', attrs: { 'output.score': score } });
    const evs = [];
    for (let i = 0; i < 30; i++) evs.push(done(i, (i % 10) / 10));
    for (let i = 30; i < 50; i++) evs.push(done(i, 3 + (i % 10) / 10));
    e.observe(evs);
    await e.idle();
    const drift = recorded.find((r) => r.decision === 'drift')!;
    expect(drift).toMatchObject({ model: 'ranker', attrs: { finding: 'statistical_drift', method: 'ks' } });
    expect(recorded.find((r) => r.kind === 'breaker.opened')).toMatchObject({ model: 'ranker', decision: 'gate_route', attrs: { scope: 'any.model.ranker' } });
    e.observe([makeEvent({ kind: 'activity.started', source: 'temporal', ts: now + 60, model: 'ranker', correlation_id: 'new-work', activity_type: 'rank', attempt: 1 })]);
    await e.idle();
    expect(recorded.find((r) => r.decision === 'require_approval' && r.kind === 'policy.decision' && r.correlation_id === 'new-work')).toBeDefined();
  });

  it('drift on latency: the metric duration_ms reads the completion\'s own duration', async () => {
    const text = `apiVersion: warden/v1
policies:
  - name: latency
    version: 1
    drift: { metrics: [{ name: duration_ms, baselineSize: 30, windowSize: 20 }], action: record }
`;
    const e = await engine(text);
    const done = (i: number, ms: number) => makeEvent({ kind: 'job.completed', source: 'bullmq', queue: 'q', ts: now + i, model: 'm', duration_ms: ms });
    const evs = [];
    for (let i = 0; i < 30; i++) evs.push(done(i, 100 + (i % 10)));
    for (let i = 30; i < 50; i++) evs.push(done(i, 400 + (i % 10)));
    e.observe(evs);
    await e.idle();
    expect(recorded.find((r) => r.decision === 'drift')).toMatchObject({ model: 'm', attrs: { metric: 'duration_ms', finding: 'statistical_drift' } });
  });
});
