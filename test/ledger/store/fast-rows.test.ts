/**
 * The shipper's insert statement built from spool lines' bytes (ledger/store/fast-rows.ts) must be
 * byte for byte the statement the reference conversion gives (recordToRow + TabSeparated, i.e.
 * `insertText`) for every record: ordinary ones on the fast path, everything else (escapes, non-ASCII,
 * absent, extra or mistyped fields) the reference way inside the builder. Real spool files are read
 * through SpoolTail.readLines, as the shipper reads them.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../../core/event.js';
import { eventShapeProblem, serializeRecord, type LedgerRecord } from '../../../ledger/spool/record.js';
import { SpoolTail } from '../../../ledger/spool/tail.js';
import { Spool } from '../../../ledger/index.js';
import { CorruptRecordError } from '../../../ledger/errors.js';
import { SqlStore } from '../../../ledger/store/base.js';
import { HOSTILE, chain, event, randomEvent } from './helpers.js';
import { rng } from '../../harness/random.js';
import { removeDir, tempDir } from '../../harness/ledger.js';

/** The store's text side without an engine: insertText (the reference) and lineEncoder (the builder). */
class NoEngine extends SqlStore {
  readonly kind = 'embedded' as const;
  readonly target = 'none';
  protected send(): Promise<Uint8Array | null> {
    throw new Error('no engine here');
  }
  protected async shutdown(): Promise<void> {}
}
const textOnly = new NoEngine();

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await removeDir(d);
});

/** The builder's statement for `records` as spool lines (one buffer, as a segment holds them). */
function built(records: LedgerRecord[], ledgerId = 'ledger-a'): { text: string; slow: number } {
  const enc = textOnly.lineEncoder(ledgerId);
  const buf = Buffer.from(records.map(serializeRecord).join(''), 'utf8');
  let start = 0;
  for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10, start)) {
    enc.add(buf, start, nl, 'seg-test');
    start = nl + 1;
  }
  return { text: enc.text(), slow: enc.slow };
}

/** An ordinary event, all printable ASCII (the harness's default input has a non-ASCII name). */
const plain = (init: Parameters<typeof event>[0] = {}) => event({ input: { to: 'u at example', n: 1 }, ...init });

const reference = (records: LedgerRecord[], ledgerId = 'ledger-a') => textOnly.insertText(records, ledgerId);

describe('LedgerInsertBuilder (insert text from spool bytes)', () => {
  it('builds ordinary records from their bytes, exactly as the reference conversion', () => {
    const evs: WardenEvent[] = [
      event(),
      event({ input: null, attrs: {}, attempt: null, duration_ms: null, correlation_id: null }),
      event({ duration_ms: 33 / 7, attempt: 0, ts: 0 }),
      event({ duration_ms: 1e21, attrs: { big: 1e21, small: 5e-324, neg: -1.5 } }),
      event({ queue: '', job_name: '', kind: 'job.failed', error: 'boom: it broke' }),
    ];
    const records = chain(evs.map((e) => ({ ...e, input: e.input === null ? null : { to: 'u at example', list: [1, 'a', null, true, { z: 1, a: [] }] } }) as WardenEvent));
    const got = built(records);
    expect(got.slow).toBe(0);
    expect(got.text).toBe(reference(records));
  });

  it('hands everything else to the reference conversion, with the same result', () => {
    const hostile = Object.values(HOSTILE);
    const odd: WardenEvent[] = [
      plain({ job_name: HOSTILE.unicode }), // non-ASCII
      ...hostile.map((v) => plain({ reason: v, attrs: { v } })),
      plain({ ts: 1.5 }),
      plain({ attempt: -1 }),
      plain({ attempt: 1.5 }),
      plain({ queue: null }),
      plain({ duration_ms: 'slow' as unknown as number }),
    ];
    const absent = plain() as Record<string, unknown>;
    delete absent.span_id;
    const extra = { ...plain(), stray: { a: 1 } } as unknown as WardenEvent;
    const records = chain([...odd, absent as WardenEvent, extra]);
    const got = built(records);
    // Only the hostile strings that JSON writes as they are (printable ASCII, no quote or backslash) stay fast.
    const fast = hostile.filter((v) => /^[\x20-\x7e]*$/.test(v) && !/["\\]/.test(v)).length;
    expect(fast).toBeGreaterThan(0);
    expect(got.slow).toBe(records.length - fast);
    expect(got.text).toBe(reference(records));
  });

  it('agrees with the reference on 3 000 random records, ordinary ones mixed in', () => {
    const rand = rng(20261207);
    const evs: WardenEvent[] = [];
    while (evs.length < 3000) {
      const ev = rand() < 0.5 ? plain({ attrs: { i: evs.length, ok: rand() < 0.5 } }) : randomEvent(rand);
      if (eventShapeProblem(ev) === null) evs.push(ev); // what a spool can hold
    }
    const records = chain(evs);
    let got: { text: string; slow: number } | undefined;
    let want: string | undefined;
    try {
      want = reference(records);
    } catch {
      // Some random events have no row (e.g. no canonical form): compare record by record instead.
    }
    if (want !== undefined) {
      got = built(records);
      expect(got.text).toBe(want);
      expect(got.slow).toBeGreaterThan(0);
      expect(got.slow).toBeLessThan(records.length);
    }
    let compared = 0;
    for (const r of records) {
      let one: string | Error;
      try {
        one = reference([r]);
      } catch (err) {
        one = err as Error;
      }
      if (one instanceof Error) {
        expect(() => built([r]), `seq ${r.seq}`).toThrow(one.constructor as new () => Error);
      } else {
        expect(built([r]).text, `seq ${r.seq}`).toBe(one);
        compared++;
      }
    }
    expect(compared).toBeGreaterThan(2500);
  });

  it('escapes the ledger ID as the reference does', () => {
    const records = chain([plain(), plain()]);
    expect(built(records, 'fleet\\east').text).toBe(reference(records, 'fleet\\east'));
  });

  it('names the segment of a line that is not a record, as the spool reader does', () => {
    const enc = textOnly.lineEncoder('x');
    const bad = Buffer.from('{"event":{"kind":"x"},"hash":"zz","prev":"zz","seq":1}');
    expect(() => enc.add(bad, 0, bad.length, 'seg-0000000001')).toThrow(CorruptRecordError);
    expect(() => enc.add(bad, 0, bad.length, 'seg-0000000001')).toThrow(/seg-0000000001: record/);
  });

  it('reads real spool segments through SpoolTail.readLines in batches, in order, as read() does', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0, segmentBytes: 20_000 });
    const written: LedgerRecord[] = [];
    for (let i = 0; i < 20; i++) written.push(...(await spool.append([plain(), event({ reason: `ünïcode ${i}` }), plain()])));
    const last = spool.lastSeq;
    await spool.close();
    expect((await fs.readdir(path.join(dir, 'ledger'))).filter((f) => f.startsWith('seg')).length).toBeGreaterThan(1);
    const tail = SpoolTail.at(dir, 5);
    const texts: string[] = [];
    for (;;) {
      const enc = textOnly.lineEncoder('l');
      const n = await tail.readLines(7, last, (buf, s, e, seg) => enc.add(buf, s, e, seg));
      if (n === 0) break;
      texts.push(enc.text());
    }
    const refTail = SpoolTail.at(dir, 5);
    const want: string[] = [];
    for (let rs = await refTail.read(7, last); rs.length > 0; rs = await refTail.read(7, last)) want.push(reference(rs, 'l'));
    expect(texts).toEqual(want);
    expect(texts.length).toBe(Math.ceil((written.length - 4) / 7));
  });
});
