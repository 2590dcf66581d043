/**
 * The retry-storm detector: one window of attempt counts judged against the policy's thresholds.
 *
 * Signals that TRIP are evidence of harm, each able to open the breaker on its own: retries over the
 * budget, the share of jobs failing for good, the share of attempts stalling, the attempt-number
 * distribution, and synchronized retries (missing jitter). Signals that QUALIFY describe a storm but
 * are no harm by themselves: one dominant failure reason is what a storm is about, and also what
 * ordinary noise looks like (a few percent failing with one message). A qualifier over its threshold is
 * recorded in the evidence (`qualifiers`) of a trip, and never opens a breaker alone.
 */
import type { RetryStormConfig } from '../schema.js';
import type { AttemptCounts } from './window.js';

export type Evidence = Record<string, number | string | boolean>;

/** Signals that open a breaker on their own. */
export const TRIP_SIGNALS = ['retry_budget', 'terminal_failures', 'stalls', 'attempt_distribution', 'synchronized_retries'] as const;
/** Signals recorded as evidence only. */
export const QUALIFIER_SIGNALS = ['dominant_reason'] as const;
export type StormSignal = (typeof TRIP_SIGNALS)[number] | (typeof QUALIFIER_SIGNALS)[number];

export interface StormVerdict {
  /** A signal that trips is over its threshold. */
  trip: boolean;
  /** Every signal over its threshold, trips and qualifiers (`retry_budget`, `dominant_reason`, ...). */
  signals: StormSignal[];
  /** The signals over their threshold that trip. */
  trips: StormSignal[];
  /** The qualifiers over their threshold (evidence only). */
  qualifiers: StormSignal[];
  /** Retries per first attempt, and the budget as the same ratio (for the dashboard gauges). */
  retryRatio: number;
  budgetRatio: number;
  evidence: Evidence;
}

/** One signal measured against its threshold (what `warden policy explain` shows). */
export interface SignalReading {
  signal: StormSignal;
  trips: boolean;
  /** The measured value and the threshold it is compared with (`value > threshold` is over). */
  value: number;
  threshold: number;
  /** The sample the signal needs before it may count, and the sample there is. */
  sample: number;
  minSample: number;
  over: boolean;
  /** value / threshold (0 when the sample is too small): the signal closest to tripping has the largest. */
  closeness: number;
}

/** Retries the budget allows in one window: ratio x first attempts + the per-second allowance. */
export function retryBudget(cfg: Pick<RetryStormConfig, 'budgetRatio' | 'budgetPerSecond' | 'windowMs'>, firstAttempts: number): number {
  return cfg.budgetRatio * firstAttempts + cfg.budgetPerSecond * (cfg.windowMs / 1000);
}

function maxEntry<K>(m: Map<K, number>): [K | null, number] {
  let best: K | null = null;
  let n = 0;
  for (const [k, v] of m) if (v > n) { best = k; n = v; }
  return [best, n];
}

const topOf = (c: Readonly<AttemptCounts>) => {
  if (c.top) return c.top;
  const [reason, count] = maxEntry(c.reasons);
  return { reason, count };
};

/** Every enabled signal of the policy, measured on one window (cheap: no evidence is built). */
export function readSignals(c: Readonly<AttemptCounts>, cfg: RetryStormConfig): SignalReading[] {
  const out: SignalReading[] = [];
  const add = (signal: StormSignal, trips: boolean, value: number, threshold: number, sample: number, minSample: number) => {
    const enough = sample >= minSample;
    const over = enough && value > threshold;
    out.push({ signal, trips, value, threshold, sample, minSample, over, closeness: enough ? (threshold > 0 ? value / threshold : value > 0 ? Number.POSITIVE_INFINITY : 0) : 0 });
  };
  const started = c.first + c.retries;
  add('retry_budget', true, c.retries, retryBudget(cfg, c.first), c.retries, cfg.minRetries);
  const tf = cfg.terminalFailures;
  if (tf) add('terminal_failures', true, c.finished ? c.terminalFailures / c.finished : 0, tf.maxShare, c.finished, tf.minFinished);
  const st = cfg.stalls;
  if (st) add('stalls', true, started ? c.stalls / started : 0, st.maxShare, started, st.minStarted);
  const at = cfg.attempts;
  if (at) {
    let high = 0;
    for (const [n, k] of c.byAttempt) if (n >= at.atLeast) high += k;
    add('attempt_distribution', true, started ? high / started : 0, at.maxShare, started, at.minStarted);
  }
  const sy = cfg.synchronized;
  if (sy) {
    const peak = c.peakDue ?? maxEntry(c.dueSlots)[1];
    add('synchronized_retries', true, c.scheduled ? peak / c.scheduled : 0, sy.maxShare, c.scheduled, sy.minRetries);
  }
  const dr = cfg.dominantReason;
  if (dr) add('dominant_reason', false, c.failures ? topOf(c).count / c.failures : 0, dr.maxShare, c.failures, dr.minFailures);
  return out;
}

/** The evidence a decision records about one window. */
export function stormEvidence(c: Readonly<AttemptCounts>, cfg: RetryStormConfig): Evidence {
  const evidence: Evidence = {
    window_ms: cfg.windowMs,
    first_attempts: c.first,
    retries: c.retries,
    retry_budget: Math.round(retryBudget(cfg, c.first) * 100) / 100,
    finished: c.finished,
    terminal_failures: c.terminalFailures,
    stalls: c.stalls,
    failed_attempts: c.failures,
  };
  const at = cfg.attempts;
  if (at) {
    let high = 0;
    for (const [n, k] of c.byAttempt) if (n >= at.atLeast) high += k;
    evidence[`attempts_ge_${at.atLeast}`] = high;
  }
  for (const [n, k] of [...c.byAttempt].sort((a, b) => a[0] - b[0]).slice(0, 10)) evidence[`attempt.${n}`] = k;
  if (cfg.synchronized) {
    evidence.retries_scheduled = c.scheduled;
    evidence.max_retries_due_together = c.peakDue ?? maxEntry(c.dueSlots)[1];
  }
  const top = topOf(c);
  if (top.reason !== null) {
    evidence.top_reason = top.reason.slice(0, 200);
    evidence.top_reason_count = top.count;
  }
  return evidence;
}

export function judgeStorm(c: Readonly<AttemptCounts>, cfg: RetryStormConfig): StormVerdict {
  const readings = readSignals(c, cfg);
  const signals = readings.filter((r) => r.over).map((r) => r.signal);
  const trips = readings.filter((r) => r.over && r.trips).map((r) => r.signal);
  const qualifiers = readings.filter((r) => r.over && !r.trips).map((r) => r.signal);
  const denom = Math.max(1, c.first);
  const budget = retryBudget(cfg, c.first);
  return { trip: trips.length > 0, signals, trips, qualifiers, retryRatio: c.retries / denom, budgetRatio: budget / denom, evidence: stormEvidence(c, cfg) };
}

/** The cheap per-event question: does any tripping signal say harm? */
export function stormTrips(c: Readonly<AttemptCounts>, cfg: RetryStormConfig): boolean {
  // The retry budget first: it is the usual one, and the cheapest.
  if (c.retries >= cfg.minRetries && c.retries > retryBudget(cfg, c.first)) return true;
  return readSignals(c, cfg).some((r) => r.over && r.trips);
}
