/**
 * One ledger record: an event, its position (seq) and its link in the hash chain. A record's line is
 * the canonical JSON of `{event, hash, prev, seq}`, so the bytes on disk are a function of the record
 * and any changed byte is detectable.
 */
import { canonicalJson, type WardenEvent } from '../../core/event.js';
import type { CanonicalWriter } from '../../core/canonical.js';
import { sha256Hex } from '../../core/hash.js';
import { CorruptRecordError } from '../errors.js';

export interface LedgerRecord {
  seq: number;
  /** hash of the record before (GENESIS_HASH for seq 1). */
  prev: string;
  hash: string;
  event: WardenEvent;
}

export const GENESIS_HASH = '0'.repeat(64);

export { sha256Hex };

/** sha256 hex over `prev \n seq \n canonicalJson(event)`. */
export function recordHash(prev: string, seq: number, event: WardenEvent): string {
  return hashOf(prev, seq, canonicalJson(event));
}

function hashOf(prev: string, seq: number, eventJson: string): string {
  return sha256Hex(`${prev}\n${seq}\n${eventJson}`);
}

/** Reused per thread: the message a record's hash covers. */
let message = Buffer.allocUnsafe(16 << 10);

/** recordHash of an event given as its canonical JSON's UTF-8 bytes (the spool's commit). */
export function recordHashOfBytes(prev: string, seq: number, eventJson: Uint8Array): string {
  const digits = String(seq);
  const room = prev.length * 3 + digits.length + 2 + eventJson.length;
  if (message.length < room) message = Buffer.allocUnsafe(Math.max(room, message.length * 2));
  let p = message.write(prev, 0, 'utf8'); // hex in practice; UTF-8 as the string form is hashed
  message[p++] = 0x0a;
  for (let i = 0; i < digits.length; i++) message[p++] = digits.charCodeAt(i);
  message[p++] = 0x0a;
  message.set(eventJson, p);
  return sha256Hex(message.subarray(0, p + eventJson.length));
}

/**
 * encodeRecord for an event given as canonical bytes: appends the record's line to `out` and returns
 * its hash (the spool's commit, which builds a batch's lines in one buffer).
 */
export function writeRecordLine(out: CanonicalWriter, prev: string, seq: number, eventJson: Uint8Array): string {
  const hash = recordHashOfBytes(prev, seq, eventJson);
  out.ascii('{"event":');
  out.bytes(eventJson);
  // Piece by piece: no string per line (prev and hash are hex).
  out.ascii(',"hash":"');
  out.ascii(hash);
  out.ascii('","prev":"');
  out.ascii(prev);
  out.ascii('","seq":');
  out.ascii(String(seq));
  out.ascii('}\n');
  return hash;
}

/**
 * The hash and the line of a record whose event is already canonical JSON. Written out by hand
 * because canonical key order is event, hash, prev, seq and the event JSON can be reused as is:
 * the result equals serializeRecord() (tested).
 */
export function encodeRecord(prev: string, seq: number, eventJson: string): { hash: string; line: string } {
  const hash = hashOf(prev, seq, eventJson);
  return { hash, line: `{"event":${eventJson},"hash":"${hash}","prev":"${prev}","seq":${seq}}\n` };
}

/** One line of canonical JSON, newline-terminated. */
export function serializeRecord(r: LedgerRecord): string {
  return `${canonicalJson({ event: r.event, hash: r.hash, prev: r.prev, seq: r.seq })}\n`;
}

const HEX64 = /^[0-9a-f]{64}$/;
const SEQ_AT_END = /"seq":([1-9][0-9]{0,15})\}\n?$/;

/** Parses one line (with or without its newline). Checks shape only; hashes are verify's job. */
export function parseRecordLine(line: string): LedgerRecord {
  const text = line.endsWith('\n') ? line.slice(0, -1) : line;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new CorruptRecordError(`record line is not JSON (${(err as Error).message})`, seqFromText(text));
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CorruptRecordError('record line is not a JSON object', seqFromText(text));
  }
  const r = value as Record<string, unknown>;
  const seq = Number.isSafeInteger(r.seq) && (r.seq as number) > 0 ? (r.seq as number) : null;
  const fail = (what: string) => new CorruptRecordError(`record ${what}`, seq);
  const keys = Object.keys(r);
  if (keys.length !== 4 || !('event' in r && 'hash' in r && 'prev' in r && 'seq' in r)) {
    throw fail(`must have exactly the fields event, hash, prev, seq (has ${keys.join(', ')})`);
  }
  if (seq === null) throw fail('seq is not a positive integer');
  if (typeof r.prev !== 'string' || !HEX64.test(r.prev)) throw fail('prev is not a sha256 hex digest');
  if (typeof r.hash !== 'string' || !HEX64.test(r.hash)) throw fail('hash is not a sha256 hex digest');
  const problem = eventShapeProblem(r.event);
  if (problem) throw fail(`event ${problem}`);
  return { seq, prev: r.prev, hash: r.hash, event: r.event as WardenEvent };
}

/**
 * The minimum the ledger itself relies on (queries sort by ts and filter by kind). Full schema
 * validation belongs to the collectors; repeating it here would halve the append rate.
 */
export function eventShapeProblem(event: unknown): string | null {
  if (typeof event !== 'object' || event === null || Array.isArray(event)) return 'is not an object';
  const e = event as Record<string, unknown>;
  if (typeof e.ts !== 'number' || !Number.isFinite(e.ts)) return 'has no numeric ts';
  if (typeof e.kind !== 'string') return 'has no kind';
  return null;
}

function seqFromText(text: string): number | null {
  const m = SEQ_AT_END.exec(text);
  return m ? Number(m[1]) : null;
}

const LINE_SHAPE = /^\{"event":(\{.*\}),"hash":"([0-9a-f]{64})","prev":"([0-9a-f]{64})","seq":([1-9][0-9]{0,15})\}$/s;

/**
 * Byte-level check used when reopening the spool: does the line have the exact layout the spool
 * writes, and does its hash cover exactly its bytes? Any torn or flipped byte fails this. It does not
 * re-canonicalize the event (a forger who recomputes a hash over non-canonical bytes is verify's
 * business), which keeps reopening a 64 MiB segment fast.
 */
export function checkLineBytes(text: string): { seq: number; prev: string; hash: string; selfOk: boolean } | null {
  const m = LINE_SHAPE.exec(text);
  if (!m) return null;
  const seq = Number(m[4]);
  if (!Number.isSafeInteger(seq)) return null;
  return { seq, prev: m[3], hash: m[2], selfOk: hashOf(m[3], seq, m[1]) === m[2] };
}

/**
 * Full check used by verify: the line parses, its hash is the hash of its content under the reference
 * canonicalization, and its bytes are exactly the canonical serialization (so even a change that
 * keeps the JSON value, like added whitespace, is caught).
 */
export function inspectLine(text: string):
  | { ok: true; record: LedgerRecord; selfOk: boolean; why: string | null }
  | { ok: false; error: CorruptRecordError } {
  let record: LedgerRecord;
  try {
    record = parseRecordLine(text);
  } catch (err) {
    if (err instanceof CorruptRecordError) return { ok: false, error: err };
    throw err;
  }
  let eventJson: string;
  try {
    eventJson = canonicalJson(record.event);
  } catch (err) {
    return { ok: false, error: new CorruptRecordError(`event has no canonical form (${(err as Error).message})`, record.seq) };
  }
  const expected = encodeRecord(record.prev, record.seq, eventJson);
  if (expected.hash !== record.hash) {
    return { ok: true, record, selfOk: false, why: 'its content does not match its hash' };
  }
  if (expected.line !== `${text}\n`) {
    return { ok: true, record, selfOk: false, why: 'its bytes are not the canonical encoding of its content' };
  }
  return { ok: true, record, selfOk: true, why: null };
}
