/** Query parameters of the ledger routes: each route names the keys it accepts, anything else is a 400 naming it. */
import { parseTimeArg, type LedgerFilter } from '../../ledger/index.js';
import { ApiError } from './errors.js';

/** The spool filter of /v1/ledger/events and /v1/ledger/export. */
export function filterFrom(url: URL): LedgerFilter {
  const p = url.searchParams;
  const allowed = new Set(['correlation_id', 'job_id', 'workflow_id', 'queue', 'kind', 'actor', 'model_version', 'source', 'received_via', 'since', 'until', 'limit', 'after_seq', 'format']);
  for (const key of p.keys()) if (!allowed.has(key)) throw new ApiError(400, `unknown filter "${key}": use ${[...allowed].join(', ')}`);
  const limit = p.get('limit');
  if (limit !== null && !/^[1-9]\d{0,8}$/.test(limit)) throw new ApiError(400, `limit must be a positive whole number, not ${JSON.stringify(limit)}`);
  const afterSeq = p.get('after_seq');
  if (afterSeq !== null && !/^\d{1,16}$/.test(afterSeq)) throw new ApiError(400, `after_seq must be a whole number (the last seq of the page before), not ${JSON.stringify(afterSeq)}`);
  const kinds = p.getAll('kind').flatMap((k) => k.split(',')).filter(Boolean);
  return {
    correlationId: p.get('correlation_id') ?? undefined,
    jobId: p.get('job_id') ?? undefined,
    workflowId: p.get('workflow_id') ?? undefined,
    queue: p.get('queue') ?? undefined,
    actor: p.get('actor') ?? undefined,
    modelVersion: p.get('model_version') ?? undefined,
    kind: kinds.length ? kinds : undefined,
    ...provenanceFrom(url),
    since: p.get('since') ? parseTimeArg(p.get('since')!) : undefined,
    until: p.get('until') ? parseTimeArg(p.get('until')!) : undefined,
    limit: limit ? Number(limit) : undefined,
    afterSeq: afterSeq ? Number(afterSeq) : undefined,
  };
}

/** `source` and `received_via` (ledger/filter.ts ProvenanceFilter), accepted by every ledger read that lists records. */
export const PROVENANCE_KEYS = ['source', 'received_via'];

export function provenanceFrom(url: URL): { source?: string; receivedVia?: string } {
  const p = url.searchParams;
  return { source: p.get('source') ?? undefined, receivedVia: p.get('received_via') ?? undefined };
}

/** Time range plus the other keys a route accepts; anything else is a 400 naming it. */
export function timeFrom(url: URL, others: string[]): { since?: number; until?: number } {
  const allowed = new Set(['since', 'until', ...others]);
  for (const key of url.searchParams.keys()) if (!allowed.has(key)) throw new ApiError(400, `unknown filter "${key}": use ${[...allowed].join(', ')}`);
  const since = url.searchParams.get('since');
  const until = url.searchParams.get('until');
  return { since: since ? parseTimeArg(since) : undefined, until: until ? parseTimeArg(until) : undefined };
}

export const str = (url: URL, key: string) => url.searchParams.get(key) ?? undefined;

export function num(url: URL, key: string): number | undefined {
  const v = url.searchParams.get(key);
  if (v === null) return undefined;
  if (!/^[1-9]\d{0,8}$/.test(v)) throw new ApiError(400, `${key} must be a positive whole number, not ${JSON.stringify(v)}`);
  return Number(v);
}

/** The record format of the streaming routes (JSON lines by default). */
export function formatFrom(url: URL): 'jsonl' | 'json' | 'csv' {
  const f = url.searchParams.get('format') ?? 'jsonl';
  if (f !== 'jsonl' && f !== 'json' && f !== 'csv') throw new ApiError(400, `format must be jsonl, json or csv, not ${JSON.stringify(f)}`);
  return f;
}
