/**
 * Sliding windows over the event stream, as a ring of time buckets. Time is the events' own
 * timestamps (not the wall clock): a backlog read after an outage is judged by when the work
 * happened, and the same events always give the same decision.
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
}

export function emptyCounts(): AttemptCounts {
  return { first: 0, retries: 0, byAttempt: new Map(), finished: 0, terminalFailures: 0, stalls: 0, failures: 0, reasons: new Map(), dueSlots: new Map(), scheduled: 0, completed: 0 };
}

const inc = <K>(m: Map<K, number>, k: K, n = 1) => m.set(k, (m.get(k) ?? 0) + n);

function addInto(into: AttemptCounts, c: AttemptCounts): void {
  into.first += c.first;
  into.retries += c.retries;
  into.finished += c.finished;
  into.terminalFailures += c.terminalFailures;
  into.stalls += c.stalls;
  into.failures += c.failures;
  into.scheduled += c.scheduled;
  into.completed += c.completed;
  for (const [k, v] of c.byAttempt) inc(into.byAttempt, k, v);
  for (const [k, v] of c.reasons) inc(into.reasons, k, v);
  for (const [k, v] of c.dueSlots) inc(into.dueSlots, k, v);
}

/** Failure reasons kept per bucket; the rest are counted as "(other)" so memory stays bounded. */
const MAX_REASONS = 64;

export class AttemptWindow {
  private readonly buckets = new Map<number, AttemptCounts>();
  private readonly bucketMs: number;
  /** Newest event time seen: the window's "now". */
  latest = 0;

  constructor(readonly windowMs: number, readonly slotMs = 50) {
    this.bucketMs = Math.max(50, Math.floor(windowMs / 20));
  }

  private bucket(ts: number): AttemptCounts {
    const k = Math.floor(ts / this.bucketMs);
    let b = this.buckets.get(k);
    if (!b) {
      b = emptyCounts();
      this.buckets.set(k, b);
    }
    if (ts > this.latest) this.latest = ts;
    return b;
  }

  started(ts: number, attempt: number): void {
    const b = this.bucket(ts);
    if (attempt <= 1) b.first++;
    else b.retries++;
    inc(b.byAttempt, Math.max(1, attempt));
  }

  attemptFailed(ts: number, reason: string, retryDelayMs: number | null): void {
    const b = this.bucket(ts);
    b.failures++;
    inc(b.reasons, b.reasons.size < MAX_REASONS || b.reasons.has(reason) ? reason : '(other)');
    if (retryDelayMs !== null) {
      b.scheduled++;
      inc(b.dueSlots, Math.floor((ts + retryDelayMs) / this.slotMs));
    }
  }

  finished(ts: number, failed: boolean, reason: string | null): void {
    const b = this.bucket(ts);
    b.finished++;
    if (failed) {
      b.terminalFailures++;
      b.failures++;
      const r = reason ?? 'unknown';
      inc(b.reasons, b.reasons.size < MAX_REASONS || b.reasons.has(r) ? r : '(other)');
    } else {
      b.completed++;
    }
  }

  stalled(ts: number): void {
    this.bucket(ts).stalls++;
  }

  /** Sum over the buckets within `windowMs` of `now` (default: the newest event); older buckets are dropped. */
  sum(now = this.latest): AttemptCounts {
    const oldest = Math.floor((now - this.windowMs) / this.bucketMs);
    const out = emptyCounts();
    for (const [k, b] of this.buckets) {
      // The bucket holding the window's start is dropped: the window is at most one bucket (5 %) short, never long.
      if (k <= oldest) this.buckets.delete(k);
      else addInto(out, b);
    }
    return out;
  }

  clear(): void {
    this.buckets.clear();
  }
}
