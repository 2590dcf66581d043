/**
 * Named errors of the ClickHouse stores. Like the spool's errors, each message says what happened and
 * what the operator can do. Both stores (server and embedded) raise the same classes, so callers never
 * look at driver-specific errors (18.16 sends plain `Error`s with the code only in the text; chdb has
 * its own classes).
 */
import { LedgerError } from '../errors.js';

export class StoreError extends LedgerError {
  override name = 'StoreError';
}

/**
 * The store cannot be reached or opened: server down, connection refused or reset, timeout, chdb not
 * loadable, data directory held by someone else. Retrying later may succeed; nothing was applied
 * unless the error says so (an insert cut off mid-response may or may not have landed — see
 * `maybeApplied`).
 */
export class StoreUnavailableError extends StoreError {
  override name = 'StoreUnavailableError';
  constructor(
    readonly target: string,
    detail: string,
    readonly maybeApplied = false,
    options?: { cause?: unknown },
  ) {
    super(`${/^https?:/i.test(target) ? `ClickHouse at ${target}` : target} is unavailable: ${detail}`, { cause: options?.cause, code: 'WARDEN_UNAVAILABLE' });
  }
}

/**
 * ClickHouse refused or failed a statement. `code` is ClickHouse's numeric error code when it could be
 * read from the message (18.16 sends it only in the text), `sqlHead` the statement's first line.
 */
export class StoreQueryError extends StoreError {
  override name = 'StoreQueryError';
  constructor(
    readonly sqlHead: string,
    /** ClickHouse's numeric error code, when the message carried one. */
    readonly clickhouseCode: number | null,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`ClickHouse rejected \`${sqlHead}\`: ${detail}`, options);
  }
}

export class StoreClosedError extends StoreError {
  override name = 'StoreClosedError';
  constructor(target: string) {
    super(`the ledger store for ${target} is closed; open a new one with openStore()`, { code: 'WARDEN_INTERNAL' });
  }
}

/** A migration failed, or an applied migration no longer matches the code that applied it. */
export class MigrationError extends StoreError {
  override name = 'MigrationError';
  constructor(
    readonly version: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A value that cannot be written into SQL text without changing its meaning (see sql.ts). */
export class UnrepresentableValueError extends StoreError {
  override name = 'UnrepresentableValueError';
  constructor(message: string) {
    super(message, { code: 'WARDEN_USAGE' });
  }
}

/**
 * A row read back from ClickHouse that is not exactly what recordToRow writes for any record: a column
 * was changed after the insert (ALTER TABLE ... UPDATE, a rewritten part) or the row was written by
 * something else. Verification reports it as a damaged record at `seq`.
 */
export class CorruptRowError extends StoreError {
  override name = 'CorruptRowError';
  constructor(
    readonly seq: number | null,
    readonly column: string,
    detail: string,
  ) {
    super(`ledger row${seq === null ? '' : ` seq ${seq}`} is not a faithful ledger row: column ${column} ${detail}`, { code: 'WARDEN_TAMPERED' });
  }
}

/** Returns ClickHouse's error code from an error text like `Code: 62, e.displayText() = ...`. */
export function clickHouseCode(text: string): number | null {
  const m = /\bCode:\s*(\d+)/.exec(text);
  return m ? Number(m[1]) : null;
}

/** The first non-empty line of a statement, trimmed and capped, for error messages. */
export function sqlHead(sql: string): string {
  const line = sql.split('\n').find((l) => l.trim() !== '') ?? '';
  const t = line.trim();
  return t.length > 120 ? `${t.slice(0, 117)}...` : t;
}
