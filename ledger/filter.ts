/**
 * The one filter for reads of the ledger, whether from the spool (a sequential pass) or from a store
 * (SQL), and its one validation: the CLI, the API and both readers take the same shape and reject the
 * same mistakes with the same words.
 */
import { EVENT_KINDS, EVENT_SOURCES } from '../core/event.js';
import { RECEIVED_VIA } from '../core/kinds.js';
import { InvalidFilterError } from './errors.js';

/** `since <= ts < until`, epoch milliseconds; either end open when absent. */
export interface TimeRange {
  since?: number;
  until?: number;
}

/**
 * Where records came from: `source` (bullmq, temporal, warden) and `receivedVia`, the credential an
 * ingested record came through (`attrs.received_via`: `http:<token name>`, `nats:<stream>`), or
 * `none` for records the sidecar observed or wrote itself (no received_via).
 */
export interface ProvenanceFilter {
  source?: string;
  receivedVia?: string;
}

/** The receivedVia value that selects the sidecar's own records (its collector's, its decisions, its audit). */
export const RECEIVED_VIA_NONE = 'none';

export function checkProvenance(f: ProvenanceFilter): void {
  checkString(f.source, 'source');
  checkString(f.receivedVia, 'receivedVia');
  if (f.source !== undefined && !(EVENT_SOURCES as readonly string[]).includes(f.source)) {
    throw new InvalidFilterError(`unknown source ${JSON.stringify(f.source)}; sources are: ${EVENT_SOURCES.join(', ')}`);
  }
  if (f.receivedVia !== undefined && f.receivedVia !== RECEIVED_VIA_NONE && !/^(http|nats):./.test(f.receivedVia)) {
    throw new InvalidFilterError(`received_via must be http:<token name>, nats:<stream> or ${RECEIVED_VIA_NONE} (records the sidecar observed or wrote itself), not ${JSON.stringify(f.receivedVia)}`);
  }
}

/** Does a record's event pass the provenance filter (the spool's side of it; the store's is SQL)? */
export function matchesProvenance(e: { source: string; attrs: Record<string, unknown> }, f: ProvenanceFilter): boolean {
  if (f.source !== undefined && e.source !== f.source) return false;
  if (f.receivedVia === undefined) return true;
  const via = e.attrs[RECEIVED_VIA];
  return f.receivedVia === RECEIVED_VIA_NONE ? typeof via !== 'string' : via === f.receivedVia;
}

export interface LedgerFilter extends TimeRange, ProvenanceFilter {
  correlationId?: string;
  /** A BullMQ job ID or a Celery task ID. */
  jobId?: string;
  /** A Temporal workflow ID. */
  workflowId?: string;
  queue?: string;
  /** Who approved, denied, forced or read (the event's `actor`). */
  actor?: string;
  /** The model version the work asked for or was served (the event's `model_version`). */
  modelVersion?: string;
  /** One kind or any of several (core/event.ts EVENT_KINDS). */
  kind?: string | readonly string[];
  /** At most this many records, in seq order. */
  limit?: number;
  /** Only records after this seq (store paging: `seq > afterSeq ORDER BY seq LIMIT n`). */
  afterSeq?: number;
  /** Read no further than this seq (beside a live spool: its lastSeq, so only acknowledged records). */
  toSeq?: number;
}

const EPOCH_MS_MAX = Number.MAX_SAFE_INTEGER;

export function checkString(value: unknown, name: string): void {
  if (value !== undefined && typeof value !== 'string') throw new InvalidFilterError(`filter.${name} must be a string`);
}

export function checkRange(r: TimeRange): void {
  for (const key of ['since', 'until'] as const) {
    const v = r[key];
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0 && v <= EPOCH_MS_MAX)) {
      throw new InvalidFilterError(`filter.${key} must be epoch milliseconds (a whole number >= 0); use parseTimeArg for text like "2h" or an ISO date`);
    }
  }
  if (r.since !== undefined && r.until !== undefined && r.until < r.since) {
    throw new InvalidFilterError(`until (${isoOrMs(r.until)}) is before since (${isoOrMs(r.since)}): nothing can match; swap them`);
  }
}

const isoOrMs = (ms: number) => (ms <= 8.64e15 ? new Date(ms).toISOString() : String(ms));

export function checkCount(v: number | undefined, name: string): void {
  if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) throw new InvalidFilterError(`filter.${name} must be a non-negative integer`);
}

/** The kinds asked for, or null for any; unknown kinds are refused, naming the known ones. */
export function checkKinds(kind: string | readonly string[] | undefined): string[] | null {
  if (kind === undefined) return null;
  const kinds = typeof kind === 'string' ? [kind] : [...kind];
  const known = new Set<string>(EVENT_KINDS);
  const unknown = kinds.filter((k) => typeof k !== 'string' || !known.has(k));
  if (unknown.length > 0) {
    throw new InvalidFilterError(`unknown event kind ${unknown.map((k) => JSON.stringify(k)).join(', ')}; kinds are: ${EVENT_KINDS.join(', ')}`);
  }
  return kinds;
}

/** Validates a whole filter; returns its kinds (null for any). */
export function checkLedgerFilter(f: LedgerFilter): string[] | null {
  checkString(f.correlationId, 'correlationId');
  checkString(f.jobId, 'jobId');
  checkString(f.workflowId, 'workflowId');
  checkString(f.queue, 'queue');
  checkString(f.actor, 'actor');
  checkString(f.modelVersion, 'modelVersion');
  checkProvenance(f);
  checkRange(f);
  checkCount(f.limit, 'limit');
  checkCount(f.afterSeq, 'afterSeq');
  checkCount(f.toSeq, 'toSeq');
  return checkKinds(f.kind);
}
