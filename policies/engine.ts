/**
 * The policy engine: consumes durable WardenEvents, keeps per-scope windows, decides, drives the
 * breakers and carries out their actions, and hands every decision and transition back as events
 * for the ledger.
 *
 * `observe` is synchronous and cheap (counting, judging, moving breaker states in memory); the slow
 * parts (state file, ledger, BullMQ, NATS) run one after another on a promise chain, so the order of
 * the ledger records is the order of the decisions. For every action the order is: state file (the
 * intent, with the queue's prior settings) -> ledger records -> act -> state file (done). A crash at
 * any point leaves a record of what Warden meant to do, and the restart finishes or undoes it.
 */
import type { BreakerPhase, BreakerScope, BreakerStatus } from '../core/breakers.js';
import { breakerKey } from '../core/breakers.js';
import { makeEvent, type EventKind, type WardenEvent } from '../core/event.js';
import type { QueueActions, QueueState } from './act/bullmq.js';
import type { BreakerPublisher } from './act/kv.js';
import { force as forceBreaker, newBreaker, probe, tick, trip, type BreakerState, type Transition } from './detect/breaker.js';
import { isCompletion, Lru, OutputDrift, VersionChecks, type VersionFinding } from './detect/drift.js';
import type { LoadedPolicies } from './loader.js';
import { judgeStorm, type Evidence } from './detect/retry-storm.js';
import type { Policy } from './schema.js';
import { breakerScopeOf, matchesScope, modelScope, parseBreakerKey, policyCovers } from './scope.js';
import { readBreakerStates, writeBreakerStates } from './act/state-file.js';
import { AttemptWindow } from './detect/window.js';
import { WardenError } from '../core/errors.js';

/** Gauges the agent keeps (the engine does not know prom-client). */
export interface PolicyObserver {
  breakerState?(policy: string, scope: string, phase: BreakerPhase): void;
  retryRatio?(policy: string, scope: string, ratio: number, budgetRatio: number): void;
  driftScore?(model: string, metric: string, method: string, score: number): void;
}

export interface EngineLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface EngineOptions {
  dataDir: string;
  policies: LoadedPolicies | null;
  /** Appends Warden's own events to the ledger (the agent's pipeline.record). */
  record(events: WardenEvent[]): Promise<void>;
  /** BullMQ queue actions; null: BullMQ breakers decide and publish but do not touch queues. */
  queues: QueueActions | null;
  /** NATS KV publication of breaker states (Temporal interceptors enforce them); null without nats.url. */
  kv: BreakerPublisher | null;
  observer?: PolicyObserver;
  logger?: EngineLogger;
  /** Every policy in dry-run, whatever the file says. */
  dryRun?: boolean;
  clock?: () => number;
}

export type ForceMode = 'open' | 'closed' | 'auto';

/** An admin request the engine refuses (unknown scope, no policy covers it). */
export class BreakerRequestError extends WardenError {
  override name = 'BreakerRequestError';
  constructor(readonly status: 400 | 404 | 409, message: string) {
    super(status === 404 ? 'WARDEN_NOT_FOUND' : status === 409 ? 'WARDEN_CONFLICT' : 'WARDEN_USAGE', message, { httpStatus: status });
  }
}

const STARTED = new Set(['job.started', 'activity.started']);
const MAX_CLOCK_SKEW_MS = 60_000;
const ATTEMPT_FAILED = new Set(['job.attempt_failed', 'activity.attempt_failed']);
const FAILED = new Set(['job.failed', 'activity.failed']);
const COMPLETED = new Set(['job.completed', 'activity.completed']);
const NOOP_LOGGER: EngineLogger = { info: () => undefined, warn: () => undefined };

const id = (policy: string, key: string) => `${policy}|${key}`;

export class PolicyEngine {
  private policies: LoadedPolicies | null;
  private readonly windows = new Map<string, AttemptWindow>();
  private readonly breakers = new Map<string, BreakerState>();
  private readonly outputs = new Map<string, OutputDrift>();
  private readonly versions = new Map<string, VersionChecks>();
  /** (policy, correlation, finding) already decided: one decision per piece of work and finding. */
  private readonly decided = new Lru<string, true>(100_000);
  private chain: Promise<void> = Promise.resolve();
  private readonly retrying = new Set<BreakerState>();
  private timer: NodeJS.Timeout | null = null;
  private readonly clock: () => number;
  private readonly log: EngineLogger;

  private constructor(private readonly o: EngineOptions) {
    this.policies = o.policies;
    this.clock = o.clock ?? Date.now;
    this.log = o.logger ?? NOOP_LOGGER;
  }

  /** Restores breaker states from the data dir and reconciles the queues with them. */
  static async open(o: EngineOptions): Promise<PolicyEngine> {
    const e = new PolicyEngine(o);
    const saved = await readBreakerStates(o.dataDir);
    for (const b of saved) e.breakers.set(id(b.policy, b.key), b);
    // Reconciling the queues needs Redis, which may be down at start: it runs first on the chain, not in the way of starting.
    e.enqueue(() => e.restore(saved));
    return e;
  }

  get loaded(): LoadedPolicies | null { return this.policies; }

  /** Evaluates timers (open -> half-open) and retries unfinished actions every `intervalMs`. */
  start(intervalMs: number): void {
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.idle();
  }

  /** Resolves when every decision so far is recorded and acted on. */
  idle(): Promise<void> {
    return this.chain;
  }

  list(): BreakerState[] {
    return [...this.breakers.values()].map((b) => structuredClone(b));
  }

  // ---- events in ----

  observe(events: WardenEvent[]): void {
    const pols = this.policies?.policies ?? [];
    if (pols.length === 0) return;
    const dirty = new Map<string, { p: Policy; scope: BreakerScope; key: string }>();
    for (const ev of events) {
      if (ev.source === 'warden') continue;
      for (const p of pols) {
        if (!matchesScope(p.scope, ev)) continue;
        if (p.retryStorm) {
          const scope = breakerScopeOf(p, ev);
          if (scope) {
            const key = breakerKey(scope);
            this.count(p, key, ev);
            this.probeWith(p, key, ev);
            dirty.set(id(p.name, key), { p, scope, key });
          }
        }
        if (p.drift) this.drift(p, ev);
      }
    }
    for (const { p, scope, key } of dirty.values()) this.judge(p, scope, key);
  }

  private count(p: Policy, key: string, ev: WardenEvent): void {
    const k = id(p.name, key);
    let w = this.windows.get(k);
    if (!w) { w = new AttemptWindow(p.retryStorm!.windowMs, p.retryStorm!.synchronized?.bucketMs ?? 50); this.windows.set(k, w); }
    // A clock far ahead (a bad producer, a hook host with a wrong clock) would move the window past
    // every real event and blind the detector: such events count as arriving now.
    if (ev.ts > this.clock() + MAX_CLOCK_SKEW_MS) ev = { ...ev, ts: this.clock() };
    if (STARTED.has(ev.kind)) w.started(ev.ts, ev.attempt ?? 1);
    else if (ATTEMPT_FAILED.has(ev.kind)) {
      const d = ev.attrs.retry_delay_ms;
      w.attemptFailed(ev.ts, ev.error ?? 'unknown', typeof d === 'number' ? d : null);
    } else if (FAILED.has(ev.kind)) w.finished(ev.ts, true, ev.error);
    else if (COMPLETED.has(ev.kind)) w.finished(ev.ts, false, null);
    else if (ev.kind === 'job.stalled') w.stalled(ev.ts);
  }

  /** While half-open, outcomes after the transition are the probes. */
  private probeWith(p: Policy, key: string, ev: WardenEvent): void {
    const b = this.breakers.get(id(p.name, key));
    if (!b || b.phase !== 'half_open' || ev.ts < b.since) return;
    const ok = COMPLETED.has(ev.kind);
    const bad = ATTEMPT_FAILED.has(ev.kind) || FAILED.has(ev.kind) || ev.kind === 'job.stalled';
    if (!ok && !bad) return;
    const t = probe(b, p.breaker, this.clock(), ok, ok ? `${ev.kind} ${ev.job_id ?? ev.activity_type ?? ''}` : `${ev.kind}: ${ev.error ?? 'stalled'}`);
    if (t) {
      if (t.to === 'closed') this.windows.get(id(p.name, key))?.clear();
      this.enqueueTransition(p, b, t, { probe_job: ev.job_id ?? '', probes_ok: ok ? p.breaker.probes : b.probesOk });
    }
  }

  private judge(p: Policy, scope: BreakerScope, key: string): void {
    const w = this.windows.get(id(p.name, key))!;
    const verdict = judgeStorm(w.sum(), p.retryStorm!);
    this.o.observer?.retryRatio?.(p.name, key, verdict.retryRatio, verdict.budgetRatio);
    if (!verdict.trip) return;
    // For one window after a close, the retries the breaker held back drain (attempt > 1, mostly
    // succeeding): that is the recovery, not a new storm.
    const existing = this.breakers.get(id(p.name, key));
    if (existing && existing.phase === 'closed' && existing.opens === 0 && w.latest < existing.since + p.retryStorm!.windowMs && existing.reason !== '') return;
    const b = this.breaker(p, scope, key);
    const t = trip(b, p.breaker, this.clock(), `retry storm on ${key}: ${verdict.signals.join(', ')} (retries ${verdict.evidence.retries}, budget ${verdict.evidence.retry_budget}, first attempts ${verdict.evidence.first_attempts})`);
    if (t) this.enqueueTransition(p, b, t, { ...verdict.evidence, signals: verdict.signals.join(',') });
  }

  private breaker(p: Policy, scope: BreakerScope, key: string): BreakerState {
    const k = id(p.name, key);
    let b = this.breakers.get(k);
    if (!b) { b = newBreaker(p.name, p.version, key, scope, p.breaker, this.clock()); this.breakers.set(k, b); }
    return b;
  }

  // ---- drift ----

  private drift(p: Policy, ev: WardenEvent): void {
    const cfg = p.drift!;
    let vc = this.versions.get(p.name);
    if (!vc) { vc = new VersionChecks(); this.versions.set(p.name, vc); }
    for (const f of vc.check(cfg, ev)) this.finding(p, ev, f);

    const model = ev.model ?? '*';
    if (isCompletion(ev)) {
      for (const m of cfg.metrics) {
        // `duration_ms` is the event's own latency; every other metric is an output read from the result.
        const v = m.name === 'duration_ms' ? ev.duration_ms : ev.attrs[`output.${m.name}`];
        if (typeof v !== 'number') continue;
        const k = `${p.name}|${model}|${m.name}`;
        let od = this.outputs.get(k);
        if (!od) { od = new OutputDrift(m); this.outputs.set(k, od); }
        const r = od.add(v);
        if (!r) continue;
        this.o.observer?.driftScore?.(model, m.name, r.method, r.score);
        if (r.drift !== od.drifting) {
          od.drifting = r.drift;
          this.statisticalDrift(p, ev, model, m.name, r.drift, { method: r.method, score: r.score, threshold: r.threshold, ...(r.statistic !== undefined ? { statistic: r.statistic } : {}), reference_n: od.reference.length, current_n: m.windowSize });
        }
      }
      const b = ev.model ? this.breakers.get(id(p.name, breakerKey(modelScope(ev.model)))) : undefined;
      if (b && b.phase === 'half_open' && ev.ts >= b.since) {
        const t = probe(b, p.breaker, this.clock(), !this.modelDrifting(p, model), `output of ${ev.job_id ?? ev.activity_type ?? 'work'}`);
        if (t) this.enqueueTransition(p, b, t, {});
      }
    }
    // Work on a drifting model route needs an approval (once per correlation ID).
    if (cfg.action !== 'record' && ev.correlation_id && ev.model && this.modelDrifting(p, model) && !isCompletion(ev)) {
      this.finding(p, ev, { finding: 'statistical_drift' as VersionFinding['finding'], reason: `model ${ev.model} outputs are drifting: work on this route needs an approval`, evidence: { model: ev.model } });
    }
  }

  private modelDrifting(p: Policy, model: string): boolean {
    return p.drift!.metrics.some((m) => this.outputs.get(`${p.name}|${model}|${m.name}`)?.drifting);
  }

  /** A version finding about one piece of work: one decision per (policy, correlation, finding). */
  private finding(p: Policy, ev: WardenEvent, f: VersionFinding): void {
    const dedupe = `${p.name}|${ev.correlation_id ?? ev.job_id ?? ev.event_id}|${f.finding}|${ev.model_version ?? ''}`;
    if (this.decided.has(dedupe)) return;
    this.decided.set(dedupe, true);
    const action = p.drift!.action === 'record' ? 'drift' : 'require_approval';
    const decision = this.dry(p) ? `dry_run:${action}` : action;
    const evidence: Evidence = { finding: f.finding, ...f.evidence };
    this.enqueue(async () => this.write([this.decisionEvent(p, 'policy.decision', decision, f.reason, evidence, ev)]));
  }

  private statisticalDrift(p: Policy, ev: WardenEvent, model: string, metric: string, drifting: boolean, evidence: Evidence): void {
    const reason = drifting
      ? `output ${metric} of model ${model} drifted from its baseline (${evidence.method} score ${fmt(evidence.score)}, threshold ${evidence.threshold})`
      : `output ${metric} of model ${model} is back within its baseline (${evidence.method} score ${fmt(evidence.score)})`;
    const base = drifting ? 'drift' : 'drift_cleared';
    const decision = this.dry(p) ? `dry_run:${base}` : base;
    this.enqueue(async () => this.write([this.decisionEvent(p, 'policy.decision', decision, reason, { finding: 'statistical_drift', metric, ...evidence }, { ...ev, correlation_id: null, job_id: null })]));
    if (drifting && p.drift!.action === 'breaker' && model !== '*') {
      const scope = modelScope(model);
      const b = this.breaker(p, scope, breakerKey(scope));
      const t = trip(b, p.breaker, this.clock(), reason);
      if (t) this.enqueueTransition(p, b, t, { metric, ...evidence });
    }
  }

  // ---- time ----

  tick(): void {
    const now = this.clock();
    for (const b of this.breakers.values()) {
      const p = this.governing(b);
      if (!p) {
        // Its policy was removed or no longer covers the scope (and a retirement may have failed): retry it.
        this.retireLater(b, this.policies, `policy ${b.policy} no longer covers ${b.key}: breaker closed${b.applied ? ', queue restored' : ''}`);
        continue;
      }
      const t = tick(b, now);
      if (t) {
        this.windows.get(id(b.policy, b.key))?.clear(); // the storm that opened it is not evidence against the probes
        this.enqueueTransition(p, b, t, {});
      } else if (b.applied?.pending && !this.retrying.has(b)) {
        // One retry in flight per breaker, so a long Redis outage does not pile up work on the chain.
        this.retrying.add(b);
        this.enqueue(() => this.act(p, b).finally(() => this.retrying.delete(b)));
      }
    }
  }

  // ---- admin ----

  /** `via`: the API token that asked (the actor is the person it names), kept beside the actor. */
  async force(key: string, mode: ForceMode, actor: string, policy?: string, via?: string): Promise<BreakerState[]> {
    const scope = parseBreakerKey(key);
    if (!scope) throw new BreakerRequestError(400, `"${key}" is not a breaker scope: use e.g. bullmq.queue.<queue>, temporal.activity.<type>, temporal.task_queue.<queue>, any.model.<model>`);
    const pols = (this.policies?.policies ?? []).filter((p) => (policy ? p.name === policy : true) && (this.breakers.has(id(p.name, key)) || policyCovers(p, scope)));
    if (pols.length === 0) throw new BreakerRequestError(404, `no policy${policy ? ` named ${policy}` : ''} covers ${key}`);
    for (const p of pols) {
      const b = this.breaker(p, scope, key);
      const t = forceBreaker(b, p.breaker, mode, actor, this.clock());
      if (t) {
        if (t.to === 'closed') this.windows.get(id(p.name, key))?.clear();
        this.enqueueTransition(p, b, t, { forced: mode, ...(via ? { via_token: via } : {}) });
      } else {
        this.enqueue(async () => {
          await this.persist();
          await this.write([this.decisionEvent(p, 'policy.decision', `force_${mode}`, mode === 'auto' ? `breaker on ${key} handed back to the policy by ${actor}` : `breaker on ${key} held ${mode} by ${actor}`, { scope: key, phase: b.phase, ...(via ? { via_token: via } : {}) }, null, actor)]);
          this.publishKv(p, b);
        });
      }
    }
    await this.idle();
    return pols.map((p) => structuredClone(this.breakers.get(id(p.name, key))!));
  }

  // ---- reload ----

  /** New policies from a reloaded file; breakers of policies that are gone are closed and their queues restored. */
  setPolicies(next: LoadedPolicies): void {
    const prev = this.policies;
    this.policies = next;
    // Windows of removed policies, or of policies whose storm settings changed (window size, slots), start over.
    const same = (name: string) => {
      const a = prev?.policies.find((p) => p.name === name);
      const b = next.policies.find((p) => p.name === name);
      return !!a && !!b && JSON.stringify(a.retryStorm) === JSON.stringify(b.retryStorm);
    };
    for (const k of [...this.windows.keys()]) if (!same(k.slice(0, k.indexOf('|')))) this.windows.delete(k);
    for (const b of [...this.breakers.values()]) {
      if (this.governing(b)) continue;
      this.retireLater(b, prev, this.policy(b.policy) ? `policy ${b.policy} in ${next.file} no longer covers ${b.key}` : `policy ${b.policy} was removed from ${next.file}`);
    }
    this.enqueue(() => this.write([makeEvent({
      kind: 'policy.decision', source: 'warden', policy: '(policy file)', policy_version: next.digest.slice(0, 16), decision: 'reload',
      reason: `loaded ${next.policies.length} policies from ${next.file}`, attrs: { policy_digest: next.digest, previous_digest: prev?.digest ?? null, policies: next.policies.map((p) => `${p.name}@${p.version}`).join(',') },
    })]));
  }

  /** A changed file that does not validate: the old policies stay, and the ledger says why. */
  reloadRejected(file: string, problems: string[]): void {
    this.log.warn({ file, problems }, 'policy file change rejected: keeping the previous policies');
    this.enqueue(() => this.write([makeEvent({
      kind: 'policy.decision', source: 'warden', policy: '(policy file)', policy_version: this.policies?.digest.slice(0, 16) ?? null, decision: 'reload_rejected',
      reason: `kept the previous policies: ${problems.join('; ')}`.slice(0, 2000), attrs: { policy_file: file, policy_digest: this.policies?.digest ?? null },
    })]));
  }

  // ---- transitions and actions ----

  private policy(name: string): Policy | undefined {
    return this.policies?.policies.find((p) => p.name === name);
  }

  private dry(p: Policy): boolean {
    return p.dryRun || !!this.o.dryRun;
  }

  private readonly retiring = new Set<BreakerState>();

  /** Queues the retirement of a breaker whose policy no longer covers it (once at a time per breaker). */
  private retireLater(b: BreakerState, prev: LoadedPolicies | null, reason: string): void {
    if (this.retiring.has(b)) return;
    this.retiring.add(b);
    this.enqueue(() => this.retire(b, prev, reason).finally(() => this.retiring.delete(b)));
  }

  /** The policy that still governs this breaker: present, and still covering its scope. */
  private governing(b: BreakerState): Policy | undefined {
    const p = this.policy(b.policy);
    return p && policyCovers(p, b.scope) ? p : undefined;
  }

  private enqueue(fn: () => Promise<void>): void {
    this.chain = this.chain.then(fn).catch((err) => this.log.warn({ err: (err as Error).message }, 'policy action failed (will retry on the next tick)'));
  }

  private enqueueTransition(p: Policy, b: BreakerState, t: Transition, evidence: Evidence): void {
    b.policy_version = p.version;
    this.o.observer?.breakerState?.(b.policy, b.key, b.phase);
    const snapshot = { ...b };
    this.enqueue(() => this.transition(p, b, t, evidence, snapshot));
  }

  /** What the transition does to the queue, as a decision name. */
  private actionName(p: Policy, b: BreakerState, to: BreakerPhase): string {
    const onQueue = b.scope.system === 'bullmq' && p.breaker.action !== 'none';
    const name = to === 'open' ? (onQueue ? p.breaker.action : b.scope.system === 'temporal' ? 'fail_fast' : b.scope.kind === 'model' ? 'gate_route' : 'open')
      : to === 'half_open' ? 'probe' : onQueue ? 'restore' : 'close';
    return this.dry(p) ? `dry_run:${name}` : name;
  }

  private async transition(p: Policy, b: BreakerState, t: Transition, evidence: Evidence, at: BreakerState): Promise<void> {
    const kind: EventKind = t.to === 'open' ? 'breaker.opened' : t.to === 'half_open' ? 'breaker.half_opened' : 'breaker.closed';
    const queueOwned = b.scope.system === 'bullmq' && p.breaker.action !== 'none' && !this.dry(p) && this.o.queues !== null;
    // Intent first: the queue's prior settings are on disk before anything is changed.
    if (queueOwned && t.to !== 'closed') {
      if (!b.applied) {
        // Redis unreachable: still decide and record; the action is retried on the next tick.
        const prior = await this.o.queues!.state(b.scope.name).catch((err: Error) => {
          evidence = { ...evidence, queue_state_error: err.message.slice(0, 200) };
          return null;
        });
        b.applied = { kind: p.breaker.action as 'pause', wasPaused: prior?.paused ?? false, prevConcurrency: prior?.concurrency ?? null, prevRateLimit: prior?.rateLimit ?? null, stage: 'open', pending: true, ...(prior ? {} : { priorUnknown: true }) };
        if (prior) evidence = { ...evidence, queue_was_paused: prior.paused };
      }
      b.applied.stage = t.to === 'open' ? 'open' : 'half_open';
      b.applied.pending = true;
    }
    await this.persist();
    const detail: Evidence = { scope: b.key, from: t.from, to: t.to, reset_timeout_ms: at.resetTimeoutMs, opens: at.opens, ...prefixed(evidence) };
    const decision = this.actionName(p, b, t.to);
    // Stamped with the transition's time (not the time the record was written after reading the queue).
    await this.write([
      this.decisionEvent(p, kind, decision, t.reason, detail, null, t.actor, at.since),
      this.decisionEvent(p, 'policy.decision', t.actor ? `force_${t.to === 'half_open' ? 'half_open' : t.to}` : decision, t.reason, detail, null, t.actor, at.since),
    ]);
    this.publishKv(p, b);
    if (b.applied && (queueOwned || t.to === 'closed')) {
      b.applied.pending = true;
      try {
        await this.act(p, b);
      } catch (err) {
        this.log.warn({ scope: b.key, phase: b.phase, err: (err as Error).message }, 'breaker action failed (retrying on the next tick)');
        await this.persist();
      }
    }
  }

  /** Sets the queue up for the breaker's current stage (idempotent; re-run after a crash or a failure). */
  private async act(p: Policy, b: BreakerState): Promise<void> {
    const a = b.applied;
    if (!a || !this.o.queues || b.scope.system !== 'bullmq') return;
    if (a.priorUnknown) {
      // Nothing was changed yet (the read failed before the first action): the queue's own settings
      // now are the ones to restore on close, so an operator's pause or limit is never undone.
      const prior = await this.o.queues.state(b.scope.name);
      Object.assign(a, { wasPaused: prior.paused, prevConcurrency: prior.concurrency ?? null, prevRateLimit: prior.rateLimit ?? null, priorUnknown: false });
      await this.persist();
    }
    if (b.phase === 'closed') {
      await this.o.queues.restore(b.scope.name, a);
      b.applied = null;
    } else if (b.phase === 'open') {
      await this.o.queues.open(b.scope.name, p.breaker, { paused: a.wasPaused, concurrency: a.prevConcurrency, rateLimit: a.prevRateLimit });
      a.pending = false;
    } else {
      await this.o.queues.halfOpen(b.scope.name, p.breaker, a);
      a.pending = false;
    }
    await this.persist();
  }

  private publishKv(p: Policy, b: BreakerState): void {
    if (!this.o.kv || this.dry(p)) return;
    this.o.kv.publish(this.status(p, b));
  }

  status(p: Policy | undefined, b: BreakerState): BreakerStatus {
    return {
      key: b.key,
      phase: b.phase,
      policy: b.policy,
      policy_version: b.policy_version,
      retry_after_ms: b.phase === 'open' ? Math.max(0, b.since + b.resetTimeoutMs - this.clock()) : 0,
      non_retryable: b.phase === 'open' && !!p?.breaker.nonRetryable,
      probe_ratio: b.phase === 'half_open' ? p?.breaker.probeRatio ?? 0.1 : b.phase === 'open' ? 0 : 1,
      reason: b.reason,
      since: b.since,
      forced_by: b.forced_by,
    };
  }

  private async persist(): Promise<void> {
    // The gauges follow the states as persisted, in chain order, so they end where the breakers are.
    for (const b of this.breakers.values()) this.o.observer?.breakerState?.(b.policy, b.key, b.phase);
    await writeBreakerStates(this.o.dataDir, [...this.breakers.values()].filter((b) => b.phase !== 'closed' || b.applied || b.forced));
  }

  private async write(events: WardenEvent[]): Promise<void> {
    await this.o.record(events);
  }

  private decisionEvent(p: Policy, kind: EventKind, decision: string, reason: string, evidence: Evidence, work: WardenEvent | null, actor: string | null = null, ts?: number): WardenEvent {
    const scopeKey = typeof evidence.scope === 'string' ? evidence.scope : null;
    const scope = scopeKey ? parseBreakerKey(scopeKey) : null;
    return makeEvent({
      ts,
      kind,
      source: 'warden',
      policy: p.name,
      policy_version: p.version,
      decision,
      reason: reason.slice(0, 2000),
      actor: actor ?? 'warden',
      correlation_id: work?.correlation_id ?? null,
      trace_id: work?.trace_id ?? null,
      job_id: work?.job_id ?? null,
      job_name: work?.job_name ?? null,
      workflow_id: work?.workflow_id ?? null,
      run_id: work?.run_id ?? null,
      queue: work?.queue ?? (scope && (scope.kind === 'queue' || scope.kind === 'task_queue') ? scope.name : null),
      activity_type: work?.activity_type ?? (scope?.kind === 'activity' ? scope.name : null),
      model: work?.model ?? (scope?.kind === 'model' ? scope.name : null),
      model_version: work?.model_version ?? null,
      attrs: { ...evidence, policy_digest: this.policies?.digest ?? null, dry_run: this.dry(p) },
    });
  }

  /** Closes a breaker whose policy is gone, restoring its queue. */
  private async retire(b: BreakerState, prev: LoadedPolicies | null, reason: string): Promise<void> {
    const wasApplied = b.applied;
    // Restore first: if Redis is down this throws, the breaker stays (and stays in the state file),
    // and the next tick tries again. Forgetting it first would leave the queue paused with no record.
    if (wasApplied && this.o.queues && !wasApplied.priorUnknown) await this.o.queues.restore(b.scope.name, wasApplied);
    this.breakers.delete(id(b.policy, b.key));
    b.phase = 'closed';
    this.o.observer?.breakerState?.(b.policy, b.key, 'closed');
    await this.persist();
    await this.write([makeEvent({
      kind: 'breaker.closed', source: 'warden', policy: b.policy, policy_version: b.policy_version, decision: wasApplied ? 'restore' : 'close', actor: 'warden',
      reason, queue: b.scope.kind === 'queue' || b.scope.kind === 'task_queue' ? b.scope.name : null,
      attrs: { scope: b.key, restored_queue: !!wasApplied, policy_digest: prev?.digest ?? null },
    })]);
    this.o.kv?.publish({ ...this.status(undefined, b), phase: 'closed', reason });
  }

  /** At start: breakers come back as they were; queues are made to agree with them, and the ledger says what was found. */
  private async restore(saved: BreakerState[]): Promise<void> {
    for (const b of saved) {
      try {
        await this.restoreOne(b);
      } catch (err) {
        // One breaker's queue unreachable must not leave the others unreconciled; tick retries this one.
        if (b.applied) b.applied.pending = true;
        this.log.warn({ scope: b.key, err: (err as Error).message }, 'could not reconcile a restored breaker (retrying on the next tick)');
      }
    }
    if (saved.length > 0) this.log.info({ breakers: saved.map((b) => `${b.policy}:${b.key}=${b.phase}`) }, 'breaker states restored');
  }

  private async restoreOne(b: BreakerState): Promise<void> {
    {
      const p = this.governing(b);
      if (!p) {
        const why = this.policy(b.policy) ? `policy ${b.policy} no longer covers ${b.key}` : `policy ${b.policy} is no longer in the policy file`;
        await this.retire(b, this.policies, `${why} (changed while Warden was down): breaker closed${b.applied ? ', queue restored' : ''}`);
        return;
      }
      this.o.observer?.breakerState?.(b.policy, b.key, b.phase);
      let found: QueueState | null = null;
      if (b.scope.system === 'bullmq' && this.o.queues && b.applied) found = await this.o.queues.state(b.scope.name).catch(() => null);
      if (b.phase === 'half_open') b.since = this.clock(); // probes start over
      const reason = b.phase === 'closed'
        ? `restart: breaker on ${b.key} is closed${b.forced ? ` (held closed by ${b.forced_by})` : ''}${b.applied ? '; finishing the queue restore that was under way at the crash' : ''}`
        : `restart: breaker on ${b.key} is still ${b.phase}${found ? ` (queue paused: ${found.paused}, global concurrency: ${found.concurrency ?? 'none'})` : ''}; queue set up for it again`;
      if (b.applied) b.applied.pending = true;
      await this.write([this.decisionEvent(p, 'policy.decision', 'restore', reason, {
        scope: b.key, phase: b.phase, ...(found ? { queue_paused: found.paused, queue_concurrency: found.concurrency ?? -1 } : {}),
      }, null)]);
      this.publishKv(p, b);
      if (b.applied) await this.act(p, b).catch((err) => this.log.warn({ scope: b.key, err: (err as Error).message }, 'could not set the queue up after restart (retrying on the next tick)'));
    }
  }
}

/** Evidence attrs, named `evidence.<key>` so they never collide with the event's own attrs. */
function prefixed(e: Evidence): Evidence {
  const out: Evidence = {};
  for (const [k, v] of Object.entries(e)) out[k === 'scope' || k === 'from' || k === 'to' ? k : `evidence.${k}`] = v;
  return out;
}

const fmt = (v: number | string | boolean | undefined) => (typeof v === 'number' ? v.toPrecision(3) : String(v));
