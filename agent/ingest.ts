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
import { capInput, DEFAULT_INPUT_LIMITS, type InputLimits } from '../core/input.js';
import { RECEIVED_VIA } from '../core/kinds.js';
import { redactEvent, type Redactor } from '../core/redact.js';
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

/**
 * What an ingest credential may send for: systems (`source`) and queues (BullMQ queues, Temporal task
 * queues). An absent list allows any; an event outside a list is refused (400 naming the scope).
 */
export interface IngestScopes {
  systems?: readonly string[];
  queues?: readonly string[];
}

/** Who sent a batch: its transport, and the value every record gets as `attrs.received_via`. */
export interface IngestCredential {
  transport: IngestTransport;
  /**
   * `http:<token name>` or `nats:<stream>` (see README "What an ingest credential can and cannot do");
   * null for the sidecar's own observations that share this path (Temporal history): facts, not claims.
   */
  via: string | null;
  scopes?: IngestScopes;
}

/** The scope an event falls outside of, or null when the credential may send it. */
export function outOfScope(ev: WardenEvent, scopes: IngestScopes | undefined): { field: string; message: string } | null {
  if (!scopes) return null;
  if (scopes.systems && !scopes.systems.includes(ev.source)) {
    return { field: 'source', message: `source: "${ev.source}" is outside this credential's scope systems=${scopes.systems.join(',')}` };
  }
  if (scopes.queues && (ev.queue === null || !scopes.queues.includes(ev.queue))) {
    return { field: 'queue', message: `queue: ${ev.queue === null ? 'an event without a queue' : `"${ev.queue}"`} is outside this credential's scope queues=${scopes.queues.join(',')}` };
  }
  return null;
}

export interface IngestResult {
  accepted: number;
  /** Skipped: already held by event ID (or by `skip`), or superseded by a record rebuilt from history. */
  duplicates: number;
  /** Of the duplicates: claims superseded by a record the sidecar rebuilt itself (see EventIngestParts.superseded). */
  superseded: number;
}

export interface EventIngestParts {
  /** Appends durably (the pipeline's record: spool, then metrics). */
  record(events: WardenEvent[]): Promise<void>;
  ids: RecentEventIds;
  metrics?: WardenMetrics;
  /** Applied to input, reason, error and string attrs: a hook should have redacted already; a hand-made client may not have. */
  redactor?: Redactor;
  /** The collector's cap on `input` (redaction.maxInputBytes): larger inputs keep a marked preview. */
  inputLimits?: Pick<InputLimits, 'maxInputBytes'>;
  /**
   * A claim (NATS or HTTP) the ledger already holds as the sidecar's own observation under another
   * event ID (a Temporal run's start, end or activity outcome rebuilt from history before the hook's
   * record arrived): skipped, counted as `result="superseded"`; the fact already in the ledger stays.
   */
  superseded?(ev: WardenEvent): boolean;
}

export class EventIngest {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly p: EventIngestParts) {}

  /**
   * Appends the events not seen before (in order); resolves once they are durable. `skip` drops more
   * (e.g. records the ledger holds under another event ID); it runs inside the serialized step, so
   * no append can land between its answer and this append.
   */
  ingest(events: WardenEvent[], from: IngestCredential, skip?: (ev: WardenEvent) => boolean): Promise<IngestResult> {
    const next = this.chain.then(() => this.appendNew(events, from, skip));
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** Counts events refused as malformed. */
  invalid(transport: IngestTransport, n = 1): void {
    this.p.metrics?.ingestEvents.inc({ transport, result: 'invalid' }, n);
  }

  private async appendNew(events: WardenEvent[], from: IngestCredential, skip?: (ev: WardenEvent) => boolean): Promise<IngestResult> {
    const { transport } = from;
    const fresh: WardenEvent[] = [];
    const inBatch = new Set<string>();
    let superseded = 0;
    for (const ev of events) {
      if (this.p.ids.has(ev.event_id) || inBatch.has(ev.event_id) || skip?.(ev)) continue;
      if (from.via !== null && this.p.superseded?.(ev)) { superseded++; continue; }
      inBatch.add(ev.event_id);
      // Redacted first (the pipeline redacts again, idempotently), so the capped preview holds no secret.
      const capped = this.cap(redactEvent(ev, this.p.redactor));
      fresh.push(from.via === null ? capped : this.provenance(capped, from.via));
    }
    if (fresh.length > 0) await this.p.record(fresh);
    for (const ev of fresh) this.p.ids.add(ev.event_id);
    const duplicates = events.length - fresh.length;
    if (fresh.length) this.p.metrics?.ingestEvents.inc({ transport, result: 'accepted' }, fresh.length);
    if (duplicates - superseded) this.p.metrics?.ingestEvents.inc({ transport, result: 'duplicate' }, duplicates - superseded);
    if (superseded) this.p.metrics?.ingestEvents.inc({ transport, result: 'superseded' }, superseded);
    return { accepted: fresh.length, duplicates, superseded };
  }

  /** A claim says who sent it: the sidecar's value replaces whatever the client put there. */
  private provenance(ev: WardenEvent, via: string): WardenEvent {
    return { ...ev, attrs: { ...ev.attrs, [RECEIVED_VIA]: via } };
  }

  /** The collector's input cap, applied to claims too (a marked preview past it). */
  private cap(ev: WardenEvent): WardenEvent {
    if (ev.input === null || ev.input === undefined) return ev;
    // Redaction itself happened before this (redactEvent): only the cap here.
    return { ...ev, input: capInput(ev.input, IDENTITY, this.p.inputLimits ?? DEFAULT_INPUT_LIMITS) };
  }

}

/** capInput without a second redaction pass. */
const IDENTITY = { redactValue: (v: unknown) => v, redactText: (t: string) => t } as unknown as Redactor;
