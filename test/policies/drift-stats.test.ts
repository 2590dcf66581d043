/**
 * The drift statistics against values scipy 1.17 / numpy computed for the same samples
 * (`stats.ks_2samp(..., method='exact')`, `stats.wasserstein_distance(r, c) / np.std(r)`, and
 * Evidently's PSI binning: `np.histogram_bin_edges(ref + cur, bins='sturges')`, empty bins 0.0001).
 */
import { describe, expect, it } from 'vitest';
import { detectDrift, kolmogorovQ, ksTest, normedWasserstein, psi, wassersteinDistance } from '../../policies/detect/drift-stats.js';

/** Deterministic samples, reproduced in Python as `[((i*mul) % mod)/scale + shift for i in range(n)]`. */
const gen = (n: number, mul: number, mod: number, shift: number) => Array.from({ length: n }, (_, i) => ((i * mul) % mod) / 100 + shift);

const A = [1.2, 3.4, 2.2, 5.1, 0.3, 4.4, 2.9, 3.3, 1.8, 2.5];
const B = [2.1, 6.3, 4.2, 5.5, 3.9, 7.1, 4.8, 5.0];
const REF = gen(200, 7919, 1009, 0);
const SHIFTED = gen(150, 104729, 1013, 1.5);
const SAME = gen(150, 15485863, 1019, 0);

describe('two-sample Kolmogorov-Smirnov', () => {
  it('matches scipy ks_2samp (exact) on small samples', () => {
    const r = ksTest(A, B);
    expect(r.statistic).toBeCloseTo(0.675, 12);
    expect(r.pValue).toBeCloseTo(0.020659079482608898, 9);
  });

  it('matches scipy on 200 vs 150 values: a shifted sample drifts, a same-distribution one does not', () => {
    const shifted = ksTest(REF, SHIFTED);
    expect(shifted.statistic).toBeCloseTo(0.155, 12);
    expect(shifted.pValue).toBeCloseTo(0.029557261789682196, 8);
    const same = ksTest(REF, SAME);
    expect(same.statistic).toBeCloseTo(0.055, 12);
    expect(same.pValue).toBeCloseTo(0.9466964711540928, 8);
    expect(detectDrift(REF, SHIFTED).drift).toBe(true);
    expect(detectDrift(REF, SAME).drift).toBe(false);
  });

  it('identical samples give D = 0 and p = 1; the asymptotic tail is Kolmogorov\'s', () => {
    expect(ksTest(A, A)).toEqual({ statistic: 0, pValue: 1 });
    // Q(1.36) ~ 0.0494 (the classic 5 % critical value of the Kolmogorov distribution).
    expect(kolmogorovQ(1.3581)).toBeCloseTo(0.05, 3);
  });
});

describe('Wasserstein distance', () => {
  it('matches scipy wasserstein_distance, and the normed form divides by the reference std (ddof 0)', () => {
    expect(wassersteinDistance(A, B)).toBeCloseTo(2.1525, 10);
    expect(normedWasserstein(REF, SHIFTED)).toBeCloseTo(0.47231547163262266, 10);
    expect(normedWasserstein(REF, SAME)).toBeCloseTo(0.08404331633874464, 10);
    // A constant reference: Evidently floors the norm at 0.001, so the score stays finite.
    expect(normedWasserstein([5, 5, 5, 5], [5, 5, 5, 5])).toBe(0);
    expect(normedWasserstein([5, 5, 5, 5], [5, 5, 5, 5.004])).toBeCloseTo(1, 6);
  });

  it('is what Evidently uses above 1000 reference values (threshold 0.1)', () => {
    const bigRef = gen(1500, 7919, 1009, 0);
    const r = detectDrift(bigRef, SHIFTED);
    expect(r.method).toBe('wasserstein');
    expect(r.drift).toBe(true);
    expect(detectDrift(bigRef, gen(1500, 104729, 1013, 0)).drift).toBe(false);
  });
});

describe('PSI', () => {
  it('matches numpy with Evidently\'s Sturges binning', () => {
    expect(psi(A, B)).toBeCloseTo(6.5298926281269525, 8);
    expect(psi(REF, SHIFTED)).toBeCloseTo(1.735445548696927, 8);
    expect(psi(REF, SAME)).toBeCloseTo(0.05080620988436964, 8);
  });

  it('drifts at >= 0.1 when asked for', () => {
    expect(detectDrift(REF, SHIFTED, 'psi')).toMatchObject({ method: 'psi', drift: true, threshold: 0.1 });
    expect(detectDrift(REF, SAME, 'psi').drift).toBe(false);
  });
});
