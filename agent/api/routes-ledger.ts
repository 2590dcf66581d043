/**
 * Ledger reads (`GET /v1/ledger/...`, compliance and admin): events, lineage and verify from the
 * spool; approvals, versions, unapproved, decisions and export from the ClickHouse store the ledger is
 * shipped to (the same queries as the CLI).
 */
import type { Checkpoint, InclusionProof, LedgerFilter, LedgerRecord, VerifyResult } from '../../ledger/index.js';
import * as c from '../../ledger/compliance/queries.js';
import { eventPages } from '../../ledger/compliance/export.js';
import type { LedgerStore } from '../../ledger/store/index.js';
import type { Role } from './auth.js';
import { ApiError } from './errors.js';
import { filterFrom, formatFrom, num, PROVENANCE_KEYS, provenanceFrom, str, timeFrom } from './params.js';
import { flatten, sendJson, sendRows, streamRecords, toAsync } from './respond.js';
import type { Route, RouteContext } from './router.js';

/** Where the API reads the ledger from (the spool today; the ClickHouse store where configured). */
export interface LedgerReader {
  events(filter: LedgerFilter): AsyncIterable<LedgerRecord>;
  lineage(correlationId: string): Promise<LedgerRecord[]>;
  /** The hash chain, and (when there are any) the signed checkpoints against the spool. */
  verify(): Promise<VerifyResult & { checkpoints?: { ok: boolean } }>;
  /**
   * The inclusion proof document of one event against the latest signed checkpoint, as the spool
   * gives it, and whether the spool reproduces the signed root (a verifier checks it either way).
   */
  proof?(eventId: string): Promise<{ proof: InclusionProof; reproduces: boolean }>;
  /** The latest signed checkpoint (null before the first) and the last periodic self-verify. */
  checkpoint?(): Promise<{ checkpoint: Checkpoint | null; checkpoints: number; self_verify: unknown }>;
}

/** Roles that may read the ledger: admin may do everything compliance may. */
export const READ_ROLES: readonly Role[] = ['compliance', 'admin'];

export function ledgerRoutes(o: { reader: LedgerReader; store?: LedgerStore | null }): Route[] {
  const read = (path: string | RegExp, handle: Route['handle']): Route => ({ method: 'GET', path, roles: READ_ROLES, handle });
  /** A route answered by the ClickHouse store: 503 when this sidecar ships to none. */
  const fromStore = (path: string, query: (store: LedgerStore, ctx: RouteContext) => Promise<number>): Route => read(path, async (ctx) => {
    if (!o.store) throw new ApiError(503, `${path} queries the ClickHouse store, and this sidecar ships to none (clickhouse.mode is off)`, { code: 'WARDEN_CONFIG' });
    return query(o.store, ctx);
  });

  return [
    read('/v1/ledger/events', async ({ res, url }) => streamRecords(res, o.reader.events(filterFrom(url)), formatFrom(url))),
    read(/^\/v1\/ledger\/lineage\/(.*)$/, async ({ res, url, params }) => {
      let cid: string;
      try {
        cid = decodeURIComponent(params[0]);
      } catch {
        throw new ApiError(400, 'lineage path is not valid percent-encoding: /v1/ledger/lineage/<correlation-id, percent-encoded>');
      }
      if (!cid) throw new ApiError(400, 'lineage needs a correlation ID: /v1/ledger/lineage/<correlation-id>');
      return streamRecords(res, toAsync(await o.reader.lineage(cid)), formatFrom(url));
    }),
    read('/v1/ledger/verify', async ({ res }) => {
      const r = await o.reader.verify();
      const ok = r.ok && (r.checkpoints?.ok ?? true);
      sendJson(res, ok ? 200 : 409, { ...r, ok });
      return r.records;
    }),
    read(/^\/v1\/ledger\/proof\/([^/]+)$/, async ({ res, params }) => {
      if (!o.reader.proof) throw new ApiError(503, 'inclusion proofs are not available from this reader');
      const id = params[0];
      if (!/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/.test(id)) throw new ApiError(400, 'proof needs an event_id (a ULID): /v1/ledger/proof/<event_id>');
      const { proof, reproduces } = await o.reader.proof(id);
      // The document is served even when the spool no longer reproduces the signed root: the reader
      // verifies it with the public key and sees the failure itself (the status says it too).
      sendJson(res, reproduces ? 200 : 409, { proof, spool_reproduces_checkpoint: reproduces });
      return 1;
    }),
    read('/v1/ledger/checkpoint', async ({ res }) => {
      if (!o.reader.checkpoint) throw new ApiError(503, 'checkpoints are not available from this reader');
      const doc = await o.reader.checkpoint();
      sendJson(res, 200, doc);
      return doc.checkpoint ? 1 : 0;
    }),
    fromStore('/v1/ledger/approvals', async (store, { res, url }) => {
      const f = { ...timeFrom(url, ['actor', 'queue', 'limit', 'per_day', 'format', ...PROVENANCE_KEYS]), actor: str(url, 'actor'), queue: str(url, 'queue'), limit: num(url, 'limit'), ...provenanceFrom(url) };
      return url.searchParams.get('per_day') === '1'
        ? sendRows(res, await c.approvalsPerDay(store, f), c.APPROVALS_PER_DAY_COLUMNS, url)
        : sendRows(res, await c.approvals(store, f), c.APPROVAL_COLUMNS, url);
    }),
    fromStore('/v1/ledger/versions', async (store, { res, url }) =>
      sendRows(res, await c.versions(store, { ...timeFrom(url, ['queue', 'format']), queue: str(url, 'queue') }), c.VERSION_COLUMNS, url)),
    fromStore('/v1/ledger/unapproved', async (store, { res, url }) =>
      sendRows(res, await c.unapproved(store, { ...timeFrom(url, ['queue', 'format']), queue: str(url, 'queue') }), c.UNAPPROVED_COLUMNS, url)),
    fromStore('/v1/ledger/decisions', async (store, { res, url }) => {
      const f = { ...timeFrom(url, ['actor', 'queue', 'policy', 'limit', 'counts', 'format', ...PROVENANCE_KEYS]), actor: str(url, 'actor'), queue: str(url, 'queue'), policy: str(url, 'policy'), limit: num(url, 'limit'), ...provenanceFrom(url) };
      return url.searchParams.get('counts') === '1'
        ? sendRows(res, await c.decisionCounts(store, f), c.DECISION_COUNT_COLUMNS, url)
        : sendRows(res, await c.decisions(store, f), c.DECISION_COLUMNS, url);
    }),
    fromStore('/v1/ledger/export', async (store, { res, url }) => {
      const f = filterFrom(url);
      const fmt = formatFrom(url);
      return streamRecords(res, flatten(eventPages(store, { ...f, kind: f.kind }, 5000)), fmt === 'json' ? 'jsonl' : fmt);
    }),
    // Any other ledger path: still GET-only and for readers (403/405 first), then a 404 naming the endpoints.
    read(/^\/v1\/ledger\/.*$/, async ({ path }) => {
      throw new ApiError(404, `no such ledger endpoint: ${path} (events, lineage/<id>, verify, proof/<event_id>, checkpoint, approvals, versions, unapproved, decisions, export)`);
    }),
  ];
}
