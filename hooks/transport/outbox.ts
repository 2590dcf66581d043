/**
 * The in-process outbox between a hook's `emit()` and a transport (NATS JetStream or HTTP ingest).
 *
 * `emit()` serializes the event, checks two bounds (events, bytes) and pushes: it never waits for the
 * network and never throws. A background pump sends batches, retrying with backoff while the
 * transport is down; events are removed only once the transport confirmed them, so a retry resends
 * the same event IDs (deduplicated downstream). When a bound is hit the event is dropped and counted
 * rather than the queue growing; once a send succeeds again, a `collector.gap` event reports what was
 * dropped and when. Timers are unref'd: telemetry never keeps the user's process alive.
 */
import { makeEvent, type EventSource, type WardenEvent } from '../../core/event.js';

/** One serialized event waiting to be sent. */
export interface OutboxItem {
  id: string;
  source: EventSource;
  json: string;
  bytes: number;
}

/** Moves batches to the sidecar. `send` resolves once every item is accepted; it throws otherwise. */
export interface Transport {
  /** Short name used in reports: 'nats' or 'http'. */
  readonly name: string;
  send(items: OutboxItem[]): Promise<void>;
  close(): Promise<void>;
}

/** The receiver refused the batch for good (not worth retrying); `index` names one bad item when known. */
export class TransportRejectedError extends Error {
  override readonly name = 'TransportRejectedError';
  constructor(message: string, readonly index?: number, readonly tooLarge = false) {
    super(message);
  }
}

/** The receiver asks to wait before the next attempt (HTTP 429/503 with Retry-After). Retried. */
export class TransportBusyError extends Error {
  override readonly name = 'TransportBusyError';
  constructor(message: string, readonly retryAfterMs: number) {
    super(message);
  }
}

export type OutboxLogger = (level: 'info' | 'warn', message: string, fields?: Record<string, unknown>) => void;

export interface OutboxOptions {
  /** Events held while the transport is slow or down (default 10 000); beyond, new events are dropped. */
  maxEvents?: number;
  /** Bytes of serialized events held (default 16 MiB). */
  maxBytes?: number;
  /** Largest batch per send, by events (default 500) and bytes (default 512 KiB). */
  batchEvents?: number;
  batchBytes?: number;
  /** How long a partial batch waits for more events before it is sent (default 20 ms). */
  lingerMs?: number;
  /** Backoff between failed sends: from min doubling up to max (defaults 100 ms, 5 s). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Told about outages, recoveries and rejected batches; nothing is logged without it. */
  logger?: OutboxLogger;
}

export interface OutboxStats {
  transport: string;
  /** Events the transport confirmed (gap reports included). */
  sent: number;
  /** Events dropped since start: full outbox, refused by the receiver, not serializable, or after close. */
  dropped: number;
  droppedBy: Record<DropReason, number>;
  /** Events waiting (in flight included) and their bytes. */
  buffered: number;
  bufferedBytes: number;
  /** Gap reports delivered. */
  gapReports: number;
  /** Current largest batch (lowered after the receiver refused one as too large). */
  batchEvents: number;
  /** Set while sends fail: since when, and the last error. */
  failing: { since: number; error: string } | null;
}

export type DropReason = 'overflow' | 'rejected' | 'unserializable' | 'invalid' | 'closed';

/** Drops not yet reported: they become one `collector.gap` event once the transport works. */
interface PendingGap {
  count: number;
  by: Record<DropReason, number>;
  sources: Set<EventSource>;
  firstDrop: number;
  lastDrop: number;
  /** When the transport went down during this drop period (null: it stayed up, the outbox was just full). */
  downSince: number | null;
  /** When the transport came back (set by the first confirmed send after the outage). */
  downTo?: number;
  lastError: string | null;
}

const noDrops = (): Record<DropReason, number> => ({ overflow: 0, rejected: 0, unserializable: 0, invalid: 0, closed: 0 });
const SOURCES: ReadonlySet<unknown> = new Set<EventSource>(['bullmq', 'temporal', 'celery', 'warden']);

export class Outbox {
  private readonly o: Required<Omit<OutboxOptions, 'logger'>> & { logger?: OutboxLogger };
  // A deque over an array: `head` moves forward, the array is compacted now and then (O(1) amortized).
  private items: OutboxItem[] = [];
  private head = 0;
  private bytes = 0;
  private gap: PendingGap | null = null;
  /** A built gap report waiting to be confirmed: resent as is (same event ID) until it is. */
  private report: OutboxItem | null = null;
  private timer: NodeJS.Timeout | null = null;
  private pumping: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private closed = false;
  /** Lowered when the receiver says a batch was too large (HTTP 413): later batches are smaller. */
  private batchLimit: number;
  private confirmedSinceDrop = false;
  private readonly idle: (() => void)[] = [];
  private readonly st = { sent: 0, dropped: 0, droppedBy: noDrops(), gapReports: 0, failing: null as OutboxStats['failing'] };

  constructor(private readonly transport: Transport, opts: OutboxOptions = {}) {
    this.o = {
      maxEvents: opts.maxEvents ?? 10_000,
      maxBytes: opts.maxBytes ?? 16 * 1024 * 1024,
      batchEvents: opts.batchEvents ?? 500,
      batchBytes: opts.batchBytes ?? 512 * 1024,
      lingerMs: opts.lingerMs ?? 20,
      minBackoffMs: opts.minBackoffMs ?? 100,
      maxBackoffMs: opts.maxBackoffMs ?? 5000,
      logger: opts.logger,
    };
    this.batchLimit = this.o.batchEvents;
  }

  /** Queues the event; returns at once. Never throws: what cannot be queued is dropped and counted. */
  emit(event: WardenEvent): void {
    try {
      if (this.closed) return this.drop(event?.source, 'closed');
      // Only what routing needs is checked here (cheap); the sidecar validates the whole event.
      if (typeof event?.event_id !== 'string' || !SOURCES.has(event.source)) return this.drop(event?.source, 'invalid');
      if (this.length >= this.o.maxEvents) return this.drop(event.source, 'overflow');
      const json = JSON.stringify(event);
      // UTF-16 length: exact for ASCII, an undercount for other text; cheap, and the bound stays a bound of the same order.
      const bytes = json.length;
      if (this.bytes + bytes > this.o.maxBytes) return this.drop(event.source, 'overflow');
      this.items.push({ id: event.event_id, source: event.source, json, bytes });
      this.bytes += bytes;
      this.schedule();
    } catch {
      this.drop(event?.source, 'unserializable');
    }
  }

  stats(): OutboxStats {
    return {
      transport: this.transport.name,
      sent: this.st.sent,
      dropped: this.st.dropped,
      droppedBy: { ...this.st.droppedBy },
      buffered: this.length + (this.report ? 1 : 0),
      bufferedBytes: this.bytes,
      gapReports: this.st.gapReports,
      batchEvents: this.batchLimit,
      failing: this.st.failing && { ...this.st.failing },
    };
  }

  /** Sends what is queued now; resolves true once empty (gap report included), false at the timeout. */
  flush(timeoutMs = 5000): Promise<boolean> {
    if (this.isIdle()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => { remove(); resolve(false); }, timeoutMs);
      t.unref?.();
      const done = () => { clearTimeout(t); resolve(true); };
      const remove = () => { const i = this.idle.indexOf(done); if (i >= 0) this.idle.splice(i, 1); };
      this.idle.push(done);
      this.kick(true);
    });
  }

  /** Flushes for up to `timeoutMs`, then stops; later emits are dropped (counted as 'closed'). */
  async close(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const flushed = await this.flush(timeoutMs);
    this.closed = true;
    this.kick(true);
    // A send in flight against a dead transport can take its own timeout: do not hold the host's
    // shutdown past ours (what it carries stays counted as buffered).
    if (this.pumping) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.pumping, new Promise<void>((r) => { timer = setTimeout(r, Math.max(0, deadline - Date.now())); timer.unref(); })]);
      clearTimeout(timer);
    }
    await this.transport.close().catch(() => undefined);
    return flushed;
  }

  private get length(): number {
    return this.items.length - this.head;
  }

  private isIdle(): boolean {
    return this.length === 0 && !this.report && !this.gap && !this.pumping;
  }

  private drop(source: EventSource | undefined, reason: DropReason): void {
    this.st.dropped++;
    this.st.droppedBy[reason]++;
    this.confirmedSinceDrop = false;
    const now = Date.now();
    const g = (this.gap ??= { count: 0, by: noDrops(), sources: new Set(), firstDrop: now, lastDrop: now, downSince: this.st.failing?.since ?? null, lastError: this.st.failing?.error ?? null });
    g.count++;
    g.by[reason]++;
    g.lastDrop = now;
    if (SOURCES.has(source)) g.sources.add(source!);
    this.schedule(); // the report goes out with the next confirmed send
  }

  private schedule(): void {
    if (this.pumping || this.closed) return;
    if (this.length >= this.batchLimit) return this.kick(false);
    if (this.timer) return;
    this.timer = setTimeout(() => { this.timer = null; this.startPump(); }, this.o.lingerMs);
    this.timer.unref?.();
  }

  /** Starts the pump now (or wakes it from a backoff sleep when `wakeBackoff`). */
  private kick(wakeBackoff: boolean): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    if (this.pumping) {
      if (wakeBackoff) { const w = this.wake; this.wake = null; w?.(); }
      return;
    }
    this.startPump();
  }

  private startPump(): void {
    if (this.pumping) return;
    // Nothing may reach the host as an unhandled rejection: an unexpected error only ends this round.
    this.pumping = this.pump().catch((err: Error) => this.log('warn', `warden: outbox error: ${err?.message}`)).finally(() => {
      this.pumping = null;
      if (this.length > 0 && !this.closed) this.schedule();
      if (this.isIdle()) for (const f of this.idle.splice(0)) f();
    });
  }

  private async pump(): Promise<void> {
    let backoff = this.o.minBackoffMs;
    for (;;) {
      const batch = this.nextBatch();
      if (batch.length === 0) return;
      try {
        await this.transport.send(batch);
        this.confirmed(batch);
        backoff = this.o.minBackoffMs;
      } catch (err) {
        if (err instanceof TransportRejectedError && err.tooLarge && batch.length > 1) {
          this.batchLimit = Math.max(1, Math.floor(batch.length / 2)); // split, and send again
          continue;
        }
        if (err instanceof TransportRejectedError) {
          this.rejected(batch, err);
          continue;
        }
        this.failed(err as Error);
        if (this.closed) return; // close() gave up on the rest: it stays counted as buffered
        await this.sleep(err instanceof TransportBusyError ? Math.max(backoff, Math.min(err.retryAfterMs, 60_000)) : backoff);
        if (this.closed) return;
        backoff = Math.min(backoff * 2, this.o.maxBackoffMs);
      }
    }
  }

  /** The gap report (if one is due) first, then queued events up to the batch limits. */
  private nextBatch(): OutboxItem[] {
    const batch: OutboxItem[] = [];
    let bytes = 0;
    // Report drops once the transport is known to work again: a send confirmed after the last drop,
    // or nothing else to send (then the report itself is the probe).
    if (!this.report && this.gap && !this.st.failing && (this.confirmedSinceDrop || this.length === 0)) this.report = this.buildReport(this.gap);
    if (this.report) { batch.push(this.report); bytes += this.report.bytes; }
    for (let i = this.head; i < this.items.length && batch.length < this.batchLimit; i++) {
      const it = this.items[i];
      if (batch.length > 0 && bytes + it.bytes > this.o.batchBytes) break;
      batch.push(it);
      bytes += it.bytes;
    }
    return batch;
  }

  private confirmed(batch: OutboxItem[]): void {
    let n = batch.length;
    if (this.report && batch[0] === this.report) {
      this.report = null;
      this.st.gapReports++;
      n--;
    }
    this.shift(n);
    this.st.sent += batch.length;
    this.confirmedSinceDrop = true;
    this.reachable();
  }

  private reachable(): void {
    if (!this.st.failing) return;
    this.log('info', `warden: ${this.transport.name} transport is back`, { down_since: new Date(this.st.failing.since).toISOString() });
    this.st.failing = null;
    if (this.gap) this.gap.downTo = Date.now();
  }

  private rejected(batch: OutboxItem[], err: TransportRejectedError): void {
    const bad = err.index !== undefined && err.index >= 0 && err.index < batch.length ? batch[err.index] : null;
    this.log('warn', `warden: ${this.transport.name} refused ${bad ? 'an event' : `a batch of ${batch.length} events`}; dropped: ${err.message}`);
    const victims = bad ? [bad] : batch;
    let fromHead = 0;
    for (const it of victims) {
      if (it === this.report) { this.report = null; continue; } // a refused report is not itself reported
      if (bad) this.removeItem(it);
      else fromHead++;
      this.drop(it.source, 'rejected');
    }
    this.shift(fromHead); // a whole refused batch is the head of the queue
    if (this.gap) this.gap.lastError = err.message;
    this.reachable(); // a refusal is an answer: the transport is up
  }

  private failed(err: Error): void {
    if (!this.st.failing) {
      this.st.failing = { since: Date.now(), error: err.message };
      this.log('warn', `warden: ${this.transport.name} transport unavailable; buffering events (bounded) and retrying`, { error: err.message });
    } else {
      this.st.failing.error = err.message;
    }
    if (this.gap) { this.gap.downSince ??= this.st.failing.since; this.gap.lastError = err.message; }
  }

  private buildReport(g: PendingGap & { downTo?: number }): OutboxItem {
    this.gap = null;
    const iso = (ms: number) => new Date(ms).toISOString();
    const why = g.downSince !== null
      ? `${this.transport.name} unavailable from ${iso(g.downSince)} to ${iso(g.downTo ?? Date.now())}`
      : g.by.overflow > 0
        ? `outbox full (${this.o.maxEvents} events / ${this.o.maxBytes} bytes) from ${iso(g.firstDrop)} to ${iso(g.lastDrop)}`
        : `${this.transport.name} refused them (or they could not be serialized) from ${iso(g.firstDrop)} to ${iso(g.lastDrop)}`;
    // Never "warden" (the sidecar refuses that source from ingest): several sources are all named in
    // attrs.dropped_sources, and the report carries the first of them.
    const hookSources = [...g.sources].filter((s) => s !== 'warden').sort();
    const source: EventSource = hookSources[0] ?? 'bullmq';
    const ev = makeEvent({
      kind: 'collector.gap',
      source,
      reason: `${g.count} events dropped: ${why}`,
      error: g.lastError,
      attrs: {
        transport: this.transport.name,
        dropped: g.count,
        dropped_overflow: g.by.overflow,
        dropped_rejected: g.by.rejected,
        dropped_unserializable: g.by.unserializable,
        dropped_invalid: g.by.invalid,
        dropped_closed: g.by.closed,
        dropped_sources: [...g.sources].sort().join(','),
        first_drop_ts: g.firstDrop,
        last_drop_ts: g.lastDrop,
        down_from_ts: g.downSince,
        down_to_ts: g.downSince !== null ? (g.downTo ?? Date.now()) : null,
      },
    });
    const json = JSON.stringify(ev);
    return { id: ev.event_id, source, json, bytes: json.length };
  }

  private shift(n: number): void {
    for (let i = 0; i < n && this.head < this.items.length; i++) {
      this.bytes -= this.items[this.head].bytes;
      this.head++;
    }
    if (this.head === this.items.length) { this.items = []; this.head = 0; }
    else if (this.head > 1024 && this.head * 2 > this.items.length) { this.items = this.items.slice(this.head); this.head = 0; }
  }

  private removeItem(it: OutboxItem): void {
    const i = this.items.indexOf(it, this.head);
    if (i < 0) return;
    this.items.splice(i, 1);
    this.bytes -= it.bytes;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = null; resolve(); }, ms);
      t.unref?.();
      this.wake = () => { clearTimeout(t); resolve(); };
    });
  }

  private log(level: 'info' | 'warn', message: string, fields?: Record<string, unknown>): void {
    try {
      this.o.logger?.(level, message, fields);
    } catch {
      // a logger must not break delivery
    }
  }
}
