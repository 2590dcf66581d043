/**
 * The fast path of verify: decides from a record line's bytes alone, without JSON.parse and without
 * re-encoding, that the line is exactly what the spool would write for it: the spool's layout
 * (`{"event":E,"hash":"H","prev":"P","seq":N}`), an event E that is already in canonical form
 * (RFC 8785 as core/canonical.ts writes it: sorted unique keys, no whitespace, JSON.stringify's
 * escapes, ECMAScript number forms) with a numeric `ts` and a string `kind`, and H = sha256 of
 * `P \n N \n E`.
 *
 * It only ever says "good" or "not sure": anything it does not handle (non-ASCII bytes, lone
 * surrogate escapes, any escape at all, deep nesting, any malformation) is "not sure", and the caller falls back to
 * the reference check (record.ts inspectLine), which names the problem. So it can be no more lenient
 * than the reference: a line it accepts round-trips byte for byte through JSON.parse + canonicalJson.
 */
import { sha256Hex } from '../../core/hash.js';

export interface FastLink {
  seq: number;
  prev: string;
  hash: string;
}

const Q = 0x22; // "
const LB = 0x7b; // {
const RB = 0x7d; // }
const LS = 0x5b; // [
const RS = 0x5d; // ]
const COMMA = 0x2c;
const COLON = 0x3a;

const HEAD = Buffer.from('{"event":');
const HASH_AT = Buffer.from(',"hash":"');
const PREV_AT = Buffer.from('","prev":"');
const SEQ_AT = Buffer.from('","seq":');
const TAIL_FIXED = HASH_AT.length + 64 + PREV_AT.length + 64 + SEQ_AT.length; // up to the seq digits

/**
 * Checks the line `buf[start, end)` (without its newline). Returns its seq/prev/hash when the line is
 * certainly good on its own (the seq link is the caller's), or null when the reference check must
 * decide. With `expectPrev` (the hash of the record before), a line whose prev differs is null too.
 */
export function fastCheckLine(buf: Buffer, start: number, end: number, expectPrev?: string): FastLink | null {
  if (!lineLayout(buf, start, end)) return null;
  const { seq, seqAt, hash: hashAt, prev: prevAt, event: evStart, eventEnd: tail } = LINE;
  if (expectPrev !== undefined && !textAt(buf, prevAt, expectPrev)) return null;
  // prev and hash need no hex check here: hash must equal a digest, prev the caller's known hash.
  // Validated on the bytes, not a decoded copy: printable ASCII without escapes inside strings, and
  // nothing but JSON structure outside them (so latin1 = utf8 and strings are canonical as written).
  if (buf[evStart] !== LB) return null;
  const scan = new Scanner(buf, tail, null);
  if (scan.value(evStart, 0) !== tail || !scan.topOk()) return null;
  // The digest of `prev \n seq \n event`, assembled from the line's own bytes, compared with the
  // line's hash where it lies (the only strings made are the digest and, without expectPrev, prev).
  const digits = end - 1 - seqAt;
  const evLen = tail - evStart;
  const msgLen = 64 + 1 + digits + 1 + evLen;
  if (scratch.length < msgLen) scratch = Buffer.allocUnsafe(Math.max(msgLen, scratch.length * 2));
  buf.copy(scratch, 0, prevAt, prevAt + 64);
  scratch[64] = 0x0a;
  for (let i = 0; i < digits; i++) scratch[65 + i] = buf[seqAt + i];
  scratch[65 + digits] = 0x0a;
  buf.copy(scratch, 66 + digits, evStart, tail);
  const hash = sha256Hex(scratch.subarray(0, msgLen));
  if (!textAt(buf, hashAt, hash)) return null;
  return { seq, prev: expectPrev ?? buf.toString('latin1', prevAt, prevAt + 64), hash };
}

/** Filled by lineLayout: the seq and where its digits start, and the offsets of hash, prev (64 bytes each) and the event. */
export const LINE = { seq: 0, seqAt: 0, hash: 0, prev: 0, event: 0, eventEnd: 0 };

/**
 * Whether `buf[start, end)` has the spool's fixed layout `{"event":E,"hash":"H","prev":"P","seq":N}`,
 * read from both ends (the tail has a fixed length apart from the seq's digits); when it does, LINE
 * says where its parts lie. Nothing inside E, H or P is checked.
 */
export function lineLayout(buf: Buffer, start: number, end: number): boolean {
  if (end - start < HEAD.length + 2 + TAIL_FIXED + 2) return false;
  if (buf[end - 1] !== RB) return false;
  let d = end - 1;
  let seq = 0;
  let mul = 1;
  while (d > start && buf[d - 1] >= 0x30 && buf[d - 1] <= 0x39) {
    d--;
    seq += (buf[d] - 0x30) * mul;
    mul *= 10;
  }
  const digits = end - 1 - d;
  if (digits === 0 || digits > 16 || buf[d] === 0x30 || !Number.isSafeInteger(seq)) return false;
  const tail = d - TAIL_FIXED; // where `,"hash":"` starts = end of the event
  if (tail <= start + HEAD.length) return false;
  if (!bytesAt(buf, start, HEAD) || !bytesAt(buf, tail, HASH_AT)) return false;
  const hashAt = tail + HASH_AT.length;
  const prevAt = hashAt + 64 + PREV_AT.length;
  if (!bytesAt(buf, hashAt + 64, PREV_AT) || !bytesAt(buf, prevAt + 64, SEQ_AT)) return false;
  LINE.seq = seq;
  LINE.seqAt = d;
  LINE.hash = hashAt;
  LINE.prev = prevAt;
  LINE.event = start + HEAD.length;
  LINE.eventEnd = tail;
  return true;
}

/**
 * For readers that take a line's bytes as they are (the shipper's fast rows, ledger/store/fast-rows.ts):
 * the line has the spool's layout (LINE says where), hash and prev are lowercase hex, its event is
 * canonical JSON in the fast path's sense (printable ASCII, no escapes), and its top-level members
 * are written to `members` (4 offsets each: key start and end without the quotes, value start and
 * end). Returns the member count, or -1: not this fast path's line (too many members included); the
 * caller then parses the line as JSON. The hash is not checked.
 */
export function scanSpoolLine(buf: Buffer, start: number, end: number, members: Int32Array): number {
  if (!lineLayout(buf, start, end) || !isHex(buf, LINE.hash) || !isHex(buf, LINE.prev)) return -1;
  if (buf[LINE.event] !== LB) return -1;
  const scan = new Scanner(buf, LINE.eventEnd, members);
  if (scan.value(LINE.event, 0) !== LINE.eventEnd || !scan.topOk() || scan.count < 0) return -1;
  return scan.count;
}

function isHex(buf: Buffer, at: number): boolean {
  for (let i = at; i < at + 64; i++) {
    const c = buf[i];
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66))) return false;
  }
  return true;
}

/** Whether the bytes at `at` are the ASCII text `t`. */
function textAt(buf: Buffer, at: number, t: string): boolean {
  for (let i = 0; i < t.length; i++) if (buf[at + i] !== t.charCodeAt(i)) return false;
  return true;
}

/** Reused per thread: the message a line's hash covers. */
let scratch = Buffer.allocUnsafe(16 << 10);

function bytesAt(buf: Buffer, at: number, want: Buffer): boolean {
  for (let i = 0; i < want.length; i++) if (buf[at + i] !== want[i]) return false;
  return true;
}

const MAX_DEPTH = 64;

/**
 * A validating scan of canonical JSON over the bytes `buf[.., end)`; every method returns the position
 * after what it read, or -1. Strings must be printable ASCII without a backslash.
 */
class Scanner {
  private tsIsNumber = false;
  private kindIsString = false;
  /** Top-level members recorded into `members` (-1: more than it holds). */
  count = 0;

  constructor(private readonly b: Buffer, private readonly end: number, private readonly members: Int32Array | null) {}

  topOk(): boolean {
    return this.tsIsNumber && this.kindIsString;
  }

  value(p: number, depth: number): number {
    if (p >= this.end) return -1;
    const c = this.b[p];
    if (c === Q) return this.string(p);
    if (c === LB) return this.object(p, depth + 1);
    if (c === LS) return this.array(p, depth + 1);
    if (c === 0x74) return bytesAt(this.b, p, TRUE) ? p + 4 : -1;
    if (c === 0x66) return bytesAt(this.b, p, FALSE) ? p + 5 : -1;
    if (c === 0x6e) return bytesAt(this.b, p, NULL) ? p + 4 : -1;
    return this.number(p);
  }

  /** A number token in exactly the form String(Number(token)) gives. */
  private number(p: number): number {
    const b = this.b;
    let q = p;
    let simple = true; // -?(0|[1-9][0-9]*) with at most 15 digits: canonical as written
    if (b[q] === 0x2d) q++;
    const firstDigit = q;
    while (q < this.end) {
      const c = b[q];
      if (c >= 0x30 && c <= 0x39) q++;
      else if (c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d) { simple = false; q++; }
      else break;
    }
    const n = q - firstDigit;
    if (n === 0) return -1;
    if (simple && n <= 15 && (b[firstDigit] !== 0x30 || (n === 1 && firstDigit === p))) return q;
    const token = b.toString('latin1', p, q);
    return String(Number(token)) === token ? q : -1;
  }

  /** Printable ASCII up to the closing quote; an escape or any other byte: not sure. */
  private string(p: number): number {
    const b = this.b;
    const end = this.end;
    for (let q = p + 1; q < end; q++) {
      const k = IN_STRING[b[q]];
      if (k !== 0) return k === 1 ? q + 1 : -1;
    }
    return -1;
  }

  private array(p: number, depth: number): number {
    if (depth > MAX_DEPTH) return -1;
    const b = this.b;
    let q = p + 1;
    if (b[q] === RS) return q + 1;
    for (;;) {
      q = this.value(q, depth);
      if (q < 0 || q >= this.end) return -1;
      const c = b[q];
      if (c === RS) return q + 1;
      if (c !== COMMA) return -1;
      q++;
    }
  }

  private object(p: number, depth: number): number {
    if (depth > MAX_DEPTH) return -1;
    const b = this.b;
    let q = p + 1;
    if (b[q] === RB) return q + 1;
    let prevKey = -1;
    let prevKeyEnd = -1;
    for (;;) {
      if (b[q] !== Q) return -1;
      const keyEnd = this.string(q);
      if (keyEnd < 0) return -1;
      // Keys strictly ascending, no duplicates (printable ASCII: code units = bytes).
      if (prevKey >= 0 && compareRange(b, prevKey + 1, prevKeyEnd - 1, q + 1, keyEnd - 1) >= 0) return -1;
      prevKey = q;
      prevKeyEnd = keyEnd;
      if (b[keyEnd] !== COLON) return -1;
      const v = keyEnd + 1;
      q = this.value(v, depth);
      if (q < 0 || q >= this.end) return -1;
      if (depth === 1) {
        this.noteTop(prevKey, keyEnd, v);
        if (this.members !== null) this.noteMember(prevKey, keyEnd, v, q);
      }
      const c = b[q];
      if (c === RB) return q + 1;
      if (c !== COMMA) return -1;
      q++;
    }
  }

  private noteMember(key: number, keyEnd: number, v: number, vEnd: number): void {
    const m = this.members!;
    const i = this.count * 4;
    if (this.count < 0 || i + 4 > m.length) {
      this.count = -1;
      return;
    }
    m[i] = key + 1;
    m[i + 1] = keyEnd - 1;
    m[i + 2] = v;
    m[i + 3] = vEnd;
    this.count++;
  }

  /** The top level's `ts` must be a number and its `kind` a string (eventShapeProblem). */
  private noteTop(key: number, keyEnd: number, v: number): void {
    const len = keyEnd - key - 2;
    if (len === 2 && bytesAt(this.b, key + 1, TS_KEY)) {
      const c = this.b[v];
      this.tsIsNumber = c === 0x2d || (c >= 0x30 && c <= 0x39);
    } else if (len === 4 && bytesAt(this.b, key + 1, KIND_KEY)) {
      this.kindIsString = this.b[v] === Q;
    }
  }
}

/** Per byte inside a string: 0 plain (printable ASCII), 1 the closing quote, 2 not sure (escape, control, non-ASCII). */
const IN_STRING = new Uint8Array(256).map((_, c) => (c === Q ? 1 : c < 0x20 || c > 0x7e || c === 0x5c ? 2 : 0));

const TRUE = Buffer.from('true');
const FALSE = Buffer.from('false');
const NULL = Buffer.from('null');
const TS_KEY = Buffer.from('ts"');
const KIND_KEY = Buffer.from('kind"');

function compareRange(b: Buffer, a0: number, a1: number, c0: number, c1: number): number {
  const n = Math.min(a1 - a0, c1 - c0);
  for (let i = 0; i < n; i++) {
    const x = b[a0 + i] - b[c0 + i];
    if (x !== 0) return x;
  }
  return (a1 - a0) - (c1 - c0);
}
