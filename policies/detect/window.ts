/**
 * Sliding windows over the event stream, as a ring of time buckets. Time is the events' own
 * timestamps (not the wall clock): a backlog read after an outage is judged by when the work
 * happened, and the same events always give the same decision.
 *
 * The window keeps running totals (added on each event, subtracted when a bucket leaves the window),
 * so a storm can be judged after every event without summing the buckets again. Buckets that leave the
 * window while the scope's breaker is closed are folded into the scope's baseline failure rate (an
 * exponentially decayed count, half-life `baselineHalfLifeMs`): the baseline is the history before
 * the current window, so the window a storm trips in is never part of it.
 */

/** What one bucket (and a whole window, summed) knows about a scope's attempts. */
export interface AttemptCounts {
  /** Attempts started with number 1 (first attempts) and > 1 (retries). */
  first: number;
  retries: number;
  /** Started attempts by attempt number. */
  byAttempt: Map<number, number>;
  /** Jobs / activities that finished (completed or failed for good), and those that failed. */
  finished: number;
  terminalFailures: number;
  stalls: number;
  /** Failed attempts (retried or not) by failure reason. */
  failures: number;
  reasons: Map<string, number>;
  /** Retries scheduled with a known due time, counted per due-time slot. */
  dueSlots: Map<number, number>;
  scheduled: number;
  /** Completions (used by half-open probes). */
  completed: number;
  /** The largest dueSlots entry and the most frequent reason, when known (running totals keep them). */
  peakDue?: number;
  top?: { reason: string | null; count: number };
}

/** The scope's failure rate before the current window: bad / (ok + bad), over `n` decayed outcomes. */
export interface Baseline {
  rate: number;
  n: number;
}

export function emptyCounts(): AttemptCounts {
  return { first: 0, retries: 0, byAttempt: new Map(), finished: 0, terminalFailures: 0, stalls: 0, failures: 0, reasons: new Map(), dueSlots: new Map(), scheduled: 0, completed: 0 };
}

const inc = <K>(m: Map<K, number>, k: K, n = 1): number => {
  const v = (m.get(k) ?? 0) + n;
  if (v === 0) m.delete(k);
  else m.set(k, v);
  return v;
};

function addInto(into: AttemptCounts, c: AttemptCounts, sign = 1): void {
  into.first += sign * c.first;
  into.retries += sign * c.retries;
  into.finished += sign * c.finished;
  into.terminalFailures += sign * c.terminalFailures;
  into.stalls += sign * c.stalls;
  into.failures += sign * c.failures;
  into.scheduled += sign * c.scheduled;
  into.completed += sign * c.completed;
  for (const [k, v] of c.byAttempt) inc(into.byAttempt, k, sign * v);
  for (const [k, v] of c.reasons) inc(into.reasons, k, sign * v);
  for (const [k, v] of c.dueSlots) inc(into.dueSlots, k, sign * v);
}

function maxEntry<K>(m: Map<K, number>): [K | null, number] {
  let best: K | null = null;
  let n = 0;
  for (const [k, v] of m) if (v > n) { best = k; n = v; }
  return [best, n];
}

/** Failure reasons kept per bucket; the rest are counted as "(other)" so memory stays bounded. */
const MAX_REASONS = 64;

export class AttemptWindow {
  private readonly buckets = new Map<number, AttemptCounts>();
  private readonly bucketMs: number;
  private totals = emptyCounts();
  private peakDue = 0;
  private peakDirty = false;
  private top: { reason: string | null; count: number } = { reason: null, count: 0 };
  private topDirty = false;
  /** Buckets with a key at or below this have left the window. */
  private expiredUpTo = Number.NEGATIVE_INFINITY;
  private base = { ok: 0, bad: 0, at: Number.NEGATIVE_INFINITY };
  /** Whether buckets leaving the window are folded into the baseline (the breaker is closed). */
  folding = true;
  /** Newest event time seen: the window's "now". */
  latest = 0;

  constructor(readonly windowMs: number, readonly slotMs = 50, readonly baselineHalfLifeMs = windowMs * 5) {
    this.bucketMs = Math.max(50, Math.floor(windowMs / 20));
  }

  /** The bucket for an event at `ts`, or null when `ts` is older than the window. */
  private bucket(ts: number): AttemptCounts | null {
    if (ts > this.latest) this.latest = ts;
    this.advance(this.latest);
    const k = Math.floor(ts / this.bucketMs);
    if (k <= this.expiredUpTo) return null;
    let b = this.buckets.get(k);
    if (!b) {
      b = emptyCounts();
      this.buckets.set(k, b);
    }
    return b;
  }

  /** Buckets older than the window ending at `now` leave it (folded into the baseline while `folding`). */
  private advance(now: number): void {
    // The bucket holding the window's start is dropped: the window is at most one bucket (5 %) short, never long.
    const oldest = Math.floor((now - this.windowMs) / this.bucketMs);
    if (oldest <= this.expiredUpTo) return;
    this.expiredUpTo = oldest;
    for (const [k, b] of [...this.buckets].sort((x, y) => x[0] - y[0])) {
      if (k > oldest) break;
      this.buckets.delete(k);
      addInto(this.totals, b, -1);
      if (b.dueSlots.size > 0) this.peakDirty = true;
      if (b.reasons.size > 0) this.topDirty = true;
      if (this.folding) this.fold(k, b);
    }
  }

  private fold(k: number, b: AttemptCounts): void {
    const t = k * this.bucketMs;
    const decay = this.base.at === Number.NEGATIVE_INFINITY || t <= this.base.at ? 1 : 0.5 ** ((t - this.base.at) / this.baselineHalfLifeMs);
    this.base.ok = this.base.ok * decay + b.completed;
    this.base.bad = this.base.bad * decay + b.failures + b.stalls;
    if (t > this.base.at) this.base.at = t;
  }

  private reason(b: AttemptCounts, r: string): void {
    const key = b.reasons.size < MAX_REASONS || b.reasons.has(r) ? r : '(other)';
    inc(b.reasons, key);
    const v = inc(this.totals.reasons, key);
    if (!this.topDirty && v > this.top.count) this.top = { reason: key, count: v };
  }

  started(ts: number, attempt: number): void {
    const b = this.bucket(ts);
    if (!b) return;
    const n = Math.max(1, attempt);
    for (const c of [b, this.totals]) {
      if (attempt <= 1) c.first++;
      else c.retries++;
      inc(c.byAttempt, n);
    }
  }

  attemptFailed(ts: number, reason: string, retryDelayMs: number | null): void {
    const b = this.bucket(ts);
    if (!b) return;
    b.failures++;
    this.totals.failures++;
    this.reason(b, reason);
    if (retryDelayMs !== null) {
      const slot = Math.floor((ts + retryDelayMs) / this.slotMs);
      b.scheduled++;
      this.totals.scheduled++;
      inc(b.dueSlots, slot);
      const v = inc(this.totals.dueSlots, slot);
      if (!this.peakDirty && v > this.peakDue) this.peakDue = v;
    }
  }

  finished(ts: number, failed: boolean, reason: string | null): void {
    const b = this.bucket(ts);
    if (!b) return;
    b.finished++;
    this.totals.finished++;
    if (failed) {
      b.terminalFailures++;
      this.totals.terminalFailures++;
      b.failures++;
      this.totals.failures++;
      this.reason(b, reason ?? 'unknown');
    } else {
      b.completed++;
      this.totals.completed++;
    }
  }

  stalled(ts: number): void {
    const b = this.bucket(ts);
    if (!b) return;
    b.stalls++;
    this.totals.stalls++;
  }

  /**
   * The window's running totals (read-only: do not change them), with the peak due slot and the top
   * reason. `now` (default: the newest event) moves the window's end first.
   */
  current(now = this.latest): Readonly<AttemptCounts> {
    this.advance(now);
    if (this.peakDirty) { this.peakDue = maxEntry(this.totals.dueSlots)[1]; this.peakDirty = false; }
    if (this.topDirty) { const [reason, count] = maxEntry(this.totals.reasons); this.top = { reason, count }; this.topDirty = false; }
    this.totals.peakDue = this.peakDue;
    this.totals.top = this.top;
    return this.totals;
  }

  /** A copy of the window's counts (older buckets are dropped). */
  sum(now = this.latest): AttemptCounts {
    const c = this.current(now);
    const out = emptyCounts();
    addInto(out, c);
    out.peakDue = c.peakDue;
    out.top = c.top ? { ...c.top } : undefined;
    return out;
  }

  /** The failure rate before the current window, or null below `minOutcomes` (decayed) outcomes. */
  baseline(minOutcomes = 1): Baseline | null {
    const n = this.base.ok + this.base.bad;
    if (n < minOutcomes || n === 0) return null;
    return { rate: this.base.bad / n, n: Math.round(n * 10) / 10 };
  }

  /** Empties the window (the baseline stays). */
  clear(): void {
    this.buckets.clear();
    this.totals = emptyCounts();
    this.peakDue = 0;
    this.peakDirty = false;
    this.top = { reason: null, count: 0 };
    this.topDirty = false;
  }
}
