/**
 * What both stores share: the text they send for query/exec/insert and how they read results. A
 * subclass only moves text to its engine and bytes back (`send`), and maps its engine's errors.
 */
import type { LedgerRecord } from '../spool/record.js';
import { StoreClosedError, StoreQueryError, clickHouseCode, sqlHead } from './errors.js';
import { recordToRow, LEDGER_INSERT_COLUMNS, LEDGER_TABLE } from './rows.js';
import { migrate } from './schema.js';
import { LEDGER_ID_COLUMN, LEGACY_LEDGER_ID } from './ledger-id.js';
import { insertTabSeparated } from './sql.js';
import { LedgerInsertBuilder } from './fast-rows.js';
import type { LedgerStore } from './store.js';

export type SendMode = 'rows' | 'none';

/** The ledger ID first; `seq` stays last (a TabSeparated line must not end in an empty field). */
const INSERT_COLUMNS: readonly string[] = [LEDGER_ID_COLUMN, ...LEDGER_INSERT_COLUMNS];

const utf8 = new TextDecoder('utf-8', { fatal: true });

export abstract class SqlStore implements LedgerStore {
  abstract readonly kind: 'server' | 'embedded';
  abstract readonly target: string;
  protected closed = false;

  /** Runs `text` on the engine. With mode 'rows', returns the response body (JSONEachRow bytes). */
  protected abstract send(text: string, mode: SendMode): Promise<Uint8Array | null>;
  protected abstract shutdown(): Promise<void>;

  async migrate(): Promise<void> {
    await this.beforeMigrate();
    await migrate(this);
  }

  /** Hook for the server store to create its database. */
  protected async beforeMigrate(): Promise<void> {}

  async insert(records: LedgerRecord[], ledgerId: string = LEGACY_LEDGER_ID): Promise<void> {
    if (records.length === 0) return;
    await this.run(this.insertText(records, ledgerId), 'none');
  }

  insertText(records: LedgerRecord[], ledgerId: string = LEGACY_LEDGER_ID): string {
    const rows = records.map(recordToRow) as Array<ReturnType<typeof recordToRow> & { ledger_id?: string }>;
    for (const row of rows) row.ledger_id = ledgerId;
    return insertTabSeparated(LEDGER_TABLE, INSERT_COLUMNS, rows);
  }

  lineEncoder(ledgerId: string = LEGACY_LEDGER_ID): LedgerInsertBuilder {
    return new LedgerInsertBuilder(INSERT_COLUMNS, ledgerId);
  }

  async query<T = Record<string, unknown>>(sql: string): Promise<T[]> {
    const text = `${trimStatement(sql)}\nFORMAT JSONEachRow`;
    const body = (await this.run(text, 'rows')) as Uint8Array;
    return parseJsonEachRow<T>(body, sql);
  }

  async exec(sql: string): Promise<void> {
    // Sent as is: an INSERT's data may end in significant whitespace (TSV's empty last field).
    await this.run(sql, 'none');
  }

  async ping(): Promise<boolean> {
    if (this.closed) return false;
    try {
      const rows = await this.query<{ ok: number }>('SELECT 1 AS ok');
      return rows.length === 1 && Number(rows[0].ok) === 1;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.shutdown();
  }

  private async run(text: string, mode: SendMode): Promise<Uint8Array | null> {
    if (this.closed) throw new StoreClosedError(this.target);
    if (text.includes('\u0000')) {
      // chdb takes SQL as a C string and would silently cut it here; refuse on both for one behavior.
      throw new StoreQueryError(sqlHead(text), null, 'the SQL text contains a NUL character; write it as \\x00 inside a literal (sql.ts does)');
    }
    return this.send(text, mode);
  }
}

/** Drops trailing whitespace and semicolons, so a FORMAT clause can follow and both engines agree. */
export function trimStatement(sql: string): string {
  return sql.replace(/[\s;]+$/, '');
}

export function parseJsonEachRow<T>(body: Uint8Array, sql: string): T[] {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new StoreQueryError(
      sqlHead(sql),
      null,
      'the result is not valid UTF-8 (a String column holds bytes that are not text); select such columns with hex()',
    );
  }
  const rows: T[] = [];
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    if (end > start) {
      const line = text.slice(start, end);
      try {
        rows.push(JSON.parse(line) as T);
      } catch {
        // A server that fails mid-stream appends the exception text to a 200 response.
        const code = clickHouseCode(line);
        throw new StoreQueryError(sqlHead(sql), code, code !== null ? firstLine(line) : `unreadable result line: ${firstLine(line)}`);
      }
    }
    start = end + 1;
  }
  return rows;
}

export function firstLine(text: string): string {
  const t = text.trim();
  const i = t.indexOf('\n');
  const line = i === -1 ? t : t.slice(0, i);
  return line.length > 500 ? `${line.slice(0, 497)}...` : line;
}
