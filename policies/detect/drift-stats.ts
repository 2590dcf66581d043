/**
 * Two-sample statistics for numeric drift, with Evidently's defaults: the two-sample
 * Kolmogorov–Smirnov test (drift when p <= 0.05) while the reference has at most 1000 values, the
 * Wasserstein distance normed by the reference's standard deviation (drift when >= 0.1) above that,
 * and the Population Stability Index on request (drift when >= 0.1).
 */

export type DriftMethod = 'ks' | 'wasserstein' | 'psi';

export interface DriftResult {
  method: DriftMethod;
  /** KS: the p-value; Wasserstein and PSI: the distance. */
  score: number;
  threshold: number;
  drift: boolean;
  /** KS only: the statistic D (largest distance between the two empirical CDFs). */
  statistic?: number;
}

export const KS_P_THRESHOLD = 0.05;
export const WASSERSTEIN_THRESHOLD = 0.1;
export const PSI_THRESHOLD = 0.1;
/** Evidently switches from KS to Wasserstein above this many reference values. */
export const KS_MAX_REFERENCE = 1000;

const sorted = (xs: readonly number[]) => Float64Array.from(xs).sort();

/** The KS statistic D = sup |F_ref(x) - F_cur(x)|. */
export function ksStatistic(a: readonly number[], b: readonly number[]): number {
  const x = sorted(a);
  const y = sorted(b);
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < x.length && j < y.length) {
    const v = Math.min(x[i], y[j]);
    while (i < x.length && x[i] === v) i++;
    while (j < y.length && y[j] === v) j++;
    d = Math.max(d, Math.abs(i / x.length - j / y.length));
  }
  return d;
}

/**
 * Exact two-sided p-value P(D >= d) for sample sizes n and m (as scipy's ks_2samp method='exact'):
 * the share of lattice paths from (0,0) to (n,m) that leave the band |i/n - j/m| < d, computed as
 * probabilities (each step weighted i/(i+j) or j/(i+j)) so nothing overflows.
 */
export function ksExactP(d: number, n: number, m: number): number {
  if (d <= 0) return 1;
  const tol = 1e-12; // D is a multiple of 1/lcm(n,m): treat values equal to d as "outside"
  const inside = (i: number, j: number) => Math.abs(i / n - j / m) < d - tol;
  let prev = new Float64Array(m + 1);
  prev[0] = 1;
  for (let j = 1; j <= m; j++) prev[j] = inside(0, j) ? prev[j - 1] : 0;
  for (let i = 1; i <= n; i++) {
    const cur = new Float64Array(m + 1);
    cur[0] = inside(i, 0) ? prev[0] : 0;
    for (let j = 1; j <= m; j++) {
      cur[j] = inside(i, j) ? (i / (i + j)) * prev[j] + (j / (i + j)) * cur[j - 1] : 0;
    }
    prev = cur;
  }
  return Math.min(1, Math.max(0, 1 - prev[m]));
}

/** Kolmogorov's limiting distribution Q(lambda) = 2 sum (-1)^(k-1) exp(-2 k^2 lambda^2). */
export function kolmogorovQ(lambda: number): number {
  if (lambda < 0.2) return 1;
  let sum = 0;
  for (let k = 1; k <= 100; k++) {
    const term = 2 * (k % 2 ? 1 : -1) * Math.exp(-2 * k * k * lambda * lambda);
    sum += term;
    if (Math.abs(term) < 1e-16) break;
  }
  return Math.min(1, Math.max(0, sum));
}

/** Above this many lattice cells the exact p-value is replaced by the asymptotic one. */
const EXACT_MAX_CELLS = 4_000_000;

export function ksTest(a: readonly number[], b: readonly number[]): { statistic: number; pValue: number } {
  const d = ksStatistic(a, b);
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0) return { statistic: 0, pValue: 1 };
  const p = (n + 1) * (m + 1) <= EXACT_MAX_CELLS ? ksExactP(d, n, m) : kolmogorovQ(Math.sqrt((n * m) / (n + m)) * d);
  return { statistic: d, pValue: p };
}

/** Earth mover's distance between two 1-D empirical distributions: the area between their CDFs. */
export function wassersteinDistance(a: readonly number[], b: readonly number[]): number {
  const x = sorted(a);
  const y = sorted(b);
  const all = Float64Array.from([...x, ...y]).sort();
  let i = 0;
  let j = 0;
  let area = 0;
  for (let k = 0; k < all.length - 1; k++) {
    const v = all[k];
    while (i < x.length && x[i] <= v) i++;
    while (j < y.length && y[j] <= v) j++;
    area += Math.abs(i / x.length - j / y.length) * (all[k + 1] - v);
  }
  return area;
}

/** Population standard deviation (numpy's default, ddof=0), which Evidently norms by. */
export function std(xs: readonly number[]): number {
  const mean = xs.reduce((s, v) => s + v, 0) / xs.length;
  return Math.sqrt(xs.reduce((s, v) => s + (v - mean) ** 2, 0) / xs.length);
}

/** Wasserstein distance divided by the reference's standard deviation (Evidently's "normed" form). */
export function normedWasserstein(reference: readonly number[], current: readonly number[]): number {
  // As Evidently: the std of the reference, floored at 0.001 (a constant reference gives a finite score).
  return wassersteinDistance(reference, current) / Math.max(std(reference), 0.001);
}

/**
 * PSI as Evidently bins it: Sturges' rule over both samples (numpy's histogram_bin_edges), shares
 * per bin, empty bins set to 0.0001, PSI = sum (ref - cur) * ln(ref / cur).
 */
export function psi(reference: readonly number[], current: readonly number[]): number {
  const all = [...reference, ...current];
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of all) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (lo === hi) { lo -= 0.5; hi += 0.5; } // numpy widens a zero-width range the same way
  const bins = Math.ceil(Math.log2(all.length) + 1);
  const width = (hi - lo) / bins;
  const shares = (xs: readonly number[]) => {
    const counts = new Array<number>(bins).fill(0);
    for (const v of xs) counts[Math.min(bins - 1, Math.floor((v - lo) / width))]++;
    return counts.map((c) => (c === 0 ? 0.0001 : c / xs.length));
  };
  const r = shares(reference);
  const c = shares(current);
  let total = 0;
  for (let k = 0; k < bins; k++) total += (r[k] - c[k]) * Math.log(r[k] / c[k]);
  return total;
}

/** Evidently's default choice: KS for a small reference, normed Wasserstein for a large one, PSI when asked. */
export function detectDrift(reference: readonly number[], current: readonly number[], method: 'auto' | DriftMethod = 'auto', threshold?: number): DriftResult {
  const m: DriftMethod = method === 'auto' ? (reference.length <= KS_MAX_REFERENCE ? 'ks' : 'wasserstein') : method;
  if (m === 'ks') {
    const t = threshold ?? KS_P_THRESHOLD;
    const { statistic, pValue } = ksTest(reference, current);
    return { method: m, score: pValue, threshold: t, drift: pValue <= t, statistic };
  }
  const t = threshold ?? (m === 'psi' ? PSI_THRESHOLD : WASSERSTEIN_THRESHOLD);
  const score = m === 'psi' ? psi(reference, current) : normedWasserstein(reference, current);
  return { method: m, score, threshold: t, drift: score >= t };
}
