/**
 * The server store: a ClickHouse server over HTTP with @clickhouse/client. Every statement goes as the
 * whole POST body through `exec` (no query parameters, which 18.16 lacks; inserts carry their
 * JSONEachRow rows after the FORMAT clause in the same body), so the server runs exactly the text the
 * embedded store runs.
 */
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { SqlStore, firstLine, type SendMode } from './base.js';
import { StoreQueryError, StoreUnavailableError, clickHouseCode, sqlHead } from './errors.js';
import { sql, sqlIdent } from './sql.js';
import { COMMON_SETTINGS } from './store.js';

export interface ServerStoreOptions {
  url: string;
  user?: string;
  password?: string;
  database?: string;
  requestTimeoutMs?: number;
}

/** Errors that mean "could not talk to the server" rather than "the server said no". */
const NETWORK_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'ECONNABORTED', 'UND_ERR_SOCKET',
]);
/** Network errors raised before a request could reach the server: nothing was applied. */
const NOT_SENT_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** ClickHouse codes for bad credentials: 192/193 on 18.16, 516 on newer servers. */
const AUTH_CODES = new Set([192, 193, 516]);

export class ServerStore extends SqlStore {
  readonly kind = 'server' as const;
  readonly target: string;
  readonly database: string;
  private readonly client: ClickHouseClient;
  private readonly options: ServerStoreOptions;

  constructor(options: ServerStoreOptions) {
    super();
    this.options = options;
    this.target = redactUrl(options.url);
    this.database = options.database ?? 'default';
    this.client = this.makeClient(this.database);
  }

  private makeClient(database: string): ClickHouseClient {
    return createClient({
      url: this.options.url,
      username: this.options.user ?? 'default',
      password: this.options.password ?? '',
      database,
      request_timeout: this.options.requestTimeoutMs ?? 30_000,
      // insert_distributed_sync: an insert into a cluster's Distributed table returns once every shard
      // has its rows (18.16 and later; a plain table ignores it), so the shipper's resync after a
      // failed insert sees what landed and never inserts it again.
      clickhouse_settings: { ...COMMON_SETTINGS, insert_distributed_sync: 1 },
      // Errors reach the caller as named errors; the client's own console logging would duplicate them.
      log: { level: ClickHouseLogLevel.OFF },
    });
  }

  protected override async beforeMigrate(): Promise<void> {
    if (this.database === 'default') return;
    // The configured database may not exist yet; ask through a connection to `default`.
    const admin = this.makeClient('default');
    try {
      const exists = await this.sendWith(admin, `${sql`SELECT count() AS n FROM system.databases WHERE name = ${this.database}`}\nFORMAT JSONEachRow`, 'rows');
      const n = JSON.parse(new TextDecoder().decode(exists as Uint8Array).trim() || '{"n":"0"}') as { n: string };
      if (Number(n.n) === 0) await this.sendWith(admin, `CREATE DATABASE IF NOT EXISTS ${sqlIdent(this.database)}`, 'none');
    } finally {
      await admin.close();
    }
  }

  protected send(text: string, mode: SendMode): Promise<Uint8Array | null> {
    return this.sendWith(this.client, text, mode);
  }

  private async sendWith(client: ClickHouseClient, text: string, mode: SendMode): Promise<Uint8Array | null> {
    let stream: NodeJS.ReadableStream | undefined;
    try {
      const res = await client.exec({
        query: text,
        // Buffer the whole result on the server first, so a failure mid-query is an HTTP error, not a
        // truncated 200 response (which parseJsonEachRow still detects, as a fallback).
        clickhouse_settings: mode === 'rows' ? { wait_end_of_query: 1 } : undefined,
      });
      stream = res.stream;
      const chunks: Buffer[] = [];
      for await (const chunk of res.stream) chunks.push(chunk as Buffer);
      return mode === 'rows' ? Buffer.concat(chunks) : null;
    } catch (err) {
      throw this.mapError(err, text);
    } finally {
      (stream as { destroy?: () => void } | undefined)?.destroy?.();
    }
  }

  private mapError(err: unknown, text: string): Error {
    const e = err as Error & { code?: unknown; cause?: { code?: unknown } };
    const netCode = typeof e?.code === 'string' && NETWORK_CODES.has(e.code) ? e.code
      : typeof e?.cause?.code === 'string' && NETWORK_CODES.has(e.cause.code) ? e.cause.code
      : null;
    const message = String(e?.message ?? err);
    const timedOut = /timeout/i.test(message) && clickHouseCode(message) === null;
    const hungUp = /socket hang up|other side closed/i.test(message);
    if (netCode || timedOut || hungUp) {
      const what = netCode ?? (timedOut ? 'timeout' : 'connection closed');
      const maybeApplied = !(netCode && NOT_SENT_CODES.has(netCode));
      return new StoreUnavailableError(
        this.target,
        `${what} (${firstLine(message)}). Check that the ClickHouse server is running and reachable at this URL ` +
          `(ledger store url), then retry${maybeApplied && text.startsWith('INSERT') ? '; the insert may or may not have been applied' : ''}.`,
        maybeApplied,
        { cause: err },
      );
    }
    // 18.16 answers `Code: 62, e.displayText() = DB::Exception: ...`, which the client leaves in a plain
    // Error; newer servers' errors become ClickHouseError with `code` (digits) and `type` set.
    const typed = typeof e?.code === 'string' && /^\d+$/.test(e.code) ? Number(e.code) : null;
    const code = typed ?? clickHouseCode(message);
    const type = (e as { type?: unknown }).type;
    let detail = firstLine(message.replace(/\s*,?\s*e\.what\(\) = DB::Exception\s*$/, ''));
    if (typed !== null) detail = `Code ${typed}${typeof type === 'string' ? ` (${type})` : ''}: ${detail}`;
    if (code !== null && AUTH_CODES.has(code)) {
      detail += ` (check the user and password configured for ${this.target})`;
    } else if (code === 81) {
      detail += ` (run migrate() to create database ${this.database})`;
    }
    return new StoreQueryError(sqlHead(text), code, detail, { cause: err });
  }

  protected async shutdown(): Promise<void> {
    await this.client.close();
  }
}

/** The URL without credentials, for messages. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}
