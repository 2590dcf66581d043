/**
 * The retry-storm detector: one window of attempt counts judged against the policy's thresholds.
 * Five signals, each able to trip on its own: retry budget, terminal failures / stalls, the
 * attempt-number distribution, synchronized retries (missing jitter), and one dominant failure reason.
 */
import type { RetryStormConfig } from '../schema.js';
import type { AttemptCounts } from './window.js';

export type Evidence = Record<string, number | string | boolean>;

export interface StormVerdict {
  trip: boolean;
  /** Names of the signals over their threshold (`retry_budget`, `terminal_failures`, ...). */
  signals: string[];
  /** Retries per first attempt, and the budget as the same ratio (for the dashboard gauges). */
  retryRatio: number;
  budgetRatio: number;
  evidence: Evidence;
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

export function judgeStorm(c: AttemptCounts, cfg: RetryStormConfig): StormVerdict {
  const signals: string[] = [];
  const budget = retryBudget(cfg, c.first);
  const started = c.first + c.retries;
  const evidence: Evidence = {
    window_ms: cfg.windowMs,
    first_attempts: c.first,
    retries: c.retries,
    retry_budget: Math.round(budget * 100) / 100,
    finished: c.finished,
    terminal_failures: c.terminalFailures,
    stalls: c.stalls,
    failed_attempts: c.failures,
  };
  if (c.retries >= cfg.minRetries && c.retries > budget) signals.push('retry_budget');

  const tf = cfg.terminalFailures;
  if (tf && c.finished >= tf.minFinished && c.terminalFailures / c.finished > tf.maxShare) signals.push('terminal_failures');

  const st = cfg.stalls;
  if (st && started >= st.minStarted && c.stalls / started > st.maxShare) signals.push('stalls');

  const at = cfg.attempts;
  if (at) {
    let high = 0;
    for (const [n, k] of c.byAttempt) if (n >= at.atLeast) high += k;
    evidence[`attempts_ge_${at.atLeast}`] = high;
    if (started >= at.minStarted && high / started > at.maxShare) signals.push('attempt_distribution');
  }
  for (const [n, k] of [...c.byAttempt].sort((a, b) => a[0] - b[0]).slice(0, 10)) evidence[`attempt.${n}`] = k;

  const sy = cfg.synchronized;
  if (sy) {
    const [, peak] = maxEntry(c.dueSlots);
    evidence.retries_scheduled = c.scheduled;
    evidence.max_retries_due_together = peak;
    if (c.scheduled >= sy.minRetries && peak / c.scheduled > sy.maxShare) signals.push('synchronized_retries');
  }

  const dr = cfg.dominantReason;
  const [reason, count] = maxEntry(c.reasons);
  if (reason !== null) {
    evidence.top_reason = reason.slice(0, 200);
    evidence.top_reason_count = count;
  }
  if (dr && c.failures >= dr.minFailures && count / c.failures > dr.maxShare) signals.push('dominant_reason');

  const denom = Math.max(1, c.first);
  return { trip: signals.length > 0, signals, retryRatio: c.retries / denom, budgetRatio: budget / denom, evidence };
}
