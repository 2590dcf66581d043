/**
 * recordToRow / rowToRecord without an engine: exhaustive and randomized round trips, and every
 * single-column change of a row is caught. The rows are put into the shape both engines return them in
 * (JSONEachRow with 64-bit integers quoted, DateTime as text, duration_ms computed from its bits);
 * store.test.ts does the same through the real engines.
 */
import { describe, expect, it } from 'vitest';
import { canonicalJson, EVENT_FIELDS, type WardenEvent } from '../../../core/event.js';
import { recordHash, type LedgerRecord } from '../../../ledger/spool/record.js';
import {
  CorruptRowError, LEDGER_COLUMN_NAMES, TS_MAX_MS, UnrepresentableValueError, recordToRow, rowToRecord, type LedgerRow,
} from '../../../ledger/store/index.js';
import { HOSTILE, chain, event, randomEvent, rebuiltHash } from './helpers.js';
import { rng } from '../../harness/random.js';

/** The row as an engine hands it back after inserting `row`. */
function asReturned(row: LedgerRow): Record<string, unknown> {
  const out: Record<string, unknown> = { ...row };
  out.seq = String(row.seq);
  out.ts_ms = String(row.ts_ms);
  out.attempt = row.attempt === null ? null : String(row.attempt);
  // JSON carries the engine's computed float; JSON.parse(JSON.stringify(x)) is x for finite x.
  out.duration_ms = row.duration_bits === null ? null : fromBits(BigInt(row.duration_bits));
  return JSON.parse(JSON.stringify(out)) as Record<string, unknown>;
}

function fromBits(b: bigint): number {
  const v = new DataView(new ArrayBuffer(8));
  v.setBigUint64(0, b);
  return v.getFloat64(0);
}

function roundTrip(r: LedgerRecord): LedgerRecord {
  return rowToRecord(asReturned(recordToRow(r)));
}

describe('recordToRow / rowToRecord', () => {
  it('have a column for every event field', () => {
    for (const f of EVENT_FIELDS) expect(LEDGER_COLUMN_NAMES).toContain(f);
    expect(LEDGER_COLUMN_NAMES).toEqual(expect.arrayContaining(['seq', 'prev', 'hash', 'ts', 'ts_ms', 'duration_bits', 'spill']));
  });

  it('spill nothing for ordinary events', () => {
    const [r] = chain([event()]);
    const row = recordToRow(r);
    expect(row.spill).toBe('');
    expect(row.input).toBe(canonicalJson(r.event.input));
    expect(row.ts).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(rebuiltHash(roundTrip(r))).toBe(r.hash);
  });

  it('keep null and absent apart', () => {
    const withNull = event({ span_id: null, input: null, queue: null });
    const absent = event() as Record<string, unknown>;
    delete absent.span_id;
    delete absent.input;
    delete absent.queue;
    const [a, b] = chain([withNull, absent as WardenEvent]);
    const ra = roundTrip(a);
    const rb = roundTrip(b);
    expect(rebuiltHash(ra)).toBe(a.hash);
    expect(rebuiltHash(rb)).toBe(b.hash);
    expect(ra.event).toHaveProperty('span_id', null);
    expect(rb.event).not.toHaveProperty('span_id');
    expect(rb.event).not.toHaveProperty('input');
    expect(JSON.parse(recordToRow(b).spill)).toEqual({ absent: ['input', 'queue', 'span_id'] });
    expect(JSON.parse(recordToRow(a).spill)).toEqual({ values: { queue: null } });
  });

  it('round-trip 5 000 random events with the same hash', () => {
    const rand = rng(20261124);
    for (let i = 0; i < 5000; i++) {
      const [r] = chain([randomEvent(rand)], i + 1);
      let back: LedgerRecord;
      try {
        back = roundTrip(r);
      } catch (err) {
        throw new Error(`case ${i}: ${(err as Error).message}\n${canonicalJson(r.event)}`);
      }
      expect(rebuiltHash(back), `case ${i}`).toBe(r.hash);
      expect(canonicalJson(back.event)).toBe(canonicalJson(r.event));
    }
  });

  it('round-trip hostile strings in every string field', () => {
    for (const s of [...Object.values(HOSTILE), 'x'.repeat(1 << 20), '\ud800', '\udc00x\ud800']) {
      const init: Record<string, unknown> = {};
      for (const f of EVENT_FIELDS) if (!['ts', 'attempt', 'duration_ms'].includes(f)) init[f] = s;
      const [r] = chain([{ ...event(), ...init } as WardenEvent]);
      expect(rebuiltHash(roundTrip(r))).toBe(r.hash);
    }
  });

  it('refuse what no ledger holds', () => {
    const [r] = chain([event()]);
    expect(() => recordToRow({ ...r, seq: 0 })).toThrow(UnrepresentableValueError);
    expect(() => recordToRow({ ...r, event: { ...r.event, input: { x: Number.NaN } } })).toThrow(UnrepresentableValueError);
  });

  describe('a change to any one column of a returned row', () => {
    // Records with as many kinds of columns in use as possible: spill with absent and values, nulls, JSON.
    const absentOne = event() as Record<string, unknown>;
    delete absentOne.model;
    const records = chain([
      event({ attrs: { k: 'v' }, duration_ms: 0, attempt: 0 }),
      event({ queue: null, correlation_id: null, duration_ms: 5e-324, ts: 1500, input: [1, 'a'] }),
      absentOne as WardenEvent,
      event({ job_id: 'bad \ud800', ts: 1.5, attempt: 2.5 }),
    ]);

    /** Plausible tampering values for a column's current value. */
    function variants(column: string, v: unknown): unknown[] {
      const out: unknown[] = [];
      if (v === null) out.push('', '0', 'x', 0);
      if (typeof v === 'string') {
        out.push(`${v}x`, v.slice(1), v.toUpperCase() === v ? `${v} ` : v.toUpperCase(), null, '');
        if (/^\d+$/.test(v)) out.push(String(BigInt(v) + 1n), String(BigInt(v) * 2n + 1n));
        if (v.startsWith('{') || v.startsWith('[')) out.push(v.replace(':', ': '), ` ${v}`, '{}', 'null');
        // (18.16 prints the zero DateTime as 0000-00-00 00:00:00: the same value, not a change.)
        if (column === 'ts') out.push('2000-01-01 00:00:00', ...(v === '1970-01-01 00:00:00' ? [] : ['0000-00-00 00:00:00']));
        if (column === 'spill') out.push('{}', '{"absent":[]}', '{"values":{}}', '{"absent":["zzz"]}', '{"values":{"model":"m"}}');
      }
      if (typeof v === 'number') out.push(v + 1, -v === v ? -0 : -v, null, Number.MIN_VALUE);
      if (column === 'duration_bits') out.push('9223372036854775808'); // -0
      return out.filter((x) => !Object.is(x, v));
    }

    for (const r of records) {
      it(`is caught for record ${r.seq} (${canonicalJson(r.event).slice(0, 40)}...)`, () => {
        const good = asReturned(recordToRow(r));
        expect(rebuiltHash(rowToRecord(good))).toBe(r.hash);
        let tried = 0;
        for (const column of LEDGER_COLUMN_NAMES) {
          for (const value of variants(column, good[column])) {
            tried++;
            const row = { ...good, [column]: value };
            let outcome = 'same';
            try {
              const back = rowToRecord(row);
              const unchanged = rebuiltHash(back) === r.hash && back.hash === r.hash && back.prev === r.prev && back.seq === r.seq;
              if (!unchanged) outcome = 'changed';
            } catch (err) {
              expect(err).toBeInstanceOf(CorruptRowError);
              expect((err as Error).message).toContain('column');
              outcome = 'corrupt';
            }
            expect(outcome, `${column} := ${JSON.stringify(value)}`).not.toBe('same');
          }
        }
        expect(tried).toBeGreaterThan(80);
      });
    }

    it('a missing column is reported by name', () => {
      const row = asReturned(recordToRow(records[0]));
      delete row.spill;
      expect(() => rowToRecord(row)).toThrow(/column spill is missing/);
    });
  });

  it('hash the rebuilt record like the spool does', () => {
    const [r] = chain([event()]);
    const back = roundTrip(r);
    expect(recordHash(back.prev, back.seq, back.event)).toBe(r.hash);
  });
});
