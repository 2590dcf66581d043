/**
 * Compliance queries over the spool: a streaming filter, and the lineage of one correlation ID.
 * There is no index here (ClickHouse is the indexed store); a query is one sequential pass, with a
 * substring pre-check on raw lines so that records that cannot match are never JSON-parsed.
 */
import { checkLedgerFilter, matchesProvenance, type LedgerFilter } from '../filter.js';
import { readRecords } from './reader.js';
import type { LedgerRecord } from './record.js';

export { parseTimeArg } from './time.js';

export type { LedgerFilter };

export async function* queryLedger(dir: string, filter: LedgerFilter = {}): AsyncGenerator<LedgerRecord> {
  const kinds = checkLedgerFilter(filter);
  const limit = filter.limit ?? Number.POSITIVE_INFINITY;
  if (limit <= 0) return;
  const exact: [keyof LedgerRecord['event'], string][] = [];
  if (filter.correlationId !== undefined) exact.push(['correlation_id', filter.correlationId]);
  if (filter.jobId !== undefined) exact.push(['job_id', filter.jobId]);
  if (filter.workflowId !== undefined) exact.push(['workflow_id', filter.workflowId]);
  if (filter.queue !== undefined) exact.push(['queue', filter.queue]);
  if (filter.actor !== undefined) exact.push(['actor', filter.actor]);
  if (filter.modelVersion !== undefined) exact.push(['model_version', filter.modelVersion]);
  if (filter.source !== undefined) exact.push(['source', filter.source]);

  // Lines are canonical JSON: a string field is written `"name":` + JSON.stringify(value).
  const needles = exact.map(([field, value]) => `"${field}":${JSON.stringify(value)}`);
  const kindNeedles = kinds?.map((k) => `"kind":${JSON.stringify(k)}`);
  const prefilter = (line: string) =>
    needles.every((n) => line.includes(n)) && (!kindNeedles || kindNeedles.some((n) => line.includes(n)));

  let found = 0;
  for await (const r of readRecords(dir, { prefilter, toSeq: filter.toSeq, fromSeq: filter.afterSeq === undefined ? undefined : filter.afterSeq + 1 })) {
    const e = r.event;
    if (!exact.every(([field, value]) => e[field] === value)) continue;
    if (kinds && !kinds.includes(e.kind)) continue;
    if (!matchesProvenance(e, filter)) continue;
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

