/**
 * Events that arrive from in-process hooks (NATS JetStream, HTTP ingest) enter the ledger here,
 * exactly once. JetStream dedupes publishes by message ID, and HTTP clients resend after a lost
 * answer; what neither covers is a redelivery after the sidecar appended a batch but crashed before
 * acknowledging it. So the agent keeps the IDs of recently appended events (bounded, oldest evicted),
 * rebuilt from the spool's tail at start, and skips an event whose ID it already holds.
 *
 * Batches are serialized: the duplicate check and the append form one step, so a message redelivered
 * while its first copy is still being appended cannot slip through.
 */
import type { WardenEvent } from '../core/event.js';
import type { Redactor } from '../core/redact.js';
import type { LedgerRecord } from '../ledger/spool/record.js';
import type { WardenMetrics } from './metrics.js';

/** Insertion-ordered set of event IDs with a size bound; the oldest go first. */
export class RecentEventIds {
  private readonly ids = new Set<string>();
  constructor(readonly max = 100_000) {}
  has(id: string): boolean { return this.ids.has(id); }
  add(id: string): void {
    if (this.ids.has(id)) return;
    this.ids.add(id);
    if (this.ids.size > this.max) this.ids.delete(this.ids.values().next().value!);
  }
  get size(): number { return this.ids.size; }
}

/** Passes spool records through, remembering their event IDs (the start-up scan of the spool's tail). */
export async function* rememberIds(records: AsyncIterable<LedgerRecord>, ids: RecentEventIds): AsyncGenerator<LedgerRecord> {
  for await (const rec of records) {
    ids.add(rec.event.event_id);
    yield rec;
  }
}

/** How events arrived: hook transports, or `history` (records the Temporal collector rebuilt from history). */
export type IngestTransport = 'nats' | 'http' | 'history';

export interface IngestResult { accepted: number; duplicates: number }

export interface EventIngestParts {
  /** Appends durably (the pipeline's record: spool, then metrics). */
  record(events: WardenEvent[]): Promise<void>;
  ids: RecentEventIds;
  metrics?: WardenMetrics;
  /** Applied to input, reason, error and string attrs: a hook should have redacted already; a hand-made client may not have. */
  redactor?: Redactor;
}

export class EventIngest {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly p: EventIngestParts) {}

  /**
   * Appends the events not seen before (in order); resolves once they are durable. `skip` drops more
   * (e.g. records the ledger holds under another event ID); it runs inside the serialized step, so
   * no append can land between its answer and this append.
   */
  ingest(events: WardenEvent[], transport: IngestTransport, skip?: (ev: WardenEvent) => boolean): Promise<IngestResult> {
    const next = this.chain.then(() => this.appendNew(events, transport, skip));
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Counts events refused as malformed. */
  invalid(transport: IngestTransport, n = 1): void {
    this.p.metrics?.ingestEvents.inc({ transport, result: 'invalid' }, n);
  }

  private async appendNew(events: WardenEvent[], transport: IngestTransport, skip?: (ev: WardenEvent) => boolean): Promise<IngestResult> {
    const fresh: WardenEvent[] = [];
    const inBatch = new Set<string>();
    for (const ev of events) {
      if (this.p.ids.has(ev.event_id) || inBatch.has(ev.event_id) || skip?.(ev)) continue;
      inBatch.add(ev.event_id);
      fresh.push(this.redact(ev));
    }
    if (fresh.length > 0) await this.p.record(fresh);
    for (const ev of fresh) this.p.ids.add(ev.event_id);
    const duplicates = events.length - fresh.length;
    if (fresh.length) this.p.metrics?.ingestEvents.inc({ transport, result: 'accepted' }, fresh.length);
    if (duplicates) this.p.metrics?.ingestEvents.inc({ transport, result: 'duplicate' }, duplicates);
    return { accepted: fresh.length, duplicates };
  }

  private redact(ev: WardenEvent): WardenEvent {
    const r = this.p.redactor;
    if (!r) return ev;
    return {
      ...ev,
      input: ev.input === null || ev.input === undefined ? null : r.redactValue(ev.input),
      reason: ev.reason === null ? null : r.redactText(ev.reason),
      error: ev.error === null ? null : r.redactText(ev.error),
      attrs: Object.fromEntries(Object.entries(ev.attrs).map(([k, v]) => [k, typeof v === 'string' ? r.redactText(v) : v])),
    };
  }
}
