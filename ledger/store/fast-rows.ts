/**
 * The shipper's insert text built from the spool's bytes. An ordinary spool line's event is canonical
 * JSON of printable ASCII with no escapes (checked by the scan verify uses, ledger/spool/fast-line.ts),
 * so each column's TabSeparated field is a slice of the line as it is: a string's bytes between its
 * quotes, `attrs` and `input` as their canonical JSON already written there, numbers as their digits.
 * No JSON.parse, no row object, no re-encoding: a few byte copies per column.
 *
 * A line is taken this way only when the result is certainly what `recordToRow` + `tabSeparatedLine`
 * give for the parsed record (test/ledger/store/fast-rows.test.ts compares them): every event field
 * present, each with its column's type, nothing to spill, nothing to escape. Anything else (escapes,
 * non-ASCII, a missing or extra field, a float ts, a negative attempt...) goes the reference way, line
 * by line, with the same errors as before.
 */
import { EVENT_FIELDS } from '../../core/event.js';
import { parseSegmentLine } from '../spool/tail.js';
import { LINE, scanSpoolLine } from '../spool/fast-line.js';
import { dateTimeText, JSON_FIELDS, LEDGER_TABLE, NULLABLE_STRING_FIELDS, recordToRow, STRING_FIELDS, TS_MAX_MS } from './rows.js';
import { insertTabSeparatedHead, tabSeparatedField, tabSeparatedLine } from './sql.js';

/** The event's fields in canonical (sorted) order: an ordinary event's members, one by one. */
const SORTED_FIELDS: readonly string[] = [...EVENT_FIELDS].sort();
const SORTED_BYTES = SORTED_FIELDS.map((f) => Buffer.from(f, 'latin1'));
const MEMBER = new Map(SORTED_FIELDS.map((f, i) => [f, i]));

/** What one insert column is made of (numbers: the per-column switch stays monomorphic). */
const enum Col { Ledger, Prev, Hash, Seq, Ts, TsMs, Spill, Str, Nullable, Attempt, DurationBits, Json }

const TAB = 0x09;
const NL = 0x0a;

/** The columns that are not an event field's own. */
const FIXED = new Map<string, Col>([['ledger_id', Col.Ledger], ['prev', Col.Prev], ['hash', Col.Hash], ['seq', Col.Seq], ['ts', Col.Ts], ['ts_ms', Col.TsMs], ['spill', Col.Spill]]);
/** An event field's column kind, from rows.ts's column groups. */
const FIELD_KIND = new Map<string, Col>([
  ...STRING_FIELDS.map((f) => [f, Col.Str] as const),
  ...NULLABLE_STRING_FIELDS.map((f) => [f, Col.Nullable] as const),
  ...JSON_FIELDS.map((f) => [f, Col.Json] as const),
  ['attempt', Col.Attempt],
  ['duration_bits', Col.DurationBits],
]);

/** How to write each insert column, in the insert's column order: its kind, and the event member it comes from (-1: none). */
function planColumns(columns: readonly string[]): { kinds: Uint8Array; members: Int32Array } {
  const kinds = new Uint8Array(columns.length);
  const members = new Int32Array(columns.length).fill(-1);
  columns.forEach((c, i) => {
    const fixed = FIXED.get(c);
    if (fixed !== undefined) {
      kinds[i] = fixed;
      return;
    }
    const member = MEMBER.get(c === 'duration_bits' ? 'duration_ms' : c);
    const kind = FIELD_KIND.get(c);
    if (member === undefined || kind === undefined) throw new Error(`ledger/store/fast-rows.ts: no rule for insert column ${c}`);
    members[i] = member;
    kinds[i] = kind;
  });
  return { kinds, members };
}

/**
 * Builds one batch's insert statement (`INSERT INTO warden_ledger (...) FORMAT TabSeparated`, one line
 * per record) from spool lines handed over as bytes, in order.
 */
export class LedgerInsertBuilder {
  private out = Buffer.allocUnsafe(1 << 20);
  private pos = 0;
  private readonly kinds: Uint8Array;
  private readonly planMembers: Int32Array;
  private readonly ledgerField: Buffer;
  private readonly fields: string[];
  private readonly members = new Int32Array(4 * (SORTED_FIELDS.length + 1));
  private readonly tsMember = MEMBER.get('ts')!;
  private tsSecond = NaN;
  private tsBytes = Buffer.alloc(0);
  /** Lines that went the reference way. */
  slow = 0;

  constructor(private readonly columns: readonly string[], private readonly ledgerId: string) {
    ({ kinds: this.kinds, members: this.planMembers } = planColumns(columns));
    this.ledgerField = Buffer.from(tabSeparatedField(ledgerId, 'ledger_id'), 'utf8');
    this.fields = new Array(columns.length);
    this.writeText(`${insertTabSeparatedHead(LEDGER_TABLE, columns)}\n`);
  }

  /** Adds the record in `buf[start, end)` (one spool line, without its newline). `segment` names it in errors. */
  add(buf: Buffer, start: number, end: number, segment: string): void {
    const mark = this.pos;
    if (this.fast(buf, start, end)) return;
    this.pos = mark;
    this.slow++;
    const row = recordToRow(parseSegmentLine(buf.toString('utf8', start, end), segment)) as ReturnType<typeof recordToRow> & { ledger_id?: string };
    row.ledger_id = this.ledgerId;
    this.writeText(`${tabSeparatedLine(row, this.columns, this.fields)}\n`);
  }

  /** The statement (the header alone when nothing was added). */
  text(): string {
    return this.out.toString('utf8', 0, this.pos);
  }

  private fast(buf: Buffer, start: number, end: number): boolean {
    const m = this.members;
    const n = scanSpoolLine(buf, start, end, m);
    if (n !== SORTED_FIELDS.length) return false;
    for (let i = 0; i < n; i++) {
      const want = SORTED_BYTES[i];
      const at = m[i * 4];
      if (m[i * 4 + 1] - at !== want.length) return false;
      for (let j = 0; j < want.length; j++) if (buf[at + j] !== want[j]) return false; // short: a loop beats Buffer.compare's checks
    }
    const tsAt = this.tsMember * 4;
    const ts = timestamp(buf, m[tsAt + 2], m[tsAt + 3]);
    if (ts < 0) return false;
    // Every field is a slice of the line, shorter than its JSON form, apart from the ledger ID, the
    // DateTime text and a duration's bits: room for the whole row up front, no bounds checks per byte.
    if (this.pos + (end - start) + this.ledgerField.length + 64 > this.out.length) this.grow(end - start + this.ledgerField.length + 64);
    const out = this.out;
    let p = this.pos;
    const kinds = this.kinds;
    const members = this.planMembers;
    for (let c = 0; c < kinds.length; c++) {
      if (c > 0) out[p++] = TAB;
      let from = 0;
      let to = 0;
      let src = buf;
      switch (kinds[c]) {
        case Col.Ledger: src = this.ledgerField; to = src.length; break;
        case Col.Prev: from = LINE.prev; to = from + 64; break;
        case Col.Hash: from = LINE.hash; to = from + 64; break;
        case Col.Seq: from = LINE.seqAt; to = end - 1; break;
        case Col.Ts: src = this.tsText(ts); to = src.length; break;
        case Col.TsMs: from = m[tsAt + 2]; to = m[tsAt + 3]; break;
        case Col.Spill: break; // nothing spills: every field present with its column's type
        default: {
          const k = members[c] * 4;
          const v = m[k + 2];
          const vEnd = m[k + 3];
          const first = buf[v];
          const isNull = first === 0x6e;
          switch (kinds[c]) {
            case Col.Json: from = v; to = vEnd; break;
            case Col.Str:
              if (first !== 0x22) return false;
              from = v + 1; to = vEnd - 1;
              break;
            case Col.Nullable:
              if (first === 0x22) { from = v + 1; to = vEnd - 1; } else if (isNull) { src = NULL_FIELD; to = 2; } else return false;
              break;
            case Col.Attempt:
              if (isNull) { src = NULL_FIELD; to = 2; } else if (vEnd - v <= 15 && allDigits(buf, v, vEnd)) { from = v; to = vEnd; } else return false;
              break;
            case Col.DurationBits:
              if (isNull) { src = NULL_FIELD; to = 2; break; }
              if (first !== 0x2d && !(first >= 0x30 && first <= 0x39)) return false; // a number (the scan checked its form)
              src = durationBits(buf, v, vEnd);
              if (src.length === 0) return false;
              to = src.length;
              break;
            default: return false;
          }
        }
      }
      if (to - from < 64) for (let i = from; i < to; i++) out[p++] = src[i]; // most fields are a few bytes: cheaper than Buffer#copy's checks
      else p += src.copy(out, p, from, to);
    }
    out[p++] = NL;
    this.pos = p;
    return true;
  }

  /** The DateTime text of `ts` as bytes, remembered per second (a batch's records mostly share theirs). */
  private tsText(ts: number): Buffer {
    const sec = Math.floor(ts / 1000);
    if (sec !== this.tsSecond) {
      this.tsSecond = sec;
      this.tsBytes = Buffer.from(dateTimeText(ts), 'latin1');
    }
    return this.tsBytes;
  }



  private writeText(t: string): void {
    const max = Buffer.byteLength(t, 'utf8');
    if (this.pos + max > this.out.length) this.grow(max);
    this.pos += this.out.write(t, this.pos, 'utf8');
  }

  private grow(n: number): void {
    const bigger = Buffer.allocUnsafe(Math.max(this.out.length * 2, this.pos + n));
    this.out.copy(bigger, 0, 0, this.pos);
    this.out = bigger;
  }
}

const bits = new DataView(new ArrayBuffer(8));
const NULL_FIELD = Buffer.from('\\N');
const NO_BYTES = Buffer.alloc(0);

/** `ts` as an integer epoch-ms the DateTime column holds (digits only), or -1. */
function timestamp(buf: Buffer, v: number, vEnd: number): number {
  if (vEnd - v > 15 || !allDigits(buf, v, vEnd)) return -1;
  const ts = Number(buf.toString('latin1', v, vEnd));
  return ts <= TS_MAX_MS ? ts : -1;
}

/** The IEEE-754 bits of the duration number token `buf[v, vEnd)`, as decimal digits; empty when it is not finite. */
function durationBits(buf: Buffer, v: number, vEnd: number): Buffer {
  const x = Number(buf.toString('latin1', v, vEnd));
  if (!Number.isFinite(x)) return NO_BYTES;
  bits.setFloat64(0, x === 0 ? 0 : x);
  return Buffer.from(bits.getBigUint64(0).toString(), 'latin1');
}

function allDigits(buf: Buffer, from: number, to: number): boolean {
  if (to <= from) return false;
  for (let i = from; i < to; i++) if (buf[i] < 0x30 || buf[i] > 0x39) return false;
  return true;
}
