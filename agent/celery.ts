/**
 * Wires the Celery collector into the sidecar: its sink deduplicates (event IDs seen recently, and
 * one terminal record per task, whichever path produced it first: live event or result backend) and
 * appends through the pipeline (spool, then metrics, spans and policies). What it needs from the
 * ledger at start (the task IDs with a terminal record, the newest Celery event time) comes from
 * the same scan of the spool's tail that restores the positions.
 */
import type { Logger } from 'pino';
import { CeleryCollector } from '../collectors/celery/collector.js';
import type { PriorTask } from '../collectors/celery/translate.js';
import type { WardenEvent } from '../core/event.js';
import { DEFAULT_INPUT_LIMITS } from '../core/input.js';
import type { Redactor } from '../core/redact.js';
import type { LedgerRecord } from '../ledger/spool/record.js';
import type { WardenConfig } from './config.js';
import type { RecentEventIds } from './ingest.js';
import type { WardenMetrics } from './metrics.js';
import { JOB_PROGRESS_KINDS, JOB_TERMINAL_KINDS } from '../core/kinds.js';

/**
 * Celery task IDs with a terminal record in the ledger (bounded, oldest forgotten), the newest Celery
 * event time, and what the ledger holds of tasks not done yet (attempts started and failed), so a
 * restarted sidecar continues their attempt numbers instead of guessing them.
 */
export class CeleryLedgerIndex {
  private readonly terminals = new Set<string>();
  private readonly open = new Map<string, PriorTask>();
  lastSeenMs: number | null = null;

  constructor(private readonly max = 500_000, private readonly maxOpen = 200_000) {}

  hasTerminal(taskId: string): boolean { return this.terminals.has(taskId); }

  /** The ledger's records of a task without a terminal record. */
  prior(taskId: string): PriorTask | undefined { return this.open.get(taskId); }

  observe(ev: WardenEvent): void {
    if (ev.source !== 'celery') return;
    if (this.lastSeenMs === null || ev.ts > this.lastSeenMs) this.lastSeenMs = ev.ts;
    if (!ev.job_id) return;
    if (JOB_TERMINAL_KINDS.has(ev.kind)) {
      this.open.delete(ev.job_id);
      if (!this.terminals.has(ev.job_id)) {
        this.terminals.add(ev.job_id);
        if (this.terminals.size > this.max) this.terminals.delete(this.terminals.values().next().value!);
      }
      return;
    }
    if (this.terminals.has(ev.job_id) || !JOB_PROGRESS_KINDS.has(ev.kind)) return;
    let p = this.open.get(ev.job_id);
    if (!p) {
      p = { queue: null, name: null, added: false, started: new Map(), failed: new Set(), recorded: new Map() };
      this.open.set(ev.job_id, p);
      if (this.open.size > this.maxOpen) this.open.delete(this.open.keys().next().value!);
    }
    p.queue ??= ev.queue;
    p.name ??= ev.job_name;
    if (ev.kind === 'job.added') p.added = true;
    else if (ev.attempt !== null && ev.kind === 'job.started') { p.started.set(ev.attempt, ev.ts); p.recorded.set(ev.event_id, ev.attempt); }
    else if (ev.attempt !== null) { p.failed.add(ev.attempt); p.recorded.set(ev.event_id, ev.attempt); }
  }
}

/** Passes spool records through, indexing Celery's (the start-up scan of the spool's tail). */
export async function* rememberCelery(records: AsyncIterable<LedgerRecord>, index: CeleryLedgerIndex): AsyncGenerator<LedgerRecord> {
  for await (const rec of records) {
    index.observe(rec.event);
    yield rec;
  }
}

export interface CeleryParts {
  record(events: WardenEvent[]): Promise<void>;
  ids: RecentEventIds;
  index: CeleryLedgerIndex;
  redactor: Redactor;
  metrics: WardenMetrics;
  logger: Logger;
}

/** Null when celery.brokerUrl is not set. */
export function newCeleryCollector(config: WardenConfig, p: CeleryParts): CeleryCollector | null {
  const c = config.celery;
  if (!c.brokerUrl) return null;
  const sink = async (events: WardenEvent[]): Promise<void> => {
    const fresh: WardenEvent[] = [];
    const batchTerminals = new Set<string>();
    for (const ev of events) {
      if (p.ids.has(ev.event_id)) continue;
      if (JOB_TERMINAL_KINDS.has(ev.kind) && ev.job_id) {
        if (p.index.hasTerminal(ev.job_id) || batchTerminals.has(ev.job_id)) continue;
        batchTerminals.add(ev.job_id);
      }
      fresh.push(ev);
    }
    if (fresh.length === 0) return;
    await p.record(fresh);
    for (const ev of fresh) {
      p.ids.add(ev.event_id);
      p.index.observe(ev);
      if (ev.kind === 'collector.gap') p.metrics.gaps.inc({ queue: ev.queue ?? 'celery' });
    }
  };
  return new CeleryCollector({
    brokerUrl: c.brokerUrl,
    resultBackend: c.resultBackend,
    metadata: c.metadata,
    redactor: p.redactor,
    inputLimits: { ...DEFAULT_INPUT_LIMITS, maxInputBytes: config.redaction.maxInputBytes },
    reconcileIntervalMs: c.reconcileIntervalMs,
    reconcileGraceMs: c.reconcileGraceMs,
    amqp: c.amqp,
    lastSeenMs: p.index.lastSeenMs,
    hasTerminal: (id) => p.index.hasTerminal(id),
    prior: (id) => p.index.prior(id),
    sink,
    observer: {
      onGap: (ev) => p.logger.warn({ gap: ev.attrs }, ev.reason ?? 'celery gap'),
      onError: (where, err) => {
        p.metrics.collectorErrors.inc({ where: `celery_${where.split(' ')[0]}` });
        p.logger.warn({ where, err: err.message }, 'celery collector error (retrying)');
      },
    },
  });
}
