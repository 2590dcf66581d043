/**
 * Values written into SQL text. ClickHouse 18.16 has no server-side parameters (`{name:Type}` came
 * later), so every value a query needs is inlined here, and both stores run the resulting text as is.
 *
 * String literals (`sqlString`), what each character becomes:
 * - `\` -> `\\` and `'` -> `\'` (ClickHouse's backslash escapes; 18.16 and 26.x parse them alike).
 * - every C0 control (U+0000..U+001F, NUL included) and DEL -> `\xHH`. No raw control byte ever
 *   reaches the text: chdb passes SQL as a C string and would cut it at a NUL.
 * - everything else as is, non-ASCII and astral characters included: the text travels as UTF-8 and
 *   ClickHouse strings are bytes, so a literal equals the column value the JSON insert stored.
 * - lone surrogates (U+D800..U+DFFF not in a pair) have no UTF-8 form: encoding would turn them into
 *   U+FFFD and silently match a different string, so they throw UnrepresentableValueError. Ledger
 *   rows never hold them in a typed column (rows.ts keeps such a value in the `spill` column).
 * - length is not limited here; the stores raise ClickHouse's `max_query_size` to 64 MiB so a 1 MB
 *   literal parses (the default is 256 KiB).
 *
 * Numbers: safe integers and bigints in the Int64/UInt64 range as digits; other finite numbers in JS's
 * shortest round-trip form (both engines parse `1e+21`, `-1.5e-7`). Subnormal numbers throw: 18.16
 * parses them as a syntax error (`5e-324`) or as 0. NaN and Infinity throw.
 */
import { UnrepresentableValueError } from './errors.js';

// C0 controls and DEL, quote and backslash.
const STRING_SPECIAL = /[\u0000-\u001f\u007f'\\]/g;

function escapeChar(c: string): string {
  if (c === '\\') return '\\\\';
  if (c === "'") return "\\'";
  return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const nativeWellFormed = (String.prototype as { isWellFormed?: () => boolean }).isWellFormed;

/** True when `s` is valid UTF-16 (no lone surrogate), i.e. has a UTF-8 form. */
export function isWellFormed(s: string): boolean {
  return nativeWellFormed ? nativeWellFormed.call(s) : !LONE_SURROGATE.test(s);
}

function checkWellFormed(s: string, what: string): void {
  if (!isWellFormed(s)) {
    const i = [...s].findIndex((ch) => ch.length === 1 && ch >= '\ud800' && ch <= '\udfff');
    throw new UnrepresentableValueError(
      `${what} contains a lone UTF-16 surrogate (at code point ${i}); it has no UTF-8 form, so no SQL ` +
        `literal can stand for it without matching a different string`,
    );
  }
}

/** A ClickHouse string literal that stands for exactly `s`. */
export function sqlString(s: string): string {
  checkWellFormed(s, 'a string value');
  return `'${s.replace(STRING_SPECIAL, escapeChar)}'`;
}

const MIN_NORMAL = 2.2250738585072014e-308;
const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

export function sqlNumber(n: number | bigint): string {
  if (typeof n === 'bigint') {
    if (n < INT64_MIN || n > UINT64_MAX) throw new UnrepresentableValueError(`${n} is outside Int64/UInt64`);
    return n.toString();
  }
  if (!Number.isFinite(n)) throw new UnrepresentableValueError(`${n} has no SQL literal that both engines accept`);
  if (n !== 0 && Math.abs(n) < MIN_NORMAL) {
    throw new UnrepresentableValueError(`${n} is subnormal; ClickHouse 18.16 cannot parse it (it reads 0 or fails)`);
  }
  if (Object.is(n, -0)) return '0';
  return String(n);
}

const PLAIN_IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** An identifier: bare when plain, else backquoted with backslash escapes (both engines). */
export function sqlIdent(name: string): string {
  if (PLAIN_IDENT.test(name)) return name;
  if (name === '' || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new UnrepresentableValueError(`identifier ${JSON.stringify(name)} is empty or contains control characters`);
  }
  checkWellFormed(name, 'an identifier');
  return `\`${name.replace(/[\\`]/g, (c) => `\\${c}`)}\``;
}

/** Marks a value to be written as an identifier by the `sql` tag. */
export class Ident {
  constructor(readonly name: string) {}
}
export const ident = (name: string): Ident => new Ident(name);

/** Marks trusted SQL text to be spliced in as is by the `sql` tag (never pass user input). */
export class RawSql {
  constructor(readonly text: string) {}
}
export const rawSql = (text: string): RawSql => new RawSql(text);

export type SqlValue = string | number | bigint | boolean | null | undefined | Ident | RawSql | readonly SqlValue[];

/**
 * One value as SQL: NULL, a string or number literal, 1/0 for booleans (18.16 has no Bool), an
 * identifier, raw text, or a parenthesized list for arrays (for `IN (...)`; an empty list is `(NULL)`,
 * which matches nothing rather than being a syntax error).
 */
export function sqlValue(v: SqlValue): string {
  if (v === null || v === undefined) return 'NULL';
  if (v instanceof Ident) return sqlIdent(v.name);
  if (v instanceof RawSql) return v.text;
  if (Array.isArray(v)) return v.length === 0 ? '(NULL)' : `(${v.map(sqlValue).join(', ')})`;
  switch (typeof v) {
    case 'string':
      return sqlString(v);
    case 'number':
    case 'bigint':
      return sqlNumber(v);
    case 'boolean':
      return v ? '1' : '0';
    default:
      throw new UnrepresentableValueError(`a ${typeof v} has no SQL form`);
  }
}

/** Template tag: `sql\`SELECT * FROM ${ident(t)} WHERE queue = ${q}\`` with every value inlined safely. */
export function sql(strings: TemplateStringsArray, ...values: SqlValue[]): string {
  let out = strings[0];
  for (let i = 0; i < values.length; i++) out += sqlValue(values[i]) + strings[i + 1];
  return out;
}

/**
 * An insert both engines run as is: `INSERT INTO t (cols) FORMAT TabSeparated`, then one line per row.
 * This is what the ledger uses: both engines parse it about 1.5-3x faster than JSONEachRow and it is
 * ~40% smaller (measured: test/ledger/store/store.test.ts prints the rates). Field escapes are
 * ClickHouse's, the same on 18.16 and 26.x: `\\` `\t` `\n` `\r` `\0` `\b` `\f` for those characters
 * (no raw NUL reaches chdb's C-string API), other characters as UTF-8, NULL as `\N`.
 * Values: strings (well-formed), safe integers and bigints, booleans (1/0), null. Non-integer numbers
 * are refused: 18.16's text parser rounds some doubles by one unit in the last place, so a Float64
 * must travel as its bits (see rows.ts, duration_bits).
 * The @clickhouse/client trims statements, so the last column of a row must never be an empty string
 * (the ledger puts `seq` last).
 */
export function insertTabSeparated(table: string, columns: readonly string[], rows: readonly Record<string, unknown>[]): string {
  // Each line joined from one reused array of fields (a flat string, no ropes), the lines joined once:
  // far less garbage than one array entry per field and separator across the whole batch.
  const lines: string[] = new Array(rows.length + 1);
  lines[0] = insertTabSeparatedHead(table, columns);
  const fields: string[] = new Array(columns.length);
  for (let r = 0; r < rows.length; r++) lines[r + 1] = tabSeparatedLine(rows[r], columns, fields);
  lines.push('');
  return lines.join('\n');
}

/** `INSERT INTO t (cols) FORMAT TabSeparated`, without the newline. */
export function insertTabSeparatedHead(table: string, columns: readonly string[]): string {
  return `INSERT INTO ${sqlIdent(table)} (${columns.map(sqlIdent).join(', ')}) FORMAT TabSeparated`;
}

/** One row's TabSeparated line (no newline); `fields` is a reused scratch array of columns.length. */
export function tabSeparatedLine(row: Readonly<Record<string, unknown>>, columns: readonly string[], fields: string[]): string {
  for (let i = 0; i < columns.length; i++) fields[i] = tabSeparatedField(row[columns[i]], columns[i]);
  return fields.join('\t');
}

const TSV_SPECIAL = /[\\\t\n\r\u0000\b\f]/g;
const TSV_NEEDS_ESCAPE = /[\\\t\n\r\u0000\b\f]/;
const TSV_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\u0000': '\\0', '\b': '\\b', '\f': '\\f' };
const tsvEscape = (c: string): string => TSV_ESCAPES[c];

/** One value as a TabSeparated field (see insertTabSeparated). */
export function tabSeparatedField(v: unknown, column: string): string {
  switch (typeof v) {
    case 'string':
      checkWellFormed(v, `column ${column}`);
      return TSV_NEEDS_ESCAPE.test(v) ? v.replace(TSV_SPECIAL, tsvEscape) : v;
    case 'number':
      if (!Number.isSafeInteger(v)) {
        throw new UnrepresentableValueError(`column ${column}: ${v} is not a safe integer; send a Float64 as its bits`);
      }
      return Object.is(v, -0) ? '0' : String(v);
    case 'bigint':
      return v.toString();
    case 'boolean':
      return v ? '1' : '0';
    case 'undefined':
      return '\\N';
    case 'object':
      if (v === null) return '\\N';
  }
  throw new UnrepresentableValueError(`column ${column}: a ${typeof v} has no TabSeparated form`);
}

/**
 * An insert both engines run as is: `INSERT INTO t (cols) FORMAT JSONEachRow` then one JSON object per
 * line, holding exactly `columns` of each (flat) row, in that order. The data part is not subject to `max_query_size` and is parsed by ClickHouse's JSON reader,
 * whose escapes (`\u0000`, `\"`, astral characters as raw UTF-8) round-trip byte-exact. Strings must be
 * well-formed (JSON.stringify would write a lone surrogate as `\udXXX`, which ClickHouse stores as
 * bytes that are not UTF-8).
 */
export function insertJsonEachRow(table: string, columns: readonly string[], rows: readonly object[]): string {
  const parts = [`INSERT INTO ${sqlIdent(table)} (${columns.map(sqlIdent).join(', ')}) FORMAT JSONEachRow\n`];
  for (const row of rows) {
    checkWellFormedDeep(row);
    parts.push(JSON.stringify(row, columns as string[]), '\n');
  }
  return parts.join('');
}

function checkWellFormedDeep(v: unknown, depth = 0): void {
  if (typeof v === 'string') {
    checkWellFormed(v, 'an inserted value');
  } else if (typeof v === 'object' && v !== null && depth < 64) {
    for (const [k, x] of Object.entries(v)) {
      checkWellFormed(k, 'an inserted key');
      checkWellFormedDeep(x, depth + 1);
    }
  }
}
