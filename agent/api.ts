/**
 * The compliance HTTP API, beside /metrics on the sidecar's port. Bearer tokens map to roles:
 * `compliance` reads the ledger, `admin` can also change policies and breakers, `ingest` may only post
 * events. Tokens are compared in constant time; health and metrics stay open. Every ledger read,
 * allowed or denied, is itself written to the ledger (who asked what, how many records).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WardenEvent } from '../core/event.js';
import { makeEvent } from '../core/event.js';
import { checkEvent } from '../core/event-validation.js';
import type { Redactor } from '../core/redact.js';
import { LedgerError, parseTimeArg, type LedgerFilter, type LedgerRecord, type VerifyResult } from '../ledger/index.js';
import { csvCell, csvHeader, csvRow } from '../ledger/compliance/format.js';
import * as c from '../ledger/compliance/queries.js';
import { eventPages } from '../ledger/compliance/export.js';
import type { LedgerStore } from '../ledger/store/index.js';
import { BreakerRequestError } from '../policies/engine.js';
import type { BreakerAdmin } from './policies.js';

import type { ROLES } from './config.js';

export type Role = (typeof ROLES)[number];

export interface ApiToken { name: string; role: Role; token: string }

/** Where the API reads the ledger from (the spool today; the ClickHouse store where configured). */
export interface LedgerReader {
  events(filter: LedgerFilter): AsyncIterable<LedgerRecord>;
  lineage(correlationId: string): Promise<LedgerRecord[]>;
  /** The hash chain, and (when there are any) the signed checkpoints against the spool. */
  verify(): Promise<VerifyResult & { checkpoints?: { ok: boolean } }>;
}

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
  ingest?(events: WardenEvent[]): Promise<{ accepted: number; duplicates: number }>;
  /** Counts events /v1/events refused as malformed. */
  onInvalidEvents?(n: number): void;
  /** Circuit breakers (policies.file configured): listed by compliance and admin, forced by admin. */
  breakers?: BreakerAdmin | null;
}

/** A request the API refuses, with the HTTP status it gets. */
class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}, readonly details: Record<string, unknown> = {}) {
    super(message);
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Roles a route accepts: admin may do everything compliance may. */
const READ_ROLES: Role[] = ['compliance', 'admin'];

export class ComplianceApi {
  private readonly tokens: { name: string; role: Role; digest: Buffer }[];
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly o: ApiOptions) {
    this.tokens = o.tokens.map((t) => ({ name: t.name, role: t.role, digest: digest(t.token) }));
  }

  /** Handles `/v1/...`; returns false for paths that are not the API's. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://warden');
    if (!url.pathname.startsWith('/v1/')) return false;
    void this.serve(req, res, url);
    return true;
  }

  private async serve(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    let caller: { name: string; role: Role } | null = null;
    let rows = 0;
    let status = 200;
    try {
      if (Buffer.byteLength(req.url ?? '') > this.o.maxUrlBytes) throw new ApiError(414, `the URL is longer than ${this.o.maxUrlBytes} bytes`);
      const declared = Number(req.headers['content-length'] ?? 0);
      if (declared > this.o.maxBodyBytes) throw new ApiError(413, `the request body is larger than ${this.o.maxBodyBytes} bytes`);
      caller = this.authenticate(req);
      this.rateLimit(caller.name);
      const body = await drainBody(req, this.o.maxBodyBytes, url.pathname === '/v1/events');
      rows = await this.route(req, res, url, caller.role, body, caller.name);
    } catch (err) {
      const e = err instanceof ApiError ? err
        : err instanceof LedgerError ? new ApiError(400, err.message)
        : err instanceof BreakerRequestError ? new ApiError(err.status, err.message)
        : new ApiError(500, 'internal error');
      status = e.status;
      if (!res.headersSent) {
        res.writeHead(e.status, { 'content-type': 'application/json', ...e.headers }).end(`${JSON.stringify({ error: e.message, ...e.details })}\n`);
      } else {
        res.destroy(err as Error);
      }
    }
    if (url.pathname.startsWith('/v1/ledger/')) await this.audit(caller, url, status, rows);
  }

  private authenticate(req: IncomingMessage): { name: string; role: Role } {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new ApiError(401, 'missing bearer token: send "Authorization: Bearer <token>"', { 'www-authenticate': 'Bearer' });
    const given = digest(m[1]);
    // Compare against every token, always, so timing says nothing about which (or whether one) matched.
    let found: { name: string; role: Role } | null = null;
    for (const t of this.tokens) if (timingSafeEqual(given, t.digest) && !found) found = t;
    if (!found) throw new ApiError(401, 'unknown token', { 'www-authenticate': 'Bearer error="invalid_token"' });
    return found;
  }

  private rateLimit(name: string): void {
    const now = Date.now();
    const cap = this.o.ratePerMinute;
    const b = this.buckets.get(name) ?? { tokens: cap, at: now };
    b.tokens = Math.min(cap, b.tokens + ((now - b.at) / 60_000) * cap);
    b.at = now;
    this.buckets.set(name, b);
    if (b.tokens < 1) throw new ApiError(429, `rate limit of ${cap} requests per minute exceeded`, { 'retry-after': String(Math.ceil(((1 - b.tokens) / cap) * 60)) });
    b.tokens -= 1;
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL, role: Role, body: Buffer, callerName = ''): Promise<number> {
    const path = url.pathname;
    const need = (roles: Role[]) => {
      if (!roles.includes(role)) throw new ApiError(403, `role "${role}" may not ${req.method} ${path} (needs ${roles.join(' or ')})`);
    };
    if (path.startsWith('/v1/ledger/')) {
      need(READ_ROLES);
      if (req.method !== 'GET') throw new ApiError(405, `${path} accepts GET only`, { allow: 'GET' });
      if (path === '/v1/ledger/events') return this.stream(res, this.o.reader.events(filterFrom(url)), formatFrom(url));
      if (path.startsWith('/v1/ledger/lineage/')) {
        const cid = decodeURIComponent(path.slice('/v1/ledger/lineage/'.length));
        if (!cid) throw new ApiError(400, 'lineage needs a correlation ID: /v1/ledger/lineage/<correlation-id>');
        return this.stream(res, toAsync(await this.o.reader.lineage(cid)), formatFrom(url));
      }
      if (path === '/v1/ledger/verify') {
        const r = await this.o.reader.verify();
        const ok = r.ok && (r.checkpoints?.ok ?? true);
        res.writeHead(ok ? 200 : 409, { 'content-type': 'application/json' }).end(`${JSON.stringify({ ...r, ok })}\n`);
        return r.records;
      }
      const store = this.o.store;
      const queries: Record<string, () => Promise<number>> = {
        '/v1/ledger/approvals': async () => {
          const f = { ...timeFrom(url, ['actor', 'queue', 'limit', 'per_day', 'format']), actor: str(url, 'actor'), queue: str(url, 'queue'), limit: num(url, 'limit') };
          return url.searchParams.get('per_day') === '1'
            ? rowsOut(res, await c.approvalsPerDay(store!, f), c.APPROVALS_PER_DAY_COLUMNS, url)
            : rowsOut(res, await c.approvals(store!, f), c.APPROVAL_COLUMNS, url);
        },
        '/v1/ledger/versions': async () => rowsOut(res, await c.versions(store!, { ...timeFrom(url, ['queue', 'format']), queue: str(url, 'queue') }), c.VERSION_COLUMNS, url),
        '/v1/ledger/unapproved': async () => rowsOut(res, await c.unapproved(store!, { ...timeFrom(url, ['queue', 'format']), queue: str(url, 'queue') }), c.UNAPPROVED_COLUMNS, url),
        '/v1/ledger/decisions': async () => {
          const f = { ...timeFrom(url, ['actor', 'queue', 'policy', 'limit', 'counts', 'format']), actor: str(url, 'actor'), queue: str(url, 'queue'), policy: str(url, 'policy'), limit: num(url, 'limit') };
          return url.searchParams.get('counts') === '1'
            ? rowsOut(res, await c.decisionCounts(store!, f), c.DECISION_COUNT_COLUMNS, url)
            : rowsOut(res, await c.decisions(store!, f), c.DECISION_COLUMNS, url);
        },
        '/v1/ledger/export': async () => {
          const f = filterFrom(url);
          const fmt = formatFrom(url);
          return this.stream(res, flatten(eventPages(store!, { ...f, kind: f.kind }, 5000)), fmt === 'json' ? 'jsonl' : fmt);
        },
      };
      const q = queries[path];
      if (q) {
        if (!store) throw new ApiError(503, `${path} queries the ClickHouse store, and this sidecar ships to none (clickhouse.mode is off)`);
        return q();
      }
      throw new ApiError(404, `no such ledger endpoint: ${path} (events, lineage/<id>, verify, approvals, versions, unapproved, decisions, export)`);
    }
    if (path === '/v1/breakers' || path.startsWith('/v1/breakers/')) {
      const b = this.o.breakers;
      if (!b) throw new ApiError(404, 'no policies are configured on this sidecar (set policies.file)');
      if (path === '/v1/breakers') {
        need(READ_ROLES);
        if (req.method !== 'GET') throw new ApiError(405, `${path} accepts GET only`, { allow: 'GET' });
        const list = b.list();
        res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify({ breakers: list })}\n`);
        return list.length;
      }
      // POST /v1/breakers/<scope>/(open|close|auto)?actor=NAME[&policy=P]: admin only, recorded with the actor.
      need(['admin']);
      if (req.method !== 'POST') throw new ApiError(405, `${path} accepts POST only`, { allow: 'POST' });
      const m = /^\/v1\/breakers\/([^/]+)\/(open|close|auto)$/.exec(path);
      if (!m) throw new ApiError(404, 'use POST /v1/breakers/<scope>/open|close|auto?actor=NAME (scope e.g. bullmq.queue.ingest)');
      const actor = url.searchParams.get('actor') || callerName;
      if (!/^[\w.@ -]{1,100}$/.test(actor)) throw new ApiError(400, 'actor must be a short name (letters, digits, . _ @ - and spaces)');
      let scope: string;
      try { scope = decodeURIComponent(m[1]); } catch { throw new ApiError(400, `the scope in ${path} is not valid percent-encoding`); }
      const states = await b.force(scope, m[2] === 'close' ? 'closed' : m[2] as 'open' | 'auto', actor, url.searchParams.get('policy') ?? undefined, callerName);
      res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify({ breakers: states })}\n`);
      return states.length;
    }
    if (path === '/v1/events') {
      need(['ingest', 'admin']);
      if (req.method !== 'POST') throw new ApiError(405, '/v1/events accepts POST only', { allow: 'POST' });
      return this.ingestEvents(res, body);
    }
    throw new ApiError(404, `no such endpoint: ${path}`);
  }

  /**
   * `POST /v1/events` with `{"events":[...]}`: every event is checked first, and a batch with any bad
   * event appends nothing (400 naming the index and field). Resent events are skipped (counted as
   * duplicates), so a client may retry a batch whose answer it lost.
   */
  private async ingestEvents(res: ServerResponse, body: Buffer): Promise<number> {
    if (!this.o.ingest) throw new ApiError(503, 'event ingest is not wired in this sidecar');
    let doc: unknown;
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch (err) {
      throw new ApiError(400, `the body is not JSON: ${(err as Error).message}`);
    }
    const list = (doc as { events?: unknown } | null)?.events;
    if (!Array.isArray(list)) throw new ApiError(400, 'the body must be {"events":[...]} (an array of Warden events)');
    const events: WardenEvent[] = [];
    let first: { index: number; field: string; message: string } | null = null;
    let invalid = 0;
    for (let i = 0; i < list.length; i++) {
      const c = checkEvent(list[i]);
      if (c.ok) events.push(c.event);
      else { invalid++; first ??= { index: i, field: c.field, message: c.message }; }
    }
    if (first) {
      this.o.onInvalidEvents?.(invalid);
      throw new ApiError(400, `events[${first.index}].${first.message} (${invalid} of ${list.length} events invalid; nothing was appended)`, {}, { index: first.index, field: first.field, invalid });
    }
    const r = events.length ? await this.o.ingest(events) : { accepted: 0, duplicates: 0 };
    res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(r)}\n`);
    return r.accepted;
  }

  /** Streams records as JSON lines (default), a JSON array, or CSV, minding backpressure. */
  private async stream(res: ServerResponse, records: AsyncIterable<LedgerRecord>, format: 'jsonl' | 'json' | 'csv'): Promise<number> {
    const type = format === 'csv' ? 'text/csv; charset=utf-8' : format === 'json' ? 'application/json' : 'application/x-ndjson';
    let n = 0;
    const write = async (s: string) => { if (!res.write(s)) await new Promise((r) => res.once('drain', r)); };
    for await (const rec of records) {
      if (n === 0) {
        res.writeHead(200, { 'content-type': type });
        if (format === 'csv') await write(csvHeader());
        if (format === 'json') await write('[');
      }
      const line = format === 'csv' ? csvRow(rec) : JSON.stringify({ seq: rec.seq, hash: rec.hash, ...rec.event });
      await write(format === 'json' ? `${n ? ',' : ''}${line}` : format === 'csv' ? line : `${line}\n`);
      n++;
    }
    if (n === 0) {
      res.writeHead(200, { 'content-type': type });
      if (format === 'csv') await write(csvHeader());
      if (format === 'json') await write('[');
    }
    res.end(format === 'json' ? ']\n' : '');
    return n;
  }

  private async audit(caller: { name: string; role: Role } | null, url: URL, status: number, rows: number): Promise<void> {
    const ev = makeEvent({
      kind: 'ledger.read',
      source: 'warden',
      actor: caller?.name ?? 'anonymous',
      decision: status < 400 ? 'allowed' : 'denied',
      reason: this.o.redactor.redactText(`GET ${url.pathname}${url.search}`).slice(0, 2000),
      attrs: { role: caller?.role ?? null, status, rows },
    });
    try {
      await this.o.record([ev]);
    } catch {
      // The read was answered; failing to audit it must not crash the API (the ledger reports its own errors).
    }
  }
}

function filterFrom(url: URL): LedgerFilter {
  const p = url.searchParams;
  const allowed = new Set(['correlation_id', 'job_id', 'queue', 'kind', 'since', 'until', 'limit', 'format']);
  for (const key of p.keys()) if (!allowed.has(key)) throw new ApiError(400, `unknown filter "${key}": use ${[...allowed].join(', ')}`);
  const limit = p.get('limit');
  if (limit !== null && !/^[1-9]\d{0,8}$/.test(limit)) throw new ApiError(400, `limit must be a positive whole number, not ${JSON.stringify(limit)}`);
  const kinds = p.getAll('kind').flatMap((k) => k.split(',')).filter(Boolean);
  return {
    correlationId: p.get('correlation_id') ?? undefined,
    jobId: p.get('job_id') ?? undefined,
    queue: p.get('queue') ?? undefined,
    kind: kinds.length ? kinds : undefined,
    since: p.get('since') ? parseTimeArg(p.get('since')!) : undefined,
    until: p.get('until') ? parseTimeArg(p.get('until')!) : undefined,
    limit: limit ? Number(limit) : undefined,
  };
}

/** Time range plus the other keys a route accepts; anything else is a 400 naming it. */
function timeFrom(url: URL, others: string[]): { since?: number; until?: number } {
  const allowed = new Set(['since', 'until', ...others]);
  for (const key of url.searchParams.keys()) if (!allowed.has(key)) throw new ApiError(400, `unknown filter "${key}": use ${[...allowed].join(', ')}`);
  const since = url.searchParams.get('since');
  const until = url.searchParams.get('until');
  return { since: since ? parseTimeArg(since) : undefined, until: until ? parseTimeArg(until) : undefined };
}

const str = (url: URL, key: string) => url.searchParams.get(key) ?? undefined;

function num(url: URL, key: string): number | undefined {
  const v = url.searchParams.get(key);
  if (v === null) return undefined;
  if (!/^[1-9]\d{0,8}$/.test(v)) throw new ApiError(400, `${key} must be a positive whole number, not ${JSON.stringify(v)}`);
  return Number(v);
}

/** Query rows as a JSON array (default), JSON lines or CSV with the query's own columns. */
function rowsOut(res: ServerResponse, rows: object[], columns: readonly string[], url: URL): number {
  const f = url.searchParams.get('format') ?? 'json';
  if (f === 'csv') {
    const lines = [columns.join(','), ...rows.map((r) => columns.map((c) => csvCell((r as Record<string, unknown>)[c])).join(','))];
    res.writeHead(200, { 'content-type': 'text/csv; charset=utf-8' }).end(`${lines.join('\r\n')}\r\n`);
  } else if (f === 'jsonl') {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' }).end(rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
  } else if (f === 'json') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(rows)}\n`);
  } else {
    throw new ApiError(400, `format must be json, jsonl or csv, not ${JSON.stringify(f)}`);
  }
  return rows.length;
}

async function* flatten<T>(pages: AsyncIterable<T[]>): AsyncIterable<T> {
  for await (const page of pages) yield* page;
}

function formatFrom(url: URL): 'jsonl' | 'json' | 'csv' {
  const f = url.searchParams.get('format') ?? 'jsonl';
  if (f !== 'jsonl' && f !== 'json' && f !== 'csv') throw new ApiError(400, `format must be jsonl, json or csv, not ${JSON.stringify(f)}`);
  return f;
}

async function* toAsync<T>(items: T[]): AsyncIterable<T> {
  yield* items;
}

/** Reads a request body (kept only when `keep`), refusing one larger than the limit even without content-length. */
function drainBody(req: IncomingMessage, max: number, keep: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) { reject(new ApiError(413, `the request body is larger than ${max} bytes`)); req.pause(); return; }
      if (keep) chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
