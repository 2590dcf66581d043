/**
 * The breaker state machine, one per (policy, scope): closed -> open -> half-open (probes) -> closed,
 * a failed probe re-opens with the reset timeout multiplied (exponential backoff, capped). An admin
 * can force it open or closed (the machine then ignores the detector) and hand it back with `auto`.
 * Pure and synchronous: the engine persists states and carries out the actions.
 */
import type { BreakerPhase, BreakerScope } from '../../core/breakers.js';
import type { BreakerConfig } from '../schema.js';
import { judgeProbes } from './probes.js';

/** What Warden did to a BullMQ queue and must undo on close (survives restarts in the state file). */
export interface AppliedAction {
  kind: 'pause' | 'concurrency' | 'rate_limit';
  /** The queue's own settings before Warden touched it. */
  wasPaused: boolean;
  prevConcurrency: number | null;
  prevRateLimit: { max: number; duration: number } | null;
  /** Which phase the queue is currently set up for. */
  stage: 'open' | 'half_open';
  /** Set before acting and cleared after: a crash in between is finished on restart. */
  pending: boolean;
  /** The queue's settings could not be read when the breaker opened (Redis down): read them before the first change. */
  priorUnknown?: boolean;
}

export interface BreakerState {
  policy: string;
  policy_version: string;
  key: string;
  scope: BreakerScope;
  phase: BreakerPhase;
  /** Epoch ms of the last transition. */
  since: number;
  /** Consecutive opens without a close: the backoff exponent. */
  opens: number;
  resetTimeoutMs: number;
  probesOk: number;
  /** Failed probes in the current half-open window (absent in states saved before it existed). */
  probesFailed?: number;
  forced: 'open' | 'closed' | null;
  forced_by: string | null;
  reason: string;
  applied: AppliedAction | null;
}

export interface Transition {
  from: BreakerPhase;
  to: BreakerPhase;
  reason: string;
  actor: string | null;
}

export function newBreaker(policy: string, version: string, key: string, scope: BreakerScope, cfg: BreakerConfig, now: number): BreakerState {
  return {
    policy, policy_version: version, key, scope, phase: 'closed', since: now, opens: 0,
    resetTimeoutMs: cfg.resetTimeoutMs, probesOk: 0, probesFailed: 0, forced: null, forced_by: null, reason: '', applied: null,
  };
}

function move(b: BreakerState, to: BreakerPhase, now: number, reason: string, actor: string | null = null): Transition {
  const t: Transition = { from: b.phase, to, reason, actor };
  b.phase = to;
  b.since = now;
  b.reason = reason;
  b.probesOk = 0;
  b.probesFailed = 0;
  return t;
}

function open(b: BreakerState, cfg: BreakerConfig, now: number, reason: string): Transition {
  b.opens += 1;
  b.resetTimeoutMs = Math.min(cfg.maxResetTimeoutMs, cfg.resetTimeoutMs * cfg.backoffMultiplier ** (b.opens - 1));
  return move(b, 'open', now, reason);
}

/** The detector tripped: a closed breaker opens (unless an admin holds it). */
export function trip(b: BreakerState, cfg: BreakerConfig, now: number, reason: string): Transition | null {
  if (b.forced || b.phase !== 'closed') return null;
  return open(b, cfg, now, reason);
}

/**
 * Time passed: an open breaker whose reset timeout elapsed by `now` half-opens. The transition is
 * stamped `at` (default `now`; the decider passes the time it was due, so the stamp does not depend on
 * when the clock was looked at).
 */
export function tick(b: BreakerState, now: number, at = now): Transition | null {
  if (b.forced || b.phase !== 'open' || now < b.since + b.resetTimeoutMs) return null;
  return move(b, 'half_open', at, `reset timeout of ${b.resetTimeoutMs} ms elapsed: letting probes through`);
}

/** When an open breaker is due to half-open (its reset timeout after it opened). */
export function dueAt(b: BreakerState): number {
  return b.since + b.resetTimeoutMs;
}

/**
 * A probe finished while half-open. The probe window is judged by rate (policies/detect/probes.ts):
 * `upper` is the highest healthy failure rate (the scope's baseline band), null when there is no
 * baseline: then one failure re-opens. A re-open multiplies the reset timeout (backoff).
 */
export function probe(b: BreakerState, cfg: BreakerConfig, now: number, ok: boolean, what: string, upper: number | null = null): Transition | null {
  if (b.forced || b.phase !== 'half_open') return null;
  if (ok) b.probesOk += 1;
  else b.probesFailed = (b.probesFailed ?? 0) + 1;
  const bad = b.probesFailed ?? 0;
  const verdict = judgeProbes(cfg, b.probesOk, bad, upper);
  if (verdict === 'wait') return null;
  const n = b.probesOk + bad;
  const rate = `${bad} of ${n} probe(s) failed`;
  if (verdict === 'reopen') {
    return open(b, cfg, now, upper === null ? `probe failed (${what}): re-opening` : `probes fail above the baseline band (${rate}, band <= ${pct(upper)}; last: ${what}): re-opening`);
  }
  const okCount = b.probesOk;
  const t = move(b, 'closed', now, upper === null ? `${okCount} probe(s) succeeded` : `${okCount} probe(s) succeeded, ${rate}: within the baseline band (<= ${pct(upper)})`);
  b.opens = 0;
  b.resetTimeoutMs = cfg.resetTimeoutMs;
  return t;
}

const pct = (x: number) => `${Math.round(x * 1000) / 10} %`;

/** An admin forces the breaker open or closed, or hands it back to the policy (`auto`). */
export function force(b: BreakerState, cfg: BreakerConfig, mode: 'open' | 'closed' | 'auto', actor: string, now: number): Transition | null {
  if (mode === 'auto') {
    b.forced = null;
    b.forced_by = null;
    // Handed back while open: the usual reset timeout starts now.
    if (b.phase === 'open') { b.since = now; b.resetTimeoutMs = cfg.resetTimeoutMs; }
    return null;
  }
  b.forced = mode;
  b.forced_by = actor;
  if (b.phase === mode) return null;
  const t = move(b, mode, now, `forced ${mode} by ${actor}`, actor);
  if (mode === 'closed') { b.opens = 0; b.resetTimeoutMs = cfg.resetTimeoutMs; }
  return t;
}
