import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../core/event.js';
import { encodeRecord, recordHashOfBytes } from '../../ledger/spool/record.js';
import {
  CorruptRecordError, GENESIS_HASH, parseRecordLine, recordHash, serializeRecord, type LedgerRecord,
} from '../../ledger/index.js';
import { event } from '../harness/ledger.js';

function record(seq = 3, prev = 'a1'.repeat(32)): LedgerRecord {
  const ev = event();
  return { seq, prev, hash: recordHash(prev, seq, ev), event: ev };
}

describe('record format', () => {
  it('genesis is 64 zeros', () => {
    expect(GENESIS_HASH).toMatch(/^0{64}$/);
  });

  it('hashes prev, seq and the canonical event, newline-separated', () => {
    const ev = event();
    const want = createHash('sha256').update(`${GENESIS_HASH}\n1\n${canonicalJson(ev)}`).digest('hex');
    expect(recordHash(GENESIS_HASH, 1, ev)).toBe(want);
    expect(recordHash(GENESIS_HASH, 2, ev)).not.toBe(want);
    expect(recordHash('f'.repeat(64), 1, ev)).not.toBe(want);
    // Key order of the object does not matter, values do.
    const reordered = Object.fromEntries(Object.entries(ev).reverse()) as typeof ev;
    expect(recordHash(GENESIS_HASH, 1, reordered)).toBe(want);
    expect(recordHash(GENESIS_HASH, 1, { ...ev, attempt: 2 })).not.toBe(want);
  });

  it('serializes to one canonical JSON line, and the spool encoder writes the same bytes', () => {
    const r = record();
    const line = serializeRecord(r);
    expect(line.endsWith('\n')).toBe(true);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    expect(line).toBe(`${canonicalJson(r)}\n`);
    expect(encodeRecord(r.prev, r.seq, canonicalJson(r.event))).toEqual({ hash: r.hash, line });
  });

  it('hashes an event given as canonical bytes exactly as recordHash does', () => {
    for (const reason of ['ascii', 'ünïcödé ✓', 'x'.repeat(40_000), '😀\n"']) {
      const r = record();
      const ev = { ...r.event, reason };
      const bytes = Buffer.from(canonicalJson(ev), 'utf8');
      for (const seq of [1, 9, 10, 123_456_789_012]) expect(recordHashOfBytes(r.prev, seq, bytes)).toBe(recordHash(r.prev, seq, ev));
    }
  });

  it('parses its own lines, with or without the newline', () => {
    const r = record();
    expect(parseRecordLine(serializeRecord(r))).toEqual(r);
    expect(parseRecordLine(serializeRecord(r).trimEnd())).toEqual(r);
  });

  const good = serializeRecord(record(42)).trimEnd();
  const bad: [string, string, number | null, RegExp][] = [
    ['truncated JSON', good.slice(0, 300), null, /not JSON/],
    ['garbage before a readable tail', `x${good}`, 42, /not JSON/],
    ['an array', '[1,2]', null, /not a JSON object/],
    ['a missing field', good.replace(/,"hash":"[0-9a-f]{64}"/, ''), 42, /exactly the fields/],
    ['an extra field', good.replace('{"event"', '{"extra":1,"event"'), 42, /exactly the fields/],
    ['a short hash', good.replace(/"hash":"[0-9a-f]{2}/, '"hash":"'), 42, /hash is not/],
    ['an uppercase prev', good.replace(/"prev":"a1/, '"prev":"A1'), 42, /prev is not/],
    ['seq 0', good.replace('"seq":42', '"seq":0'), null, /seq is not/],
    ['a string seq', good.replace('"seq":42', '"seq":"42"'), null, /seq is not/],
    ['an event without ts', good.replace(/"ts":\d+/, '"ts":"soon"'), 42, /numeric ts/],
    ['an event that is not an object', good.replace(/^\{"event":\{.*\},"hash"/, '{"event":7,"hash"'), 42, /event is not an object/],
  ];
  it.each(bad)('rejects %s with CorruptRecordError', (_name, line, seq, message) => {
    let caught: unknown;
    try {
      parseRecordLine(line);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CorruptRecordError);
    expect((caught as CorruptRecordError).seq).toBe(seq);
    expect((caught as Error).message).toMatch(message);
  });
});
