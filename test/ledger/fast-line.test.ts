/**
 * verify's fast path (ledger/spool/fast-line.ts) may only ever accept what the reference check
 * (inspectLine: parse, re-encode canonically, compare bytes and hash) accepts; everything else it
 * must leave to the reference.
 */
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../core/event.js';
import { encodeRecord, GENESIS_HASH, inspectLine, serializeRecord, recordHash } from '../../ledger/spool/record.js';
import { fastCheckLine } from '../../ledger/spool/fast-line.js';
import { event as harnessEvent } from '../harness/ledger.js';

// The harness's event carries a non-ASCII name, which the fast path leaves to the reference.
const event = (init: Parameters<typeof harnessEvent>[0] = {}) => harnessEvent({ input: { to: 'user@example.com', n: 1 }, ...init });

function check(line: string) {
  const buf = Buffer.from(`junk\n${line}\n`);
  return fastCheckLine(buf, 5, buf.length - 1);
}

/** A line whose hash covers exactly `eventJson` as written (canonical or not). */
function lineOver(eventJson: string, seq = 7, prev = GENESIS_HASH): string {
  return encodeRecord(prev, seq, eventJson).line.slice(0, -1);
}

describe('fastCheckLine', () => {
  it('accepts what the spool writes, with seq, prev and hash', () => {
    const ev = event({ attrs: { tenant: 'acme', n: 3, ok: true, none: null }, input: { list: [1, 'x', [], {}, -2.5e-7] } });
    const prev = 'ab'.repeat(32);
    const line = serializeRecord({ seq: 123456, prev, event: ev, hash: recordHash(prev, 123456, ev) }).slice(0, -1);
    expect(check(line)).toEqual({ seq: 123456, prev, hash: recordHash(prev, 123456, ev) });
    expect(inspectLine(line)).toMatchObject({ ok: true, selfOk: true });
  });

  it('with the expected prev, accepts the line only when its prev is that hash (compared in place)', () => {
    const ev = event({ attrs: { n: 1 } });
    const prev = 'cd'.repeat(32);
    const line = serializeRecord({ seq: 9, prev, event: ev, hash: recordHash(prev, 9, ev) }).slice(0, -1);
    const buf = Buffer.from(`${line}\n`);
    expect(fastCheckLine(buf, 0, buf.length - 1, prev)).toEqual({ seq: 9, prev, hash: recordHash(prev, 9, ev) });
    expect(fastCheckLine(buf, 0, buf.length - 1, 'cd'.repeat(31) + 'ce')).toBeNull();
    expect(fastCheckLine(buf, 0, buf.length - 1, GENESIS_HASH)).toBeNull();
  });

  const canonical = canonicalJson(event({ attrs: { b: 1, a: 'x' } }));
  const variants: [string, string][] = [
    ['added whitespace', canonical.replace('{"', '{ "')],
    ['unsorted keys', canonical.replace('"a":"x","b":1', '"b":1,"a":"x"')],
    ['duplicate key', canonical.replace('"a":"x","b":1', '"a":"x","a":"x","b":1')],
    ['non-canonical number', canonical.replace('"b":1', '"b":1.0')],
    ['exponent form', canonical.replace('"b":1', '"b":1e0')],
    ['leading zero', canonical.replace('"b":1', '"b":01')],
    ['negative zero', canonical.replace('"b":1', '"b":-0')],
    ['escaped slash', canonical.replace('"a":"x"', '"a":"\\/"')],
    ['unicode escape for a printable', canonical.replace('"a":"x"', '"a":"\\u0041"')],
    ['trailing comma', canonical.replace('"b":1}', '"b":1,}')],
    ['no ts', canonical.replace(/"ts":\d+/, '"ts":"1"')],
    ['truncated', canonical.slice(0, -1)],
  ];
  it.each(variants)('leaves %s to the reference, which rejects it', (_name, json) => {
    expect(json).not.toBe(canonical);
    const line = lineOver(json);
    expect(check(line)).toBeNull();
    const ref = inspectLine(line);
    expect(ref.ok && ref.selfOk).toBe(false);
  });

  it('leaves escapes and non-ASCII to the reference (which accepts them when canonical)', () => {
    for (const s of ['line\nbreak', 'quote " here', 'back\\slash', 'café', '\u0001', '😀']) {
      const line = lineOver(canonicalJson(event({ attrs: { s } })));
      expect(check(line)).toBeNull();
      expect(inspectLine(line)).toMatchObject({ ok: true, selfOk: true });
    }
  });

  it('refuses a wrong hash, a changed layout, a zero or leading-zero seq', () => {
    const line = lineOver(canonical);
    expect(check(line)).not.toBeNull();
    // One hex digit of the hash changed (to another digit: the record's IDs and time make the hash differ per run).
    expect(check(line.replace(/"hash":"(.)/, (_m, c: string) => `"hash":"${c === 'f' ? '0' : 'f'}`))).toBeNull();
    expect(check(line.replace('"seq":7', '"seq":07'))).toBeNull();
    expect(check(lineOver(canonical, 1).replace('"seq":1}', '"seq":0}'))).toBeNull();
    expect(check(line.replace('{"event":', '{"event" :'))).toBeNull();
  });

  it('accepts nothing the reference refuses, over many random small events', () => {
    const pieces = ['0', '1', '-1', '1.5', '1e21', '"a"', '"b"', 'true', 'null', '[]', '{}', '[1,2]', '{"a":1}', '{"b":1,"a":2}', ' ', ','];
    let seed = 1;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n; };
    let accepted = 0;
    for (let i = 0; i < 3000; i++) {
      const attrs = Array.from({ length: 1 + rnd(3) }, () => pieces[rnd(pieces.length)]).join('');
      const json = canonical.replace('{"a":"x","b":1}', `{"a":${attrs}}`);
      const line = lineOver(json);
      const ref = inspectLine(line);
      const fast = check(line);
      if (fast) {
        accepted++;
        expect(ref.ok && ref.selfOk, json).toBe(true);
      }
    }
    expect(accepted).toBeGreaterThan(100);
  });
});
