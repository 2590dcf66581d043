/**
 * Requests refused before anyone is known (no or unknown token: 401) or over the rate limit (429) are
 * not audited one by one: anyone who can reach the port could otherwise grow the append-only ledger at
 * will. Each is counted at once (the agent's metric), and per interval one `ledger.read` record per
 * cause says how many there were (attrs.count), from when to when, and (rate limits) which callers.
 */
import type { WardenEvent } from '../../core/event.js';
import { makeEvent } from '../../core/event.js';

export type RefusalCause = 'unauthenticated' | 'rate_limited';

/** At most this many distinct caller names are listed in a summary (the count covers them all). */
const MAX_CALLERS = 20;

interface Pending { count: number; first: number; last: number; callers: Set<string> }

export class RefusalSummary {
  private readonly pending = new Map<RefusalCause, Pending>();
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();

  constructor(private readonly o: {
    record(events: WardenEvent[]): Promise<void>;
    intervalMs: number;
    /** Called for every refused request (the metric). */
    onRefused?(cause: RefusalCause): void;
  }) {
    this.timer = setInterval(() => void this.flush(), o.intervalMs);
    this.timer.unref();
  }

  /** A refused request: counted now, summarized at the next flush. */
  add(cause: RefusalCause, caller: string | null): void {
    try { this.o.onRefused?.(cause); } catch { /* metrics must not fail a request */ }
    const now = Date.now();
    let p = this.pending.get(cause);
    if (!p) { p = { count: 0, first: now, last: now, callers: new Set() }; this.pending.set(cause, p); }
    p.count++;
    p.last = now;
    if (caller && p.callers.size < MAX_CALLERS) p.callers.add(caller);
  }

  /** Writes one summary record per cause seen since the last flush. */
  flush(): Promise<void> {
    const next = this.flushing.then(() => this.write());
    this.flushing = next.catch(() => undefined);
    return next;
  }

  /** Stops the timer and writes what is pending. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush();
  }

  private async write(): Promise<void> {
    if (this.pending.size === 0) return;
    const events = [...this.pending].map(([cause, p]) => makeEvent({
      kind: 'ledger.read',
      source: 'warden',
      actor: cause === 'unauthenticated' ? 'anonymous' : [...p.callers].join(','),
      decision: 'denied',
      reason: `${p.count} request(s) ${cause === 'unauthenticated' ? 'without a valid token (401)' : 'over the rate limit (429)'} between ${new Date(p.first).toISOString()} and ${new Date(p.last).toISOString()} (summarized, not recorded one by one)`,
      attrs: { summary: cause, count: p.count, first_ts: p.first, last_ts: p.last, status: cause === 'unauthenticated' ? 401 : 429 },
    }));
    this.pending.clear();
    try {
      await this.o.record(events);
    } catch {
      // Counted in the metric already; the ledger reports its own errors.
    }
  }
}
