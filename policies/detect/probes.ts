/**
 * Judging a half-open probe window by rate, as resilience4j does (not by one call): the probes'
 * failure rate is compared with the scope's baseline failure rate (what the scope fails while
 * healthy), so one failed probe on a noisy-but-healthy queue does not re-open its breaker.
 */
import type { BreakerConfig } from '../schema.js';
import type { Baseline } from './window.js';

export type ProbeVerdict = 'close' | 'reopen' | 'wait';

/** The highest failure rate a healthy probe window may show, or null without a baseline (strict: no failure allowed). */
export function probeBandUpper(cfg: BreakerConfig, baseline: Baseline | null): number | null {
  if (!baseline || baseline.n < cfg.probeBand.minBaseline) return null;
  return Math.min(1, baseline.rate * cfg.probeBand.factor + cfg.probeBand.slack);
}

/** P(X >= k) for X ~ Binomial(n, p). */
export function binomialTail(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  if (p <= 0) return 0;
  if (p >= 1) return 1;
  // Sum P(X = i) for i < k, from P(X = 0), and take the complement (n is at most maxProbes).
  let term = (1 - p) ** n;
  let below = 0;
  for (let i = 0; i < k; i++) {
    below += term;
    term = (term * (n - i) / (i + 1)) * (p / (1 - p));
  }
  return Math.max(0, 1 - below);
}

/** What the probe window (ok successes, bad failures so far) says. */
export function judgeProbes(cfg: BreakerConfig, ok: number, bad: number, upper: number | null): ProbeVerdict {
  if (upper === null) return bad > 0 ? 'reopen' : ok >= cfg.probes ? 'close' : 'wait';
  const n = ok + bad;
  if (bad > 0 && binomialTail(bad, n, upper) < cfg.probeBand.alpha) return 'reopen';
  const rate = n === 0 ? 0 : bad / n;
  if (ok >= cfg.probes && rate <= upper) return 'close';
  if (n >= cfg.probeBand.maxProbes) return rate <= upper ? 'close' : 'reopen';
  return 'wait';
}
