/**
 * Deciding, without acting (the processor half; policies/act/actuator.ts is the exporter half).
 * Events and the time go in; decisions and breaker transitions come out as plain values. It keeps
 * the windows per scope, the storm and drift judgments, the breaker state machines, forced states
 * and half-open probes, and nothing else: no I/O, no timers, no promises, no clock of its own.
 *
 * Decisions are judged in event time, independent of batching: each event is counted and its scope
 * judged right after it, and a transition it causes is stamped with that event's time. An open
 * breaker half-opens at the time it was due (its reset timeout after it opened), whether an event
 * past that time or the clock (`tick`) noticed first. So the same policy file and the same events in
 * the same order give the same decisions at the same times, live (pipeline batches, timer ticks) or
 * offline over the ledger (`warden policy backtest`: one event at a time). `nowMs` is used only for
 * admin forces, restores, and to clamp event times more than a minute ahead of the clock (a producer
 * with a wrong clock); a backtest has no such clock and takes event times as recorded.
 */
import { breakerKey, type BreakerScope } from '../../core/breakers.js';
import { WardenError } from '../../core/errors.js';
import type { WardenEvent } from '../../core/event.js';
import { ATTEMPT_FAILED_KINDS, ATTEMPT_START_KINDS, ATTEMPT_SUCCESS_KINDS, ATTEMPT_TERMINAL_FAILURE_KINDS, RECEIVED_VIA } from '../../core/kinds.js';
import type { LoadedPolicies } from '../loader.js';
import type { Policy } from '../schema.js';
import { breakerScopeOf, matchesScope, modelScope, parseBreakerKey, policyCovers } from '../scope.js';
import { dueAt, force as forceBreaker, newBreaker, probe, tick as tickBreaker, trip, type BreakerState, type Transition } from './breaker.js';
import { isCompletion, Lru, OutputDrift, VersionChecks, type VersionFinding } from './drift.js';
import { probeBandUpper } from './probes.js';
import { judgeStorm, readSignals, retryBudget, stormTrips, type Evidence, type SignalReading } from './retry-storm.js';
import { AttemptWindow, type Baseline } from './window.js';

export type ForceMode = 'open' | 'closed' | 'auto';

/** An admin request the policies refuse (unknown scope, no policy covers it). */
export class BreakerRequestError extends WardenError {
  override name = 'BreakerRequestError';
  constructor(readonly status: 400 | 404 | 409, message: string) {
    super(status === 404 ? 'WARDEN_NOT_FOUND' : status === 409 ? 'WARDEN_CONFLICT' : 'WARDEN_USAGE', message, { httpStatus: status });
  }
}

/** Measurements taken while deciding (synchronous, no effect on the decisions). */
export interface DecisionGauges {
  retryRatio?(policy: string, scope: string, ratio: number, budgetRatio: number): void;
  driftScore?(model: string, metric: string, method: string, score: number): void;
}

export interface DeciderOptions {
  policies: LoadedPolicies | null;
  /**
   * Scopes the sidecar reads itself (BullMQ queues its collector reads from Redis): only its own
   * observations move their breakers. A claim (an ingested event, `attrs.received_via` set) about such
   * a scope is in the ledger but never counted, probed or judged here. Unset: nothing is collected.
   */
  collected?: (scope: BreakerScope) => boolean;
  /** Every policy in dry-run, whatever the file says. */
  dryRun?: boolean;
  gauges?: DecisionGauges;
}

/** Which policy decided, under which file digest, and whether it only records (dry-run). */
interface Decided {
  policy: Policy;
  digest: string | null;
  dryRun: boolean;
}

/** A breaker moved: record it (`decision` names what it does to the scope), then act on it. `state` is the breaker right after. */
export interface TransitionOutput extends Decided { type: 'transition'; decision: string; transition: Transition; state: BreakerState; evidence: Evidence }
/** An admin forced a breaker into the state it already had, or handed it back (`auto`): record it, republish it. */
export interface HeldOutput extends Decided { type: 'held'; decision: string; reason: string; actor: string; state: BreakerState; evidence: Evidence }
/** A decision about one piece of work or one model's outputs (drift, require_approval): record it. */
export interface FindingOutput extends Decided { type: 'finding'; decision: string; reason: string; evidence: Evidence; work: WardenEvent }
/** A breaker read back at start that its policy still governs: make the world agree with it. */
export interface RestoredOutput extends Decided { type: 'restored'; state: BreakerState }
/** A breaker no policy governs any more: undo what was done for it, close it, record why. */
export interface RetireOutput {
  type: 'retire';
  state: BreakerState;
  reason: string;
  /** The digest of the policies that had governed it. */
  digest: string | null;
  /** The reason ends in "breaker closed" and gets ", queue restored" when a queue action is undone. */
  notesRestore: boolean;
}
export interface ReloadOutput { type: 'reload'; file: string; digest: string; previousDigest: string | null; policies: string[] }
export interface ReloadRejectedOutput { type: 'reload_rejected'; file: string; problems: string[]; digest: string | null }

/** `warden policy explain <scope>`: one policy's view of a scope right now. */
export interface ScopeExplanation {
  policy: string;
  policy_version: string;
  scope: string;
  phase: BreakerState['phase'];
  since: number | null;
  forced: BreakerState['forced'];
  reason: string;
  /** Open: when it half-opens. Half-open: the probe window so far. */
  half_open_at?: number;
  probes?: { ok: number; failed: number; needed: number };
  window?: { window_ms: number; newest_event: number | null; first_attempts: number; retries: number; completed: number; failed_attempts: number; terminal_failures: number; stalls: number; top_reason: string | null };
  budget?: { retries: number; allowed: number; ratio: number; budget_ratio: number };
  /** The failure rate before the current window (tracked while closed), and the probe band built on it. */
  baseline?: { failure_rate: number; outcomes: number; probe_band_upper: number | null } | null;
  signals?: SignalReading[];
  /** The tripping signal closest to its threshold (largest value / threshold with enough sample). */
  closest?: string | null;
}

export type Output = TransitionOutput | HeldOutput | FindingOutput | RestoredOutput | RetireOutput | ReloadOutput | ReloadRejectedOutput;

const MAX_CLOCK_SKEW_MS = 60_000;

/** The id of a breaker (and its window): one per (policy, scope key). */
export const breakerId = (policy: string, key: string) => `${policy}|${key}`;

/** An event received through ingest (HTTP or NATS): a worker's claim, not the sidecar's observation. */
export const isClaim = (ev: WardenEvent): boolean => typeof ev.attrs[RECEIVED_VIA] === 'string';

export class Decider {
  private policies: LoadedPolicies | null;
  private readonly windows = new Map<string, AttemptWindow>();
  private readonly breakers = new Map<string, BreakerState>();
  private readonly outputs = new Map<string, OutputDrift>();
  private readonly versions = new Map<string, VersionChecks>();
  /** (policy, correlation, finding) already decided: one decision per piece of work and finding. */
  private readonly decided = new Lru<string, true>(100_000);
  private out: Output[] = [];
  private now = 0;

  constructor(private readonly o: DeciderOptions) {
    this.policies = o.policies;
  }

  get loaded(): LoadedPolicies | null { return this.policies; }

  /** Every breaker's decision state (copies; `applied` is the actuator's and always null here). */
  snapshot(): BreakerState[] {
    return [...this.breakers.values()].map((b) => structuredClone(b));
  }

  /** One breaker's decision state (a copy), if there is one. */
  breakerOf(policy: string, key: string): BreakerState | undefined {
    const b = this.breakers.get(breakerId(policy, key));
    return b && structuredClone(b);
  }

  /**
   * Takes back breaker states (saved by the actuator, or a snapshot). Breakers their policy still
   * governs come back (half-open ones restart their probes at `nowMs`); the others are retired.
   */
  restore(states: readonly BreakerState[], nowMs: number): Output[] {
    return this.run(nowMs, () => {
      for (const saved of states) {
        const b: BreakerState = { ...structuredClone(saved), applied: null };
        const p = this.governing(b);
        if (!p) {
          const why = this.policy(b.policy) ? `policy ${b.policy} no longer covers ${b.key}` : `policy ${b.policy} is no longer in the policy file`;
          this.out.push({ type: 'retire', state: b, reason: `${why} (changed while Warden was down): breaker closed`, digest: this.policies?.digest ?? null, notesRestore: true });
          continue;
        }
        if (b.phase === 'half_open') b.since = nowMs; // probes start over
        this.breakers.set(breakerId(b.policy, b.key), b);
        this.out.push({ type: 'restored', ...this.by(p), state: structuredClone(b) });
      }
    });
  }

  // ---- events in ----

  /**
   * Events received at `nowMs` (the clock: only clamps events far ahead of it). Each event is judged
   * on its own, in order, at its own time; the batch boundaries do not matter.
   */
  observe(events: readonly WardenEvent[], nowMs: number): Output[] {
    return this.run(nowMs, () => {
      const pols = this.policies?.policies ?? [];
      if (pols.length === 0) return;
      const touched = new Map<string, { p: Policy; key: string }>();
      for (const raw of events) {
        if (raw.source === 'warden') continue;
        // A clock far ahead (a bad producer, a hook host with a wrong clock) would move the window past
        // every real event and blind the detector: such events count as arriving now.
        const ev = raw.ts > nowMs + MAX_CLOCK_SKEW_MS ? { ...raw, ts: nowMs } : raw;
        this.halfOpenDue(ev.ts);
        for (const p of pols) {
          if (!matchesScope(p.scope, ev)) continue;
          if (p.retryStorm) {
            const scope = breakerScopeOf(p, ev);
            if (scope && !(isClaim(ev) && this.o.collected?.(scope))) {
              const key = breakerKey(scope);
              if (this.count(p, key, ev)) {
                this.probeWith(p, key, ev);
                this.judge(p, scope, key, ev.ts);
                touched.set(breakerId(p.name, key), { p, key });
              }
            }
          }
          if (p.drift) this.drift(p, ev);
        }
      }
      // Gauges once per batch (they decide nothing).
      for (const { p, key } of touched.values()) {
        const w = this.windows.get(breakerId(p.name, key));
        if (!w) continue;
        const c = w.current();
        const denom = Math.max(1, c.first);
        this.o.gauges?.retryRatio?.(p.name, key, c.retries / denom, retryBudget(p.retryStorm!, c.first) / denom);
      }
    });
  }

  /** Time passed: open breakers whose reset timeout elapsed by `nowMs` half-open (stamped when they were due). */
  tick(nowMs: number): Output[] {
    return this.run(nowMs, () => this.halfOpenDue(nowMs));
  }

  /** What a scope's breakers are looking at now: window counts, budget, baseline, each signal against its threshold. */
  explain(key: string): ScopeExplanation[] {
    const scope = parseBreakerKey(key);
    if (!scope) throw new BreakerRequestError(400, `"${key}" is not a breaker scope: use e.g. bullmq.queue.<queue>, temporal.activity.<type>, temporal.task_queue.<queue>, any.model.<model>`);
    const pols = (this.policies?.policies ?? []).filter((p) => this.breakers.has(breakerId(p.name, key)) || this.windows.has(breakerId(p.name, key)) || policyCovers(p, scope));
    if (pols.length === 0) throw new BreakerRequestError(404, `no policy covers ${key}`);
    return pols.map((p) => {
      const id = breakerId(p.name, key);
      const b = this.breakers.get(id);
      const w = this.windows.get(id);
      const out: ScopeExplanation = { policy: p.name, policy_version: p.version, scope: key, phase: b?.phase ?? 'closed', since: b?.since ?? null, forced: b?.forced ?? null, reason: b?.reason ?? '' };
      if (b?.phase === 'open') out.half_open_at = dueAt(b);
      if (b?.phase === 'half_open') out.probes = { ok: b.probesOk, failed: b.probesFailed ?? 0, needed: p.breaker.probes };
      if (p.retryStorm) {
        const cfg = p.retryStorm;
        const c = w ? w.current() : undefined;
        const baseline = w?.baseline() ?? null;
        const upper = probeBandUpper(p.breaker, baseline);
        const readings = c ? readSignals(c, cfg) : [];
        const closest = [...readings].filter((r) => r.trips && r.closeness > 0).sort((x, y) => y.closeness - x.closeness)[0];
        out.window = c ? {
          window_ms: cfg.windowMs, newest_event: w!.latest, first_attempts: c.first, retries: c.retries, completed: c.completed,
          failed_attempts: c.failures, terminal_failures: c.terminalFailures, stalls: c.stalls, top_reason: c.top?.reason ?? null,
        } : { window_ms: cfg.windowMs, newest_event: null, first_attempts: 0, retries: 0, completed: 0, failed_attempts: 0, terminal_failures: 0, stalls: 0, top_reason: null };
        out.budget = { retries: c?.retries ?? 0, allowed: Math.round(retryBudget(cfg, c?.first ?? 0) * 100) / 100, ratio: c ? c.retries / Math.max(1, c.first) : 0, budget_ratio: retryBudget(cfg, c?.first ?? 0) / Math.max(1, c?.first ?? 0) };
        out.baseline = baseline ? { failure_rate: baseline.rate, outcomes: baseline.n, probe_band_upper: upper } : null;
        out.signals = readings;
        out.closest = closest ? closest.signal : null;
      }
      return out;
    });
  }

  // ---- admin ----

  /**
   * An admin forces `key` open or closed, or hands it back (`auto`), for every policy covering it
   * (or only `opts.policy`). Throws BreakerRequestError for a key that is not a scope or that no policy covers.
   * `opts.via`: the API token that asked, kept beside the actor.
   */
  force(key: string, mode: ForceMode, actor: string, nowMs: number, opts: { policy?: string; via?: string; note?: string } = {}): Output[] {
    const scope = parseBreakerKey(key);
    if (!scope) throw new BreakerRequestError(400, `"${key}" is not a breaker scope: use e.g. bullmq.queue.<queue>, celery.queue.<queue>, temporal.activity.<type>, temporal.task_queue.<queue>, any.model.<model>`);
    const { policy, via, note } = opts;
    const pols = (this.policies?.policies ?? []).filter((p) => (policy ? p.name === policy : true) && (this.breakers.has(breakerId(p.name, key)) || policyCovers(p, scope)));
    if (pols.length === 0) throw new BreakerRequestError(404, `no policy${policy ? ` named ${policy}` : ''} covers ${key}`);
    return this.run(nowMs, () => {
      for (const p of pols) {
        const b = this.breaker(p, scope, key);
        const t = forceBreaker(b, p.breaker, mode, actor, nowMs);
        // The token that asked, and the operator's reason (free text: redacted with the rest on the way to the ledger).
        const token: Evidence = { ...(via ? { via_token: via } : {}), ...(note ? { note } : {}) };
        if (t) {
          if (t.to === 'closed') this.windows.get(breakerId(p.name, key))?.clear();
          this.transition(p, b, t, { forced: mode, ...token });
        } else {
          this.out.push({
            type: 'held', ...this.by(p), decision: `force_${mode}`, actor, state: structuredClone(b),
            reason: mode === 'auto' ? `breaker on ${key} handed back to the policy by ${actor}` : `breaker on ${key} held ${mode} by ${actor}`,
            evidence: { scope: key, phase: b.phase, ...token },
          });
        }
      }
    });
  }

  // ---- reload ----

  /** New policies: windows whose storm settings changed start over; breakers no policy governs any more are retired. */
  setPolicies(next: LoadedPolicies): Output[] {
    return this.run(this.now, () => {
      const prev = this.policies;
      this.policies = next;
      const same = (name: string) => {
        const a = prev?.policies.find((p) => p.name === name);
        const b = next.policies.find((p) => p.name === name);
        return !!a && !!b && JSON.stringify(a.retryStorm) === JSON.stringify(b.retryStorm);
      };
      for (const k of [...this.windows.keys()]) if (!same(k.slice(0, k.indexOf('|')))) this.windows.delete(k);
      for (const [k, b] of [...this.breakers]) {
        if (this.governing(b)) continue;
        this.breakers.delete(k);
        const reason = this.policy(b.policy) ? `policy ${b.policy} in ${next.file} no longer covers ${b.key}` : `policy ${b.policy} was removed from ${next.file}`;
        this.out.push({ type: 'retire', state: structuredClone(b), reason, digest: prev?.digest ?? null, notesRestore: false });
      }
      this.out.push({ type: 'reload', file: next.file, digest: next.digest, previousDigest: prev?.digest ?? null, policies: next.policies.map((p) => `${p.name}@${p.version}`) });
    });
  }

  /** A changed file that does not validate: the policies stay as they are; only the record. */
  rejectReload(file: string, problems: string[]): Output[] {
    return [{ type: 'reload_rejected', file, problems, digest: this.policies?.digest ?? null }];
  }

  // ---- inside ----

  private run(nowMs: number, fn: () => void): Output[] {
    this.now = nowMs;
    this.out = [];
    fn();
    const out = this.out;
    this.out = [];
    return out;
  }

  /** Counts the event in its scope's window; false when it is not an attempt event (nothing to judge). */
  private count(p: Policy, key: string, ev: WardenEvent): boolean {
    const k = breakerId(p.name, key);
    let w = this.windows.get(k);
    if (!w) { w = new AttemptWindow(p.retryStorm!.windowMs, p.retryStorm!.synchronized?.bucketMs ?? 50); this.windows.set(k, w); }
    // Buckets leaving the window become the baseline only while the breaker is closed (never the storm).
    const b = this.breakers.get(k);
    w.folding = !b || b.phase === 'closed';
    if (ATTEMPT_START_KINDS.has(ev.kind)) w.started(ev.ts, ev.attempt ?? 1);
    else if (ATTEMPT_FAILED_KINDS.has(ev.kind)) {
      const d = ev.attrs.retry_delay_ms;
      w.attemptFailed(ev.ts, ev.error ?? 'unknown', typeof d === 'number' ? d : null);
    } else if (ATTEMPT_TERMINAL_FAILURE_KINDS.has(ev.kind)) w.finished(ev.ts, true, ev.error);
    else if (ATTEMPT_SUCCESS_KINDS.has(ev.kind)) w.finished(ev.ts, false, null);
    else if (ev.kind === 'job.stalled') w.stalled(ev.ts);
    else return false;
    return true;
  }

  /** Open breakers due by `t` half-open, stamped at the time they were due. */
  private halfOpenDue(t: number): void {
    for (const b of this.breakers.values()) {
      if (b.phase !== 'open' || b.forced || dueAt(b) > t) continue;
      const p = this.governing(b);
      if (!p) continue; // retired by setPolicies already; never here
      const at = dueAt(b);
      const tr = tickBreaker(b, t, at);
      if (!tr) continue;
      // The storm that opened it is not evidence against the probes.
      this.windows.get(breakerId(b.policy, b.key))?.clear();
      // A drift breaker judges its probes on values observed from now on only.
      if (b.scope.kind === 'model') for (const m of p.drift?.metrics ?? []) this.outputs.get(`${p.name}|${b.scope.name}|${m.name}`)?.restartCurrent();
      this.transition(p, b, tr, {});
    }
  }

  /** While half-open, outcomes after the transition are the probes, judged as a window against the scope's baseline. */
  private probeWith(p: Policy, key: string, ev: WardenEvent): void {
    const id = breakerId(p.name, key);
    const b = this.breakers.get(id);
    if (!b || b.phase !== 'half_open' || ev.ts < b.since) return;
    const ok = ATTEMPT_SUCCESS_KINDS.has(ev.kind);
    const bad = ATTEMPT_FAILED_KINDS.has(ev.kind) || ATTEMPT_TERMINAL_FAILURE_KINDS.has(ev.kind) || ev.kind === 'job.stalled';
    if (!ok && !bad) return;
    const baseline: Baseline | null = this.windows.get(id)?.baseline() ?? null;
    const upper = probeBandUpper(p.breaker, baseline);
    const okAfter = b.probesOk + (ok ? 1 : 0);
    const badAfter = (b.probesFailed ?? 0) + (ok ? 0 : 1);
    const t = probe(b, p.breaker, ev.ts, ok, ok ? `${ev.kind} ${ev.job_id ?? ev.activity_type ?? ''}` : `${ev.kind}: ${ev.error ?? 'stalled'}`, upper);
    if (t) {
      const ev2: Evidence = { probe_job: ev.job_id ?? '', probes_ok: okAfter, probes_failed: badAfter };
      if (baseline) Object.assign(ev2, { baseline_failure_rate: round4(baseline.rate), baseline_outcomes: baseline.n });
      if (upper !== null) ev2.probe_band_upper = round4(upper);
      if (t.to === 'closed') this.windows.get(id)?.clear();
      this.transition(p, b, t, ev2);
    }
  }

  /** After each counted event: a tripping signal over its threshold opens the breaker, stamped with the event's time. */
  private judge(p: Policy, scope: BreakerScope, key: string, ts: number): void {
    const id = breakerId(p.name, key);
    const existing = this.breakers.get(id);
    if (existing && existing.phase !== 'closed') return;
    if (existing?.forced) return;
    const w = this.windows.get(id)!;
    const c = w.current();
    if (!stormTrips(c, p.retryStorm!)) return;
    // For one window after a close, the retries the breaker held back drain (attempt > 1, mostly
    // succeeding): that is the recovery, not a new storm.
    if (existing && existing.opens === 0 && w.latest < existing.since + p.retryStorm!.windowMs && existing.reason !== '') return;
    const verdict = judgeStorm(c, p.retryStorm!);
    const b = this.breaker(p, scope, key, ts);
    const qual = verdict.qualifiers.length > 0 ? `; qualified by ${verdict.qualifiers.join(', ')}` : '';
    const t = trip(b, p.breaker, Math.max(ts, b.since), `retry storm on ${key}: ${verdict.trips.join(', ')} (retries ${verdict.evidence.retries}, budget ${verdict.evidence.retry_budget}, first attempts ${verdict.evidence.first_attempts})${qual}`);
    if (t) {
      const baseline = w.baseline();
      this.transition(p, b, t, {
        ...verdict.evidence, signals: verdict.trips.join(','), ...(verdict.qualifiers.length > 0 ? { qualifiers: verdict.qualifiers.join(',') } : {}),
        ...(baseline ? { baseline_failure_rate: round4(baseline.rate), baseline_outcomes: baseline.n } : {}),
      });
    }
  }

  private breaker(p: Policy, scope: BreakerScope, key: string, at = this.now): BreakerState {
    const k = breakerId(p.name, key);
    let b = this.breakers.get(k);
    if (!b) { b = newBreaker(p.name, p.version, key, scope, p.breaker, at); this.breakers.set(k, b); }
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
        this.o.gauges?.driftScore?.(model, m.name, r.method, r.score);
        if (r.drift !== od.drifting) {
          od.drifting = r.drift;
          this.statisticalDrift(p, ev, model, m.name, r.drift, { method: r.method, score: r.score, threshold: r.threshold, ...(r.statistic !== undefined ? { statistic: r.statistic } : {}), reference_n: od.reference.length, current_n: m.windowSize });
        }
      }
      const b = ev.model ? this.breakers.get(breakerId(p.name, breakerKey(modelScope(ev.model)))) : undefined;
      if (b && b.phase === 'half_open' && ev.ts >= b.since) {
        // Judged on values observed since the half-open only: no verdict until a fresh window is full.
        const fresh = cfg.metrics.map((m) => this.outputs.get(`${p.name}|${model}|${m.name}`)).filter((od) => od && od.reference.length >= od.cfg.baselineSize);
        if (fresh.length > 0 && fresh.every((od) => od!.last !== null)) {
          const drifting = fresh.some((od) => od!.last!.drift);
          const t = probe(b, p.breaker, ev.ts, !drifting, `output of ${ev.job_id ?? ev.activity_type ?? 'work'}${drifting ? ' on a still drifting fresh window' : ''}`);
          if (t) this.transition(p, b, t, { fresh_values: Math.min(...fresh.map((od) => od!.cfg.windowSize)) });
        }
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
    const d = this.by(p);
    this.out.push({ type: 'finding', ...d, decision: d.dryRun ? `dry_run:${action}` : action, reason: f.reason, evidence: { finding: f.finding, ...f.evidence }, work: ev });
  }

  private statisticalDrift(p: Policy, ev: WardenEvent, model: string, metric: string, drifting: boolean, evidence: Evidence): void {
    const reason = drifting
      ? `output ${metric} of model ${model} drifted from its baseline (${evidence.method} score ${fmt(evidence.score)}, threshold ${evidence.threshold})`
      : `output ${metric} of model ${model} is back within its baseline (${evidence.method} score ${fmt(evidence.score)})`;
    const base = drifting ? 'drift' : 'drift_cleared';
    const d = this.by(p);
    this.out.push({ type: 'finding', ...d, decision: d.dryRun ? `dry_run:${base}` : base, reason, evidence: { finding: 'statistical_drift', metric, ...evidence }, work: { ...ev, correlation_id: null, job_id: null } });
    if (drifting && p.drift!.action === 'breaker' && model !== '*') {
      const scope = modelScope(model);
      const b = this.breaker(p, scope, breakerKey(scope), ev.ts);
      const t = trip(b, p.breaker, Math.max(ev.ts, b.since), reason);
      if (t) this.transition(p, b, t, { metric, ...evidence });
    }
  }

  // ---- transitions ----

  private transition(p: Policy, b: BreakerState, t: Transition, evidence: Evidence): void {
    b.policy_version = p.version;
    this.out.push({ type: 'transition', ...this.by(p), decision: this.actionName(p, b, t.to), transition: t, state: structuredClone(b), evidence });
  }

  /** What the transition does to the scope, as a decision name. */
  private actionName(p: Policy, b: BreakerState, to: BreakerState['phase']): string {
    const onQueue = (b.scope.system === 'bullmq' || b.scope.system === 'celery') && p.breaker.action !== 'none';
    const name = to === 'open' ? (onQueue ? p.breaker.action : b.scope.system === 'temporal' ? 'fail_fast' : b.scope.kind === 'model' ? 'gate_route' : 'open')
      : to === 'half_open' ? 'probe' : onQueue ? 'restore' : 'close';
    return this.dry(p) ? `dry_run:${name}` : name;
  }

  private by(p: Policy): Decided {
    return { policy: p, digest: this.policies?.digest ?? null, dryRun: this.dry(p) };
  }

  private policy(name: string): Policy | undefined {
    return this.policies?.policies.find((p) => p.name === name);
  }

  /** The policy that still governs this breaker: present, and still covering its scope. */
  private governing(b: BreakerState): Policy | undefined {
    const p = this.policy(b.policy);
    return p && policyCovers(p, b.scope) ? p : undefined;
  }

  private dry(p: Policy): boolean {
    return p.dryRun || !!this.o.dryRun;
  }
}

const round4 = (x: number) => Math.round(x * 10_000) / 10_000;

const fmt = (v: number | string | boolean | undefined) => (typeof v === 'number' ? v.toPrecision(3) : String(v));
