/**
 * Compliance queries over the spool: a streaming filter, and the lineage of one correlation ID.
 * There is no index here (ClickHouse is the indexed store); a query is one sequential pass, with a
 * substring pre-check on raw lines so that records that cannot match are never JSON-parsed.
 */
import { EVENT_KINDS } from '../../core/event.js';
import { InvalidFilterError } from '../errors.js';
import { readRecords } from './reader.js';
import type { LedgerRecord } from './record.js';

export { parseTimeArg } from './time.js';

export interface LedgerFilter {
  correlationId?: string;
  jobId?: string;
  queue?: string;
  /** One kind or any of several. */
  kind?: string | string[];
  /** event.ts >= since (epoch ms). */
  since?: number;
  /** event.ts < until (epoch ms). */
  until?: number;
  /** At most this many records, in seq order. */
  limit?: number;
  /** Read no further than this seq (beside a live spool: its lastSeq, so only acknowledged records). */
  toSeq?: number;
}

export async function* queryLedger(dir: string, filter: LedgerFilter = {}): AsyncGenerator<LedgerRecord> {
  const kinds = checkFilter(filter);
  const limit = filter.limit ?? Number.POSITIVE_INFINITY;
  if (limit <= 0) return;
  const exact: [keyof LedgerRecord['event'], string][] = [];
  if (filter.correlationId !== undefined) exact.push(['correlation_id', filter.correlationId]);
  if (filter.jobId !== undefined) exact.push(['job_id', filter.jobId]);
  if (filter.queue !== undefined) exact.push(['queue', filter.queue]);

  // Lines are canonical JSON: a string field is written `"name":` + JSON.stringify(value).
  const needles = exact.map(([field, value]) => `"${field}":${JSON.stringify(value)}`);
  const kindNeedles = kinds?.map((k) => `"kind":${JSON.stringify(k)}`);
  const prefilter = (line: string) =>
    needles.every((n) => line.includes(n)) && (!kindNeedles || kindNeedles.some((n) => line.includes(n)));

  let found = 0;
  for await (const r of readRecords(dir, { prefilter, toSeq: filter.toSeq })) {
    const e = r.event;
    if (!exact.every(([field, value]) => e[field] === value)) continue;
    if (kinds && !kinds.includes(e.kind)) continue;
    if (filter.since !== undefined && e.ts < filter.since) continue;
    if (filter.until !== undefined && e.ts >= filter.until) continue;
    yield r;
    if (++found >= limit) return;
  }
}

/** Every record of a correlation ID, ordered by event time, then seq (the order they were recorded). */
export async function lineage(dir: string, correlationId: string): Promise<LedgerRecord[]> {
  const out: LedgerRecord[] = [];
  for await (const r of queryLedger(dir, { correlationId })) out.push(r);
  return out.sort((a, b) => a.event.ts - b.event.ts || a.seq - b.seq);
}

function checkFilter(f: LedgerFilter): string[] | null {
  for (const key of ['correlationId', 'jobId', 'queue'] as const) {
    if (f[key] !== undefined && typeof f[key] !== 'string') throw new InvalidFilterError(`filter.${key} must be a string`);
  }
  for (const key of ['since', 'until'] as const) {
    if (f[key] !== undefined && !Number.isFinite(f[key])) {
      throw new InvalidFilterError(`filter.${key} must be epoch milliseconds; use parseTimeArg for text like "2h" or an ISO date`);
    }
  }
  if (f.limit !== undefined && !(Number.isSafeInteger(f.limit) && f.limit >= 0)) {
    throw new InvalidFilterError('filter.limit must be a non-negative integer');
  }
  if (f.kind === undefined) return null;
  const kinds = Array.isArray(f.kind) ? f.kind : [f.kind];
  const known = new Set<string>(EVENT_KINDS);
  const unknown = kinds.filter((k) => !known.has(k));
  if (unknown.length > 0) {
    throw new InvalidFilterError(`unknown event kind ${unknown.map((k) => JSON.stringify(k)).join(', ')}; kinds are: ${EVENT_KINDS.join(', ')}`);
  }
  return kinds;
}
