import { decodeTime, isValid, monotonicFactory, ulid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../core/hash.js';
import { derivedEventId, monotonicUlid, newCorrelationId, newEventId } from '../../core/ids.js';

const CROCKFORD = /^[0-9A-HJKMNP-TV-Z]{26}$/;

describe('newEventId: monotonic ULIDs', () => {
  it('is a valid ULID whose time part is the given time, and strictly increases within one millisecond', () => {
    const ts = Date.now() + 60_000; // later than any ID made so far in this process
    const ids = Array.from({ length: 5000 }, () => newEventId(ts));
    for (const id of ids) {
      expect(id).toMatch(CROCKFORD);
      expect(isValid(id)).toBe(true);
      expect(decodeTime(id)).toBe(ts);
    }
    for (let i = 1; i < ids.length; i++) expect(ids[i] > ids[i - 1]).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('never goes backwards when the clock does (the last time is kept, as ulid monotonicFactory does)', () => {
    const later = Date.now() + 120_000;
    const a = newEventId(later);
    const b = newEventId(later - 5000);
    expect(b > a).toBe(true);
    expect(decodeTime(b)).toBe(later);
    expect(newCorrelationId()).toMatch(/^wc_[0-9A-HJKMNP-TV-Z]{26}$/);
  });

  it('matches the ulid package for the same random bits: first ID of a millisecond, increments and carries', () => {
    // 80 random bits as the package draws them (16 base32 digits from prng()*32, each put in front of
    // the ones before) and as ours does (two 40-bit numbers, most significant first).
    const digits = [31, 31, 31, 31, 31, 31, 31, 30, 31, 31, 31, 31, 31, 31, 31, 31 - 2];
    const toNumber = (ds: number[]) => ds.reduce((n, d) => n * 32 + d, 0);
    const ours = monotonicUlid(((q) => () => q.shift()!)([toNumber(digits.slice(0, 8)), toNumber(digits.slice(8))]));
    const theirs = monotonicFactory(((q) => () => q.shift()! / 32 + 1e-9)([...digits].reverse()));
    const ts = 1_700_000_000_000;
    for (let i = 0; i < 6; i++) {
      const x = ours(ts);
      expect(x).toBe(theirs(ts)); // the fourth ID carries out of the low half
    }
    expect(ours(ts + 1).slice(0, 10)).toBe(theirs(ts + 1).slice(0, 10)); // a new millisecond: same time part
  });

  it('refuses a time a ULID cannot hold, naming it (as the ulid package does)', () => {
    const gen = monotonicUlid(() => 0);
    expect(() => gen(2 ** 48)).toThrow(/Cannot encode a time larger than/);
    expect(() => gen(-5)).toThrow(/Time must be positive/);
    expect(() => gen(1.5)).toThrow(/Time must be an integer/);
  });
});

describe('derivedEventId: a ULID from the record time and a digest of its identity', () => {
  /** What it was defined as: the ulid package fed the digest's bytes as its prng (byte / 256 per call). */
  const reference = (ts: number, namespace: string, ...parts: (string | number)[]) => {
    const hex = sha256Hex(`${namespace}\0${parts.join('\0')}`);
    let i = 0;
    return ulid(ts, () => parseInt(hex.slice(2 * (i % 32), 2 * (i++ % 32) + 2), 16) / 256);
  };

  it('gives the reference ID for the same time and parts, interleaved times included', () => {
    const base = 1_700_000_000_000;
    for (let i = 0; i < 3000; i++) {
      const ts = base + (i % 7) * 13 + (i % 2 ? 0 : 86_400_000);
      const parts = ['bull', `q${i % 5}`, `${ts}-${i}`, i % 3, 'ünï ✓'];
      const id = derivedEventId(ts, 'warden.bullmq', ...parts);
      expect(id).toBe(reference(ts, 'warden.bullmq', ...parts));
      expect(decodeTime(id)).toBe(ts);
    }
  });

  it('differs when any part differs, and refuses a time a ULID cannot hold (the time after it still works)', () => {
    const ts = 1_700_000_000_123;
    expect(derivedEventId(ts, 'n', 'a', 'b')).not.toBe(derivedEventId(ts, 'n', 'a', 'c'));
    expect(derivedEventId(ts, 'n', 'a', 'b').slice(10)).toBe(derivedEventId(ts + 1, 'n', 'a', 'b').slice(10));
    expect(() => derivedEventId(2 ** 48, 'n', 'x')).toThrow(/Cannot encode a time larger than/);
    expect(() => derivedEventId(1.5, 'n', 'x')).toThrow(/Time must be an integer/);
    expect(derivedEventId(ts, 'n', 'x')).toBe(reference(ts, 'n', 'x'));
  });
});
