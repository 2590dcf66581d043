/**
 * Ledger records <-> rows of `warden_ledger`, exactly.
 *
 * `rowToRecord(recordToRow(r))` has the same recordHash as `r` for every record whose event has a
 * canonical JSON form: null vs absent fields, -0, 1e21, subnormal numbers, unicode, lone surrogates,
 * fields the typed columns cannot hold, even unknown extra fields. How:
 *
 * - Each event field has its own typed column (see LEDGER_COLUMNS). `input` and `attrs` hold the
 *   canonical JSON (core/canonical.ts) of their value.
 * - What a typed column cannot hold goes to the `spill` column, canonical JSON of
 *   `{"absent":[names],"values":{name:value}}` (each part only when non-empty; '' when nothing spills):
 *   fields absent from the event; null in a non-nullable column (`queue`, `event_id`, `kind`,
 *   `source`); strings that are not well-formed UTF-16 (no UTF-8 form); numbers outside their column
 *   (a `ts` that is not an integer epoch-ms from 1970 to 2105, a non-integer or negative `attempt`);
 *   values of the wrong type (a non-finite or non-number `duration_ms`); fields the event
 *   type does not have. A spilled field's typed column holds its empty value ('' or NULL, ts 0).
 *   Canonical JSON escapes lone surrogates, so spill, input and attrs are always valid UTF-8.
 *   This is not a second copy of the event: ordinary events spill nothing.
 *
 * Tampering: rowToRecord rebuilds the record, encodes it again with recordToRow and requires every
 * column to come out identical, else it throws CorruptRowError naming the column. Two different rows
 * therefore never rebuild to the same record, so an `ALTER TABLE ... UPDATE` of any column (a
 * non-canonical but equivalent JSON, a `ts` that disagrees with `ts_ms`, a value in a spilled field's
 * column, a `duration_ms` that is not what `duration_bits` says, the bits of -0, which hashes like 0)
 * either changes the rebuilt record, and with it the hash chain, or
 * makes the row unreadable as a record. Both are caught by a verify that recomputes the chain.
 */
import { canonicalJson, EVENT_FIELDS, type WardenEvent } from '../../core/event.js';
import type { LedgerRecord } from '../spool/record.js';
import { CorruptRowError, UnrepresentableValueError } from './errors.js';
import { isWellFormed } from './sql.js';

export const LEDGER_TABLE = 'warden_ledger';

/**
 * `duration_ms` is computed on insert from the exact IEEE-754 bits the writer sends in `duration_bits`:
 * 18.16's text parser (JSONEachRow, VALUES, toFloat64) rounds some doubles one unit in the last place
 * (`4.714285714285714` is stored as `4.7142857142857135`), while bits round-trip on every engine.
 * 18.16 cannot reinterpret UInt64 as Float64 directly; through its little-endian bytes it can.
 */
const DURATION_FROM_BITS = 'reinterpretAsFloat64(reinterpretAsString(duration_bits))';

/** Event fields stored in non-nullable String columns (a null goes to spill). `queue` is in the sort key. */
export const STRING_FIELDS = ['event_id', 'kind', 'source', 'queue'] as const;
/** Event fields stored in Nullable(String) columns. */
export const NULLABLE_STRING_FIELDS = [
  'correlation_id', 'trace_id', 'span_id', 'job_id', 'job_name', 'workflow_id', 'run_id', 'activity_type',
  'input_digest', 'model', 'model_version', 'policy', 'policy_version', 'actor', 'decision', 'reason', 'error',
] as const;
/** Event fields stored as canonical JSON text in String columns. */
export const JSON_FIELDS = ['attrs', 'input'] as const;

/** Every column of `warden_ledger`, in table order, with its ClickHouse type (schema.ts builds the DDL from this). */
export const LEDGER_COLUMNS: ReadonlyArray<readonly [name: string, type: string]> = [
  ['seq', 'UInt64'],
  ['prev', 'String'],
  ['hash', 'String'],
  ['ts', "DateTime('UTC')"],
  ['ts_ms', 'UInt64'],
  ...STRING_FIELDS.map((f) => [f, 'String'] as const),
  ...NULLABLE_STRING_FIELDS.map((f) => [f, 'Nullable(String)'] as const),
  ['attempt', 'Nullable(UInt64)'],
  ['duration_bits', 'Nullable(UInt64)'],
  ['duration_ms', `Nullable(Float64) DEFAULT ${DURATION_FROM_BITS}`],
  ...JSON_FIELDS.map((f) => [f, 'String'] as const),
  ['spill', 'String'],
];
export const LEDGER_COLUMN_NAMES: readonly string[] = LEDGER_COLUMNS.map(([n]) => n);
/**
 * What an insert sends: every column but duration_ms, which the table computes, with `seq` last: a
 * TabSeparated line must not end in an empty field (see insertTabSeparated).
 */
export const LEDGER_INSERT_COLUMNS: readonly string[] = [
  ...LEDGER_COLUMN_NAMES.filter((n) => n !== 'duration_ms' && n !== 'seq'),
  'seq',
];
/** `seq, prev, ...`: the select list that rowToRecord reads. */
export const LEDGER_SELECT = LEDGER_COLUMN_NAMES.join(', ');

type StringField = (typeof STRING_FIELDS)[number];
type NullableStringField = (typeof NULLABLE_STRING_FIELDS)[number];
type JsonField = (typeof JSON_FIELDS)[number];

/** One row as inserted (JSONEachRow) and as rowToRecord normalizes a row read back. */
export type LedgerRow = {
  seq: number;
  prev: string;
  hash: string;
  /** `YYYY-MM-DD hh:mm:ss`, UTC: floor(ts_ms / 1000). */
  ts: string;
  ts_ms: number;
  attempt: number | null;
  /** The IEEE-754 bits of duration_ms as a decimal UInt64 string (JSON numbers stop at 2^53). */
  duration_bits: string | null;
  /** Not inserted: the table computes it from duration_bits. Here for comparison when reading. */
  duration_ms: number | null;
  spill: string;
} & Record<StringField, string> & Record<NullableStringField, string | null> & Record<JsonField, string>;

const TYPED_FIELDS: readonly string[] = [
  'ts', 'attempt', 'duration_ms', ...STRING_FIELDS, ...NULLABLE_STRING_FIELDS, ...JSON_FIELDS,
];
const TYPED = new Set(TYPED_FIELDS);
{
  // The event type is defined once (core/event.ts); a field added there without a column here
  // would still round-trip (through spill) but should get a column: fail loudly at load time.
  const missing = EVENT_FIELDS.filter((f) => !TYPED.has(f));
  const extra = TYPED_FIELDS.filter((f) => !(EVENT_FIELDS as readonly string[]).includes(f));
  if (missing.length || extra.length) {
    throw new Error(`ledger/store/rows.ts is out of date with WardenEvent: missing ${missing} extra ${extra}`);
  }
}

/** Latest instant a DateTime holds on 18.16 (its date table ends in 2105): 2105-12-31 23:59:59.999. */
export const TS_MAX_MS = Date.UTC(2106, 0, 1) - 1;
const EMPTY_TS = '1970-01-01 00:00:00';

/** `YYYY-MM-DD hh:mm:ss` (UTC) of epoch-ms `ms`, rounded down to the second: a DateTime('UTC') value in text form. */
export function dateTimeText(ms: number): string {
  const sec = Math.floor(ms / 1000);
  if (sec === lastSecond) return lastText; // a batch's records mostly share their second
  const iso = new Date(sec * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  lastSecond = sec;
  lastText = `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
  return lastText;
}
let lastSecond = NaN;
let lastText = '';

const bitsView = new DataView(new ArrayBuffer(8));
function float64Bits(x: number): string {
  bitsView.setFloat64(0, x);
  return bitsView.getBigUint64(0).toString();
}
function bitsFloat64(bits: bigint): number {
  bitsView.setBigUint64(0, bits);
  return bitsView.getFloat64(0);
}

const isText = (v: unknown): v is string => typeof v === 'string' && isWellFormed(v);
const noNegZero = (n: number): number => (n === 0 ? 0 : n);

/**
 * A row with every column present from the start, in table order: one object literal, so the engine
 * allocates it in one shape instead of growing it through thirty property additions per record
 * (a fifth of the shipper's conversion time, most of it garbage). Checked against LEDGER_COLUMNS below.
 */
function emptyRow(seq: number, prev: string, hash: string): LedgerRow {
  return {
    seq, prev, hash, ts: EMPTY_TS, ts_ms: 0,
    event_id: '', kind: '', source: '', queue: '',
    correlation_id: null, trace_id: null, span_id: null, job_id: null, job_name: null, workflow_id: null, run_id: null, activity_type: null,
    input_digest: null, model: null, model_version: null, policy: null, policy_version: null, actor: null, decision: null, reason: null, error: null,
    attempt: null, duration_bits: null, duration_ms: null,
    attrs: '', input: '', spill: '',
  };
}
{
  const keys = Object.keys(emptyRow(1, '', ''));
  if (keys.join(',') !== LEDGER_COLUMN_NAMES.join(',')) throw new Error(`ledger/store/rows.ts emptyRow is out of date with LEDGER_COLUMNS: ${keys} vs ${LEDGER_COLUMN_NAMES}`);
}

/** The row that stands for `r`. Throws UnrepresentableValueError only for what no ledger can hold. */
export function recordToRow(r: LedgerRecord): LedgerRow {
  if (!Number.isSafeInteger(r.seq) || r.seq < 1) throw new UnrepresentableValueError(`record seq ${r.seq} is not a positive integer`);
  if (!isText(r.prev) || !isText(r.hash)) throw new UnrepresentableValueError(`record seq ${r.seq}: prev and hash must be strings`);
  const ev = r.event as unknown as Record<string, unknown>;
  if (typeof ev !== 'object' || ev === null || Array.isArray(ev)) {
    throw new UnrepresentableValueError(`record seq ${r.seq}: the event is not an object`);
  }
  const absent: string[] = [];
  const values: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  let spilled = false;
  const spill = (f: string, v: unknown): void => {
    Object.defineProperty(values, f, { value: v, enumerable: true, writable: true, configurable: true });
    spilled = true;
  };
  const get = (f: string): unknown => (Object.hasOwn(ev, f) ? ev[f] : undefined);

  const row = emptyRow(r.seq, r.prev, r.hash);

  const ts = get('ts');
  if (typeof ts === 'number' && Number.isSafeInteger(ts) && ts >= 0 && ts <= TS_MAX_MS) {
    row.ts = dateTimeText(ts);
    row.ts_ms = noNegZero(ts);
  } else {
    if (ts === undefined) absent.push('ts');
    else spill('ts', ts);
    row.ts = EMPTY_TS;
    row.ts_ms = 0;
  }
  for (const f of STRING_FIELDS) {
    const v = get(f);
    if (isText(v)) row[f] = v;
    else {
      if (v === undefined) absent.push(f);
      else spill(f, v);
      row[f] = '';
    }
  }
  for (const f of NULLABLE_STRING_FIELDS) {
    const v = get(f);
    if (v === null || isText(v)) row[f] = v;
    else {
      if (v === undefined) absent.push(f);
      else spill(f, v);
      row[f] = null;
    }
  }
  const attempt = get('attempt');
  if (attempt === null || (typeof attempt === 'number' && Number.isSafeInteger(attempt) && attempt >= 0)) {
    row.attempt = attempt === null ? null : noNegZero(attempt);
  } else {
    if (attempt === undefined) absent.push('attempt');
    else spill('attempt', attempt);
    row.attempt = null;
  }
  const duration = get('duration_ms');
  if (duration === null) {
    row.duration_bits = null;
    row.duration_ms = null;
  } else if (typeof duration === 'number' && Number.isFinite(duration)) {
    row.duration_ms = noNegZero(duration);
    row.duration_bits = float64Bits(row.duration_ms);
  } else {
    if (duration === undefined) absent.push('duration_ms');
    else spill('duration_ms', duration);
    row.duration_bits = null;
    row.duration_ms = null;
  }
  for (const f of JSON_FIELDS) {
    const v = get(f);
    if (v === undefined) {
      absent.push(f);
      row[f] = '';
    } else {
      row[f] = canonicalOrThrow(v, r.seq, f);
    }
  }
  for (const k of Object.keys(ev)) {
    if (!TYPED.has(k) && ev[k] !== undefined) spill(k, ev[k]);
  }
  if (absent.length === 0 && !spilled) row.spill = '';
  else {
    const s: Record<string, unknown> = {};
    if (absent.length) s.absent = absent.sort();
    if (spilled) s.values = values;
    row.spill = canonicalOrThrow(s, r.seq, 'spill');
  }
  return row;
}

function canonicalOrThrow(v: unknown, seq: number, field: string): string {
  try {
    return canonicalJson(v);
  } catch (err) {
    throw new UnrepresentableValueError(`record seq ${seq}: ${field} has no canonical JSON form (${(err as Error).message})`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Reading

const DATETIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;

/**
 * Rebuilds the record a row stands for. `row` is an object as the stores' query() returns it
 * (JSONEachRow: UInt64 as a string or number, DateTime as `YYYY-MM-DD hh:mm:ss`), selected with
 * LEDGER_SELECT or `*`. Throws CorruptRowError when the row is not exactly recordToRow of any record.
 */
export function rowToRecord(row: Record<string, unknown>): LedgerRecord {
  const seqGuess = typeof row.seq === 'number' || typeof row.seq === 'string' ? Number(row.seq) : NaN;
  const seqForErrors = Number.isSafeInteger(seqGuess) ? seqGuess : null;
  const bad = (column: string, detail: string): CorruptRowError => new CorruptRowError(seqForErrors, column, detail);

  for (const c of LEDGER_COLUMN_NAMES) if (!(c in row)) throw bad(c, 'is missing from the row');

  const uint = (c: string, nullable: boolean): number | null => {
    const v = row[c];
    if (v === null && nullable) return null;
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^(0|[1-9][0-9]*)$/.test(v) ? Number(v) : NaN;
    if (!Number.isSafeInteger(n) || n < 0) throw bad(c, `holds ${JSON.stringify(v)}, not an integer a ledger row can hold`);
    return n;
  };
  const str = (c: string, nullable: boolean): string | null => {
    const v = row[c];
    if (v === null && nullable) return null;
    if (typeof v !== 'string') throw bad(c, `holds ${JSON.stringify(v)}, not a string`);
    return v;
  };
  const json = (c: string, text: string): unknown => {
    try {
      return JSON.parse(text);
    } catch {
      throw bad(c, 'is not JSON');
    }
  };

  const seq = uint('seq', false) as number;
  if (seq < 1) throw bad('seq', 'is 0');
  const prev = str('prev', false) as string;
  const hash = str('hash', false) as string;
  const tsMs = uint('ts_ms', false) as number;
  const tsSeconds = dateTimeSeconds(row.ts);
  if (tsSeconds === null) throw bad('ts', `holds ${JSON.stringify(row.ts)}, not a DateTime`);

  // Spill first: it says which typed columns to ignore.
  const spillText = str('spill', false) as string;
  let absent: string[] = [];
  let values: Record<string, unknown> = {};
  if (spillText !== '') {
    const s = json('spill', spillText);
    if (typeof s !== 'object' || s === null || Array.isArray(s)) throw bad('spill', 'is not a JSON object');
    const sp = s as Record<string, unknown>;
    if (sp.absent !== undefined) {
      if (!Array.isArray(sp.absent) || sp.absent.some((x) => typeof x !== 'string')) throw bad('spill', 'has an absent list that is not a list of names');
      absent = sp.absent as string[];
    }
    if (sp.values !== undefined) {
      if (typeof sp.values !== 'object' || sp.values === null || Array.isArray(sp.values)) throw bad('spill', 'has values that are not an object');
      values = sp.values as Record<string, unknown>;
    }
  }
  const absentSet = new Set(absent);
  const event: Record<string, unknown> = {};
  const set = (f: string, v: unknown): void => {
    Object.defineProperty(event, f, { value: v, enumerable: true, writable: true, configurable: true });
  };
  const fill = (f: string, fromColumn: () => unknown): void => {
    if (absentSet.has(f)) return;
    if (Object.hasOwn(values, f)) set(f, values[f]);
    else set(f, fromColumn());
  };

  // Fields in EVENT_FIELDS order, so the rebuilt event looks like makeEvent's (order does not affect the hash).
  for (const f of EVENT_FIELDS as readonly string[]) {
    switch (f) {
      case 'ts':
        fill(f, () => tsMs);
        break;
      case 'attempt':
        fill(f, () => uint('attempt', true));
        break;
      case 'duration_ms':
        fill(f, () => {
          const b = row.duration_bits;
          if (b === null) return null;
          const text = typeof b === 'number' ? String(b) : b;
          if (typeof text !== 'string' || !/^(0|[1-9][0-9]*)$/.test(text) || BigInt(text) >= 2n ** 64n) {
            throw bad('duration_bits', `holds ${JSON.stringify(b)}, not a UInt64`);
          }
          return bitsFloat64(BigInt(text));
        });
        break;
      case 'input':
      case 'attrs':
        fill(f, () => json(f, str(f, false) as string));
        break;
      default:
        fill(f, () => str(f, (NULLABLE_STRING_FIELDS as readonly string[]).includes(f)));
    }
  }
  for (const k of Object.keys(values)) if (!TYPED.has(k)) set(k, values[k]);

  const record: LedgerRecord = { seq, prev, hash, event: event as WardenEvent };

  // The rebuilt record must encode to this very row, column by column.
  let expected: LedgerRow;
  try {
    expected = recordToRow(record);
  } catch (err) {
    throw bad('spill', `describes an event no ledger row can hold (${(err as Error).message})`);
  }
  for (const c of LEDGER_COLUMN_NAMES) {
    const want = (expected as Record<string, unknown>)[c];
    let got = row[c];
    if (c === 'ts') {
      got = tsSeconds;
      const wantSeconds = dateTimeSeconds(want);
      if (got !== wantSeconds) throw bad('ts', `holds ${JSON.stringify(row.ts)}, but ts_ms and spill imply ${JSON.stringify(want)}`);
      continue;
    }
    if (c === 'seq' || c === 'ts_ms' || c === 'attempt') got = got === null ? null : Number(got);
    if (c === 'duration_bits' && typeof got === 'number') got = String(got);
    if (!Object.is(got, want)) {
      throw bad(c, `holds ${preview(row[c])}, but the rest of the row implies ${preview(want)}`);
    }
  }
  return record;
}

function dateTimeSeconds(v: unknown): number | null {
  if (typeof v === 'number') return Number.isSafeInteger(v) ? v : null;
  if (typeof v !== 'string') return null;
  if (v === '0000-00-00 00:00:00') return 0; // 18.16 prints the zero DateTime this way
  const m = DATETIME.exec(v);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number);
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  return Number.isFinite(ms) ? ms / 1000 : null;
}

function preview(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
