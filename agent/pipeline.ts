/**
 * What happens to a batch of collected events, in order: appended to the ledger spool (durable,
 * hash-chained), then fanned out to metrics and spans, then the queues' positions are recorded.
 * Nothing reaches a metric or a span before it is durable, so a crash never counts an event the
 * ledger does not hold.
 */
import type { Logger } from 'pino';
import type { CollectedBatch } from '../collectors/bullmq/collector.js';
import type { WardenEvent } from '../core/event.js';
import { redactEvent, type Redactor } from '../core/redact.js';
import { streamIdMs } from '../collectors/bullmq/keys.js';
import type { Checkpointer } from '../ledger/checkpoints/checkpoint.js';
import type { Spool } from '../ledger/spool/spool.js';
import type { WardenMetrics } from './metrics.js';
import type { PositionStore, TerminalIndex } from './positions.js';
import type { EventSpanBuilder } from './spans.js';

export interface PipelineParts {
  spool: Spool;
  metrics: WardenMetrics;
  spans: EventSpanBuilder;
  positions: PositionStore;
  terminals: TerminalIndex;
  logger: Logger;
  /** Applied to every event on every path (collected, hook, audit, decisions) before the spool, a span or a metric. */
  redactor: Redactor;
  /** Fed every durable record; signs Merkle checkpoints of the ledger (never throws). */
  checkpointer?: Checkpointer;
}

/** Consumes durable events (the policy engine); must not throw or block. */
export interface DurableEventSink {
  observe(events: WardenEvent[]): void;
}

export class EventPipeline {
  private readonly current = new Map<string, string>();
  /** Fed every durable collected event after the spool append (policies; set once wired). */
  policies: DurableEventSink | null = null;

  constructor(private readonly p: PipelineParts, initial: Map<string, string>) {
    for (const [q, pos] of initial) this.current.set(q, pos);
  }

  /** Events Warden produces itself (e.g. audit of ledger reads): durable first, then counted. */
  async record(events: WardenEvent[]): Promise<void> {
    await this.append(events);
  }

  /** Redacts, appends durably, counts; returns the events as recorded. */
  private async append(events: WardenEvent[]): Promise<WardenEvent[]> {
    const redacted = events.map((ev) => redactEvent(ev, this.p.redactor));
    const records = await this.p.spool.append(redacted);
    this.p.checkpointer?.add(records);
    for (const ev of redacted) this.p.metrics.observe(ev);
    this.p.metrics.ledgerLastSeq.set(records[records.length - 1].seq);
    return redacted;
  }

  /** Events from in-process hooks (NATS, HTTP ingest): durable, counted, and rebuilt into spans. */
  async recordHookEvents(claimed: WardenEvent[]): Promise<void> {
    const events = await this.append(claimed);
    for (const ev of events) this.p.spans.observe(ev, false);
    this.feedPolicies(events); // e.g. Temporal activity retries and outputs drive breakers too
  }

  /** Resolves, once durable, to the spool seq up to which the batch's records are (the fleet advances on its shipping). */
  async handle(collected: CollectedBatch[]): Promise<number> {
    // Collectors redact at the source; this is the net under every path (idempotent).
    const batches = collected.map((b) => ({ ...b, events: b.events.map((ev) => redactEvent(ev, this.p.redactor)) }));
    const events = batches.flatMap((b) => b.events);
    let lastSeq = this.p.spool.lastSeq;
    if (events.length > 0) {
      try {
        const records = await this.p.spool.append(events);
        this.p.checkpointer?.add(records);
        lastSeq = records[records.length - 1].seq;
      } catch (err) {
        this.p.metrics.ledgerAppendErrors.inc();
        throw err; // the collector keeps its position and reads the batch again
      }
    }
    const now = Date.now();
    for (const b of batches) {
      for (const ev of b.events) {
        this.p.metrics.observe(ev);
        this.p.spans.observe(ev, b.instrumented);
        this.p.terminals.add(ev);
        if (ev.kind === 'collector.gap') this.p.metrics.gaps.inc({ queue: b.queue });
      }
      for (const [event, n] of Object.entries(b.entryCounts)) this.p.metrics.streamEntries.inc({ queue: b.queue, event }, n);
      if (b.position.includes('-') && b.position !== '0-0') this.p.metrics.collectorLag.set({ queue: b.queue }, Math.max(0, (now - streamIdMs(b.position)) / 1000));
      this.current.set(b.queue, b.position);
    }
    this.p.metrics.ledgerLastSeq.set(lastSeq);
    this.p.positions.update(this.current, lastSeq);
    this.feedPolicies(events);
    return lastSeq;
  }

  private feedPolicies(events: WardenEvent[]): void {
    if (!this.policies || events.length === 0) return;
    try {
      this.policies.observe(events);
    } catch (err) {
      this.p.logger.warn({ err: (err as Error).message }, 'policy engine failed on a batch (events are in the ledger; decisions for them may be missing)');
    }
  }
}
