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
import { parseRecordLine } from '../spool/record.js';
import { LINE, scanSpoolLine } from '../spool/fast-line.js';
import { CorruptRecordError } from '../errors.js';
import { dateTimeText, LEDGER_TABLE, recordToRow, TS_MAX_MS } from './rows.js';
import { insertTabSeparatedHead, tabSeparatedField, tabSeparatedLine } from './sql.js';

/** The event's fields in canonical (sorted) order: an ordinary event's members, one by one. */
const SORTED_FIELDS: readonly string[] = [...EVENT_FIELDS].sort();
const SORTED_BYTES = SORTED_FIELDS.map((f) => Buffer.from(f, 'latin1'));
const MEMBER = new Map(SORTED_FIELDS.map((f, i) => [f, i]));

type Emit =
  | { kind: 'ledger' | 'prev' | 'hash' | 'seq' | 'ts' | 'ts_ms' | 'spill' }
  | { kind: 'string' | 'nullable' | 'attempt' | 'duration_bits' | 'json'; member: number };

const BACKSLASH_N = Buffer.from('\\N');
const TAB = 0x09;
const NL = 0x0a;

/** How to write each insert column, in the insert's column order. */
function planColumns(columns: readonly string[]): Emit[] {
  return columns.map((c): Emit => {
    switch (c) {
      case 'ledger_id': return { kind: 'ledger' };
      case 'prev': case 'hash': case 'seq': case 'ts': case 'ts_ms': case 'spill': return { kind: c };
      case 'duration_bits': return { kind: 'duration_bits', member: MEMBER.get('duration_ms')! };
      case 'attempt': return { kind: 'attempt', member: MEMBER.get('attempt')! };
      case 'attrs': case 'input': return { kind: 'json', member: MEMBER.get(c)! };
      case 'event_id': case 'kind': case 'source': case 'queue': return { kind: 'string', member: MEMBER.get(c)! };
      default: {
        const member = MEMBER.get(c);
        if (member === undefined) throw new Error(`ledger/store/fast-rows.ts: no rule for insert column ${c}`);
        return { kind: 'nullable', member };
      }
    }
  });
}

/**
 * Builds one batch's insert statement (`INSERT INTO warden_ledger (...) FORMAT TabSeparated`, one line
 * per record) from spool lines handed over as bytes, in order.
 */
export class LedgerInsertBuilder {
  private out = Buffer.allocUnsafe(1 << 20);
  private pos = 0;
  private readonly plan: Emit[];
  private readonly ledgerField: Buffer;
  private readonly fields: string[];
  private readonly members = new Int32Array(4 * (SORTED_FIELDS.length + 1));
  private readonly tsMember = MEMBER.get('ts')!;
  /** Lines added, and how many of them went the reference way. */
  count = 0;
  slow = 0;

  constructor(private readonly columns: readonly string[], private readonly ledgerId: string) {
    this.plan = planColumns(columns);
    this.ledgerField = Buffer.from(tabSeparatedField(ledgerId, 'ledger_id'), 'utf8');
    this.fields = new Array(columns.length);
    this.writeText(`${insertTabSeparatedHead(LEDGER_TABLE, columns)}\n`);
  }

  /** Adds the record in `buf[start, end)` (one spool line, without its newline). `segment` names it in errors. */
  add(buf: Buffer, start: number, end: number, segment: string): void {
    this.count++;
    const mark = this.pos;
    if (this.fast(buf, start, end)) return;
    this.pos = mark;
    this.slow++;
    let record;
    try {
      record = parseRecordLine(buf.toString('utf8', start, end));
    } catch (err) {
      throw new CorruptRecordError(`${segment}: ${(err as Error).message}; run \`warden ledger verify\``, null, segment, 0);
    }
    const row = recordToRow(record) as ReturnType<typeof recordToRow> & { ledger_id?: string };
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
      const k = i * 4;
      if (m[k + 1] - m[k] !== want.length || buf.compare(want, 0, want.length, m[k], m[k + 1]) !== 0) return false;
    }
    const ts = this.timestamp(buf);
    if (ts < 0) return false;
    const plan = this.plan;
    for (let c = 0; c < plan.length; c++) {
      if (c > 0) this.byte(TAB);
      const e = plan[c];
      switch (e.kind) {
        case 'ledger': this.copy(this.ledgerField, 0, this.ledgerField.length); break;
        case 'prev': this.copy(buf, LINE.prev, LINE.prev + 64); break;
        case 'hash': this.copy(buf, LINE.hash, LINE.hash + 64); break;
        case 'seq': this.copy(buf, end - 1 - digitsBefore(buf, end - 1), end - 1); break;
        case 'ts': this.writeText(dateTimeText(ts)); break;
        case 'ts_ms': { const k = this.tsMember * 4; this.copy(buf, m[k + 2], m[k + 3]); break; }
        case 'spill': break; // nothing spills: every field present with its column's type
        default: if (!this.member(buf, e.kind, e.member)) return false;
      }
    }
    this.byte(NL);
    return true;
  }

  /** `ts` as an integer epoch-ms the DateTime column holds (digits only), or -1. */
  private timestamp(buf: Buffer): number {
    const k = this.tsMember * 4;
    const v = this.members[k + 2];
    const vEnd = this.members[k + 3];
    if (vEnd - v > 15 || !allDigits(buf, v, vEnd)) return -1;
    const ts = Number(buf.toString('latin1', v, vEnd));
    return ts <= TS_MAX_MS ? ts : -1;
  }

  private member(buf: Buffer, kind: Emit['kind'], member: number): boolean {
    const k = member * 4;
    const v = this.members[k + 2];
    const vEnd = this.members[k + 3];
    const first = buf[v];
    switch (kind) {
      case 'json': this.copy(buf, v, vEnd); return true;
      case 'string':
        if (first !== 0x22) return false;
        this.copy(buf, v + 1, vEnd - 1);
        return true;
      case 'nullable':
        if (first === 0x22) this.copy(buf, v + 1, vEnd - 1);
        else if (first === 0x6e) this.copy(BACKSLASH_N, 0, 2); // null
        else return false;
        return true;
      case 'attempt':
        if (first === 0x6e) this.copy(BACKSLASH_N, 0, 2);
        else if (vEnd - v <= 15 && allDigits(buf, v, vEnd)) this.copy(buf, v, vEnd);
        else return false;
        return true;
      case 'duration_bits': {
        if (first === 0x6e) {
          this.copy(BACKSLASH_N, 0, 2);
          return true;
        }
        if (first !== 0x2d && !(first >= 0x30 && first <= 0x39)) return false; // a number (the scan checked its form)
        const x = Number(buf.toString('latin1', v, vEnd));
        if (!Number.isFinite(x)) return false;
        bits.setFloat64(0, x === 0 ? 0 : x);
        this.writeText(bits.getBigUint64(0).toString());
        return true;
      }
      default: return false;
    }
  }

  private byte(b: number): void {
    if (this.pos === this.out.length) this.grow(1);
    this.out[this.pos++] = b;
  }

  private copy(src: Buffer, from: number, to: number): void {
    const n = to - from;
    if (this.pos + n > this.out.length) this.grow(n);
    src.copy(this.out, this.pos, from, to);
    this.pos += n;
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

function allDigits(buf: Buffer, from: number, to: number): boolean {
  if (to <= from) return false;
  for (let i = from; i < to; i++) if (buf[i] < 0x30 || buf[i] > 0x39) return false;
  return true;
}

/** How many decimal digits end just before `at`. */
function digitsBefore(buf: Buffer, at: number): number {
  let n = 0;
  while (buf[at - 1 - n] >= 0x30 && buf[at - 1 - n] <= 0x39) n++;
  return n;
}
