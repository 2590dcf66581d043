/**
 * canonicalJson must produce exactly the bytes of the `canonicalize` package (the RFC 8785 reference
 * implementation), or refuse. Compared on generated values that exercise escaping, number formatting, key order
 * (including integer-like keys and surrogate pairs) and the key-order cache.
 */
import { describe, expect, it } from 'vitest';
import canonicalizeModule from 'canonicalize';
import { CanonicalWriter, NotJsonError, canonicalJson } from '../../core/canonical.js';
import { event } from '../harness/ledger.js';

// CommonJS whose typings declare an ES default export; at runtime the import is the function.
const reference = canonicalizeModule as unknown as (value: unknown) => string | undefined;

// Small deterministic PRNG (mulberry32) so a failure reproduces.
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CHARS = ['a', 'Z', '0', ' ', '"', '\\', '/', '\n', '\t', '\u0000', '\u001f', '\u007f', 'é', '中', '\u2028',
  '\u2029', '😀', '\ud800', '\udfff', '\ufeff', '\uffff', '{', ':', ','];
const NUMBERS = [0, -0, 1, -1, 0.1, 1e21, 1e-7, 123456789.125, 5e-324, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2,
  -1.7976931348623157e308, 1 / 3, 100, 1e20];
const KEYS = ['a', 'b', 'B', '', '1', '10', '9', '01', 'é', 'e\u0301', '😀', '\uffff', '__proto__x', 'kind', 'ts'];

function gen(r: () => number, depth: number): unknown {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  const roll = r();
  if (depth > 3 || roll < 0.5) {
    const p = r();
    if (p < 0.4) return Array.from({ length: Math.floor(r() * 8) }, () => pick(CHARS)).join('');
    if (p < 0.7) return pick(NUMBERS);
    if (p < 0.8) return r() < 0.5;
    if (p < 0.9) return null;
    return Math.floor(r() * 1e6) / 1000;
  }
  if (roll < 0.7) return Array.from({ length: Math.floor(r() * 5) }, () => (r() < 0.1 ? undefined : gen(r, depth + 1)));
  if (roll < 0.75) return new Date(Math.floor(r() * 2e12));
  const obj: Record<string, unknown> = {};
  const n = Math.floor(r() * 7);
  for (let i = 0; i < n; i++) obj[r() < 0.6 ? pick(KEYS) : pick(CHARS) + pick(CHARS)] = r() < 0.1 ? undefined : gen(r, depth + 1);
  return obj;
}

describe('canonicalJson', () => {
  it('is reentrant: a toJSON that asks for canonical JSON gets its own, and the outer result is whole', () => {
    const inner = { toJSON: () => ({ nested: canonicalJson({ b: 2, a: 1 }) }) };
    expect(canonicalJson({ z: inner, a: 'x' })).toBe('{"a":"x","z":{"nested":"{\\"a\\":1,\\"b\\":2}"}}');
    expect(canonicalJson({ after: true })).toBe('{"after":true}');
  });

  it('matches the RFC 8785 reference on 20 000 generated values', () => {
    const r = rng(20240501);
    for (let i = 0; i < 20_000; i++) {
      const v = gen(r, 0);
      expect(canonicalJson(v), JSON.stringify(v)).toBe(reference(v));
    }
  });

  it('matches the RFC 8785 reference on events, including the same keys in different insertion orders', () => {
    const r = rng(7);
    for (let i = 0; i < 2000; i++) {
      const ev = event({ input: gen(r, 1), attrs: { z: 1, a: 'x', '10': true, '9': null } });
      const entries = Object.entries(ev);
      if (i % 3 === 1) entries.reverse();
      if (i % 3 === 2) entries.sort(() => r() - 0.5);
      const shuffled = Object.fromEntries(entries);
      expect(canonicalJson(shuffled)).toBe(reference(ev));
    }
  });

  it.each([
    ['NaN', { a: Number.NaN }],
    ['Infinity', [Number.POSITIVE_INFINITY]],
    ['a function', { f: () => 1 }],
    ['a BigInt', { n: 1n }],
    ['a sparse array', [1, , 3]], // eslint-disable-line no-sparse-arrays
    ['a top-level undefined', undefined],
  ])('refuses %s, as a string and as bytes, keeping what the writer had written', (_name, value) => {
    expect(() => canonicalJson(value)).toThrow(NotJsonError);
    const w = new CanonicalWriter();
    w.write({ before: 1 });
    const kept = w.length;
    // Nested after something written (a top-level undefined is only an error at the top).
    if (value !== undefined) expect(() => w.write({ ok: 'partial', z: value })).toThrow(NotJsonError);
    expect(() => w.write(value)).toThrow(NotJsonError);
    expect(w.length).toBe(kept);
    expect(w.buf.subarray(0, w.length).toString()).toBe('{"before":1}');
  });

  it('refuses a cycle', () => {
    const a: Record<string, unknown> = {};
    a.b = { a };
    expect(() => canonicalJson(a)).toThrow(NotJsonError);
  });
});

/** Whether canonicalJson accepts the value (the reference writes some values canonicalJson refuses). */
function isJson(v: unknown): boolean {
  try { canonicalJson(v); return true; } catch { return false; }
}

describe('CanonicalWriter (canonical JSON as bytes)', () => {
  /** Long strings (the native UTF-8 path), big and negative numbers, next to the generator's values. */
  function genWide(r: () => number, depth: number): unknown {
    const p = r();
    if (p < 0.15) return Array.from({ length: 40 + Math.floor(r() * 200) }, () => CHARS[Math.floor(r() * CHARS.length)]).join('');
    if (p < 0.25) return 'x'.repeat(60 + Math.floor(r() * 10)) + (r() < 0.5 ? 'é' : '');
    if (p < 0.35) return Math.floor((r() - 0.5) * 2 * 10 ** Math.floor(r() * 17));
    if (p < 0.4) return [-1e15, 1e15, -999_999_999_999_999, 999_999_999_999_999, 2 ** 53, -(2 ** 31), -0, 10, 1e16][Math.floor(r() * 9)];
    if (p < 0.55 && depth < 3) return { long: genWide(r, depth + 1), list: [genWide(r, depth + 1), gen(r, 2)] };
    return gen(r, depth);
  }

  it('writes exactly the UTF-8 bytes of the RFC 8785 reference, value after value into one buffer', () => {
    const r = rng(4242);
    const w = new CanonicalWriter(16); // starts tiny: growing is exercised
    const expected: Buffer[] = [];
    for (let i = 0; i < 20_000; i++) {
      const v = i % 2 ? genWide(r, 0) : gen(r, 0);
      const text = reference(v);
      if (text === undefined || !isJson(v)) continue;
      const at = w.length;
      w.write(v);
      expect(w.buf.subarray(at, w.length).toString('utf8'), JSON.stringify(v)).toBe(text);
      expected.push(Buffer.from(text, 'utf8'));
    }
    expect(Buffer.compare(w.buf.subarray(0, w.length), Buffer.concat(expected))).toBe(0);
  });

  it('writes events as the reference does, whatever their insertion order', () => {
    const r = rng(99);
    const w = new CanonicalWriter();
    for (let i = 0; i < 2000; i++) {
      const ev = event({ input: genWide(r, 1), attrs: { z: 1, a: 'x', '10': true, '9': null, note: 'ünïcödé ✓ '.repeat(i % 12) } });
      const shuffled = Object.fromEntries(i % 2 ? Object.entries(ev).reverse() : Object.entries(ev));
      w.length = 0;
      w.write(shuffled);
      expect(w.buf.subarray(0, w.length).equals(Buffer.from(reference(ev)!, 'utf8'))).toBe(true);
    }
  });

  it('refuses a cycle', () => {
    const a: Record<string, unknown> = {};
    a.b = { a };
    expect(() => new CanonicalWriter().write(a)).toThrow(NotJsonError);
  });
});
