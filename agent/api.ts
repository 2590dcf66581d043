/**
 * The compliance HTTP API, beside /metrics on the sidecar's port. Bearer tokens map to roles:
 * `compliance` reads the ledger, `admin` can also change policies and breakers, `ingest` may only post
 * events. Tokens are compared in constant time; health and metrics stay open. Every ledger read,
 * allowed or denied, is itself written to the ledger (who asked what, how many records).
 *
 * This file is the request pipeline (limits, auth, rate limit, body, route, error answer, audit); the
 * routes are tables in api/routes-*.ts and the plumbing is in api/.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WardenEvent } from '../core/event.js';
import type { Redactor } from '../core/redact.js';
import type { LedgerStore } from '../ledger/store/index.js';
import type { BreakerAdmin } from './policies.js';
import type { IngestCredential } from './ingest.js';
import { AUDITED_PREFIX, auditRead } from './api/audit.js';
import { RefusalSummary, type RefusalCause } from './api/audit-summary.js';
import { RateLimiter, TokenAuth, type ApiToken, type Caller } from './api/auth.js';
import { errorReply } from './api/errors.js';
import { checkDeclaredSizes, drainBody } from './api/limits.js';
import { Router } from './api/router.js';
import { breakerRoutes } from './api/routes-breakers.js';
import { consoleRoutes, type ConsoleInfo } from './api/routes-console.js';
import type { Overview } from './overview.js';
import { ingestRoutes } from './api/routes-ingest.js';
import { ledgerRoutes, type LedgerReader } from './api/routes-ledger.js';

export type { ApiToken, Role } from './api/auth.js';
export type { LedgerReader } from './api/routes-ledger.js';

export interface ApiOptions {
  tokens: ApiToken[];
  reader: LedgerReader;
  /** The ClickHouse store the ledger is shipped to: the compliance queries run there (same code as the CLI). */
  store?: LedgerStore | null;
  /** Appends audit events (ledger reads) to the ledger. */
  record(events: WardenEvent[]): Promise<void>;
  redactor: Redactor;
  maxBodyBytes: number;
  maxUrlBytes: number;
  /** Requests per minute per token. */
  ratePerMinute: number;
  /** Appends events posted to /v1/events (deduplicated by event_id); unset: the endpoint answers 503. */
  ingest?(events: WardenEvent[], from: IngestCredential): Promise<{ accepted: number; duplicates: number }>;
  /** Counts events /v1/events refused as malformed. */
  onInvalidEvents?(n: number): void;
  /** Circuit breakers (policies.file configured): listed by compliance and admin, forced by admin. */
  breakers?: BreakerAdmin | null;
  /** Requests refused with 401 or 429 are summarized in one audit record per cause this often (default 60 s). */
  refusedSummaryIntervalMs?: number;
  /** Counts each request refused with 401 (unauthenticated) or 429 (rate_limited). */
  onRefused?(cause: RefusalCause): void;
  /** What the console (/ui) is told about this sidecar (GET /v1/console). */
  console?: ConsoleInfo;
  /** The Overview snapshot of the metrics registry (GET /v1/overview). */
  overview?(): Promise<Overview>;
}

export class ComplianceApi {
  private readonly auth: TokenAuth;
  private readonly limiter: RateLimiter;
  private readonly router: Router;
  private readonly refused: RefusalSummary;

  constructor(private readonly o: ApiOptions) {
    this.refused = new RefusalSummary({ record: o.record, intervalMs: o.refusedSummaryIntervalMs ?? 60_000, onRefused: o.onRefused });
    this.auth = new TokenAuth(o.tokens);
    this.limiter = new RateLimiter(o.ratePerMinute);
    this.router = new Router([...ledgerRoutes(o), ...breakerRoutes(o.breakers), ...consoleRoutes(o), ...ingestRoutes(o)]);
  }

  /** Writes the pending summary of refused requests and stops its timer. */
  close(): Promise<void> {
    return this.refused.close();
  }

  /** Handles `/v1/...`; returns false for paths that are not the API's. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://warden');
    if (!url.pathname.startsWith('/v1/')) return false;
    void this.serve(req, res, url);
    return true;
  }

  private async serve(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    let caller: Caller | null = null;
    let rows = 0;
    let status = 200;
    try {
      checkDeclaredSizes(req, this.o);
      caller = this.auth.authenticate(req);
      this.limiter.take(caller.name);
      const path = url.pathname;
      const method = req.method ?? 'GET';
      const found = this.router.resolve(method, path, caller.role);
      // The body is read (and its size limit enforced) before any refusal, as for every request.
      const body = await drainBody(req, this.o.maxBodyBytes, found.route?.body === true);
      if (found.refusal) throw found.refusal;
      rows = await found.route.handle({ req, res, url, path, caller, body, params: found.params });
    } catch (err) {
      const reply = errorReply(err);
      status = reply.status;
      if (!res.headersSent) res.writeHead(reply.status, reply.headers).end(reply.body);
      else res.destroy(err as Error);
    }
    // Refused before anyone is known, or over the limit: counted and summarized, never one record each.
    if (status === 401) this.refused.add('unauthenticated', null);
    else if (status === 429) this.refused.add('rate_limited', caller?.name ?? null);
    else if (url.pathname.startsWith(AUDITED_PREFIX)) await auditRead(this.o, caller, req.method ?? 'GET', url, status, rows);
  }
}
