/**
 * Streaming export of ledger events from ClickHouse to JSONL or CSV, every ledger, each event once.
 * It pages through the table by event ID (`event_id > last ORDER BY event_id LIMIT 1 BY event_id
 * LIMIT n`), so memory holds one page however large the export, and it reports progress against a
 * `uniqExact(event_id)` taken first.
 *
 * The lines are those of the CLI's other ledger commands and of the HTTP export: CSV and JSONL both
 * come from the one formatter, ./format.ts (csvHeader/csvRow, jsonlLine `{"seq", "hash", ...event}`).
 */
import { csvHeader, csvRow, jsonlLine } from './format.js';
import { countEvents, eventPagesOf, type EventFilter } from './queries.js';
import { InvalidFilterError } from '../errors.js';
import type { LedgerRecord } from '../spool/record.js';
import type { LedgerStore } from '../store/store.js';

export type ExportFormat = 'jsonl' | 'csv';

export interface ExportProgress {
  /** Events written so far. */
  done: number;
  /** Events matching the filter when the export started (a count(); capped by the limit). */
  total: number;
  /** The last seq written (0 before the first page). */
  lastSeq: number;
}

export interface ExportOptions {
  /** Events per SELECT. Default 5000. */
  pageSize?: number;
  /** Called after every page (and once before the first, with done = 0). */
  onProgress?: (p: ExportProgress) => void;
}

export interface ExportResult {
  rows: number;
  total: number;
  lastSeq: number;
}

export { jsonlLine };

/**
 * Pages of records matching `filter` (its `afterEventId` is where paging starts, its `limit` caps the
 * whole export), each event once across every ledger, in event ID order, each page at most `pageSize`
 * records. Paging is by event ID, not seq: seqs are per ledger.
 */
export function eventPages(store: LedgerStore, filter: EventFilter, pageSize = 5000): AsyncGenerator<LedgerRecord[]> {
  return eventPagesOf(store, filter, pageSize);
}

/**
 * Writes every event matching `filter` to `write`, as JSONL or CSV (header first), one page at a
 * time. `write` may return a promise (e.g. waiting for a stream's 'drain'); the next page is read
 * only after it resolves.
 */
export async function exportEvents(
  store: LedgerStore,
  filter: EventFilter,
  format: ExportFormat,
  write: (chunk: string) => void | Promise<void>,
  options: ExportOptions = {},
): Promise<ExportResult> {
  if (format !== 'jsonl' && format !== 'csv') throw new InvalidFilterError(`export format must be jsonl or csv, not ${JSON.stringify(format)}`);
  const total = await countEvents(store, filter);
  const progress: ExportProgress = { done: 0, total, lastSeq: 0 };
  options.onProgress?.({ ...progress });
  if (format === 'csv') await write(csvHeader());
  for await (const page of eventPages(store, filter, options.pageSize)) {
    const encode = format === 'csv' ? csvRow : jsonlLine;
    await write(page.map(encode).join(''));
    progress.done += page.length;
    progress.lastSeq = page[page.length - 1].seq;
    // Rows shipped after the count make done exceed total; the total follows so progress stays <= 100%.
    if (progress.done > progress.total) progress.total = progress.done;
    options.onProgress?.({ ...progress });
  }
  return { rows: progress.done, total: progress.total, lastSeq: progress.lastSeq };
}
