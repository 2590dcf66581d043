/**
 * The ledger's ClickHouse store: one interface, two implementations that run the same SQL text.
 * - `server` (server.ts): a ClickHouse server over HTTP through @clickhouse/client.
 * - `embedded` (embedded.ts): chdb, ClickHouse in-process, run on a worker thread so its calls never
 *   block the agent's event loop; used when no server URL is configured.
 *
 * Every statement is plain text with values inlined by sql.ts (18.16 has no query parameters), and
 * results come back as JSONEachRow objects from both, with the same settings:
 * `output_format_json_quote_64bit_integers=1` (UInt64/Int64 values arrive as strings on both engines;
 * 26.x would otherwise send bare numbers that lose precision past 2^53) and `max_query_size=64 MiB`.
 */
import path from 'node:path';
import type { LedgerRecord } from '../spool/record.js';
import type { LedgerInsertBuilder } from './fast-rows.js';

export interface LedgerStore {
  readonly kind: 'server' | 'embedded';
  /** Where the store is: the server URL (without credentials), or `embedded ClickHouse (chdb) at <dir>`. For messages and logs. */
  readonly target: string;
  /** Creates or upgrades the schema (schema.ts); re-running is a no-op. */
  migrate(): Promise<void>;
  /**
   * Appends records of one ledger (ledger-id.ts; default: the legacy ledger) to warden_ledger in one
   * INSERT (rows.ts). An empty array is a no-op.
   */
  insert(records: LedgerRecord[], ledgerId?: string): Promise<void>;
  /** The statement insert() sends (encoded apart from sending: the shipper encodes the next batch while one is in flight). */
  insertText(records: LedgerRecord[], ledgerId?: string): string;
  /** The same statement built from spool lines' bytes, added one by one (fast-rows.ts). */
  lineEncoder(ledgerId?: string): LedgerInsertBuilder;
  /**
   * Runs a SELECT (without a FORMAT clause) and returns the rows as objects. 64-bit integers come back
   * as strings, DateTime as `YYYY-MM-DD hh:mm:ss`, Nullable NULL as null.
   */
  query<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  /** Runs a statement that returns no rows (DDL, ALTER, INSERT ... VALUES / SELECT). */
  exec(sql: string): Promise<void>;
  /** True when a `SELECT 1` succeeds now. Never throws. */
  ping(): Promise<boolean>;
  /** Releases connections (server) or stops the worker and closes chdb (embedded). Idempotent. */
  close(): Promise<void>;
}

export interface StoreConfig {
  /** ClickHouse server URL (`http://host:8123`). Without it, the embedded store is used. */
  url?: string;
  user?: string;
  password?: string;
  /** Database on the server (created by migrate() if missing). Default `default`. The embedded store has one database and ignores this. */
  database?: string;
  /** Warden's data directory; the embedded store keeps its data in `<dataDir>/chdb`. */
  dataDir: string;
  /** Per-request timeout for the server store. Default 30 s. */
  requestTimeoutMs?: number;
}

/** Settings both stores apply to every statement (see the module comment). */
export const COMMON_SETTINGS = {
  output_format_json_quote_64bit_integers: 1,
  max_query_size: String(64 * 1024 * 1024),
} as const;

/** Picks the server store when a URL is configured, else the embedded one. */
export async function openStore(config: StoreConfig): Promise<LedgerStore> {
  if (config.url) {
    const { ServerStore } = await import('./server.js');
    return new ServerStore({
      url: config.url,
      user: config.user,
      password: config.password,
      database: config.database,
      requestTimeoutMs: config.requestTimeoutMs,
    });
  }
  const { EmbeddedStore } = await import('./embedded.js');
  return EmbeddedStore.open({ path: path.join(config.dataDir, 'chdb') });
}
