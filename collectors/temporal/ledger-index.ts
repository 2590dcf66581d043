/**
 * What the ledger already holds for Temporal runs, so the history collector adds only what is missing:
 * one key per run start, per run end, per activity's final outcome and per gap record, whoever wrote
 * it (a hook's claim or a record rebuilt from history), and which of the two wrote it. Rebuilt at start
 * from the spool's tail (the same scan that rebuilds the ingest's event-ID index), then fed every
 * durable event. Bounded: the oldest keys go first.
 *
 * The other direction: a hook's record that arrives after the collector rebuilt the same record from
 * history (the worker's transport was down longer than `settleMs`) is superseded (`heldFromHistory`):
 * ingest skips it, so a run never has two starts, two ends or two outcomes of one activity.
 */
import type { WardenEvent } from '../../core/event.js';
import type { LedgerRecord } from '../../ledger/spool/record.js';

/** The identity of a record the collector may add, or null for records it never adds. */
export function temporalRecordKey(ev: Pick<WardenEvent, 'source' | 'kind' | 'workflow_id' | 'run_id' | 'attrs'>): string | null {
  if (ev.source !== 'temporal' || !ev.workflow_id || !ev.run_id) return null;
  const run = `${ev.workflow_id}\0${ev.run_id}`;
  switch (ev.kind) {
    case 'workflow.started': return `${run}\0start`;
    case 'workflow.completed':
    case 'workflow.failed': return `${run}\0end`;
    case 'activity.completed':
    case 'activity.failed': return typeof ev.attrs.activity_id === 'string' ? `${run}\0activity\0${ev.attrs.activity_id}` : null;
    case 'collector.gap': return `${run}\0gap`;
    default: return null;
  }
}

export class TemporalLedgerIndex {
  /** Record key -> written from history (`attrs.from_history`), else by a hook. The first writer stays. */
  private readonly keys = new Map<string, boolean>();

  constructor(readonly max = 500_000) {}

  has(ev: WardenEvent): boolean {
    const k = temporalRecordKey(ev);
    return k !== null && this.keys.has(k);
  }

  /**
   * A hook's record (a claim) whose run start, run end or activity outcome the ledger already holds
   * as a record rebuilt from history: appending it would give the run a second start or end.
   */
  heldFromHistory(ev: WardenEvent): boolean {
    if (ev.attrs.from_history === true) return false;
    const k = temporalRecordKey(ev);
    return k !== null && this.keys.get(k) === true;
  }

  add(ev: WardenEvent): void {
    const k = temporalRecordKey(ev);
    if (k === null || this.keys.has(k)) return;
    this.keys.set(k, ev.attrs.from_history === true);
    if (this.keys.size > this.max) this.keys.delete(this.keys.keys().next().value!);
  }

  addAll(events: readonly WardenEvent[]): void {
    for (const ev of events) this.add(ev);
  }

  get size(): number { return this.keys.size; }
}

/** Passes spool records through, remembering the Temporal records among them (the start-up scan). */
export async function* rememberTemporalRecords(records: AsyncIterable<LedgerRecord>, index: TemporalLedgerIndex): AsyncGenerator<LedgerRecord> {
  for await (const rec of records) {
    index.add(rec.event);
    yield rec;
  }
}
