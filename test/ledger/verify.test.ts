import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  GENESIS_HASH, LedgerNotFoundError, recordHash, serializeRecord, verifyLedger, type LedgerRecord,
} from '../../ledger/index.js';
import { buildLedger, event, locate, removeDir, segmentFiles, segmentLines, tempDir } from '../harness/ledger.js';

// One pristine ledger (40 records, 4 per segment, 10 segments); each test tampers with a fresh copy.
// The byte-flip test runs ~900 verifications per record, so it uses a smaller one (12 records).
let pristine: string;
let small: string;
let written: LedgerRecord[];
let dir: string;
const work: string[] = [];

beforeAll(async () => {
  pristine = await tempDir();
  written = await buildLedger(pristine, 40, { segmentBytes: 4000 }, 4);
  expect((await segmentFiles(pristine)).length).toBe(10);
  small = await tempDir();
  await buildLedger(small, 12, { segmentBytes: 4000 }, 4);
});
afterAll(async () => {
  for (const d of [pristine, small, ...work]) await removeDir(d);
});
beforeEach(async () => {
  dir = await tempDir();
  work.push(dir);
  await fs.cp(path.join(pristine, 'ledger'), path.join(dir, 'ledger'), { recursive: true });
});

async function rewrite(file: string, lines: string[]): Promise<void> {
  await fs.writeFile(file, lines.join(''));
}

function forge(seq: number, prev: string, init: Parameters<typeof event>[0] = {}): string {
  const ev = event(init);
  return serializeRecord({ seq, prev, event: ev, hash: recordHash(prev, seq, ev) });
}

describe('verifyLedger', () => {
  it('accepts an untouched ledger', async () => {
    expect(await verifyLedger(dir)).toEqual({ ok: true, records: 40, lastSeq: 40, headHash: written[39].hash });
  });

  it('accepts an empty ledger and rejects a directory without one', async () => {
    const empty = await tempDir();
    work.push(empty);
    await fs.mkdir(path.join(empty, 'ledger'));
    expect(await verifyLedger(empty)).toEqual({ ok: true, records: 0, lastSeq: 0, headHash: GENESIS_HASH });
    await expect(verifyLedger(path.join(empty, 'nope'))).rejects.toBeInstanceOf(LedgerNotFoundError);
  });

  // Every byte of the record (middle of a segment, first of a segment, last of the ledger), flipped
  // two ways: whatever breaks, that record's seq is named.
  it.each([6, 9, 12])('names seq %i for one flipped byte anywhere in its line', async (seq) => {
    await removeDir(dir);
    await fs.cp(path.join(small, 'ledger'), path.join(dir, 'ledger'), { recursive: true });
    const { file, index, line } = await locate(dir, seq);
    const original = await fs.readFile(file);
    const lines = await segmentLines(file);
    const start = Buffer.byteLength(lines.slice(0, index).join(''));
    const length = Buffer.byteLength(line);
    const seen = new Set<string>();
    for (let i = 0; i < length; i++) {
      for (const mask of i % 5 === 0 ? [0x01, 0x80] : [0x01]) {
        const bytes = Buffer.from(original);
        bytes[start + i] ^= mask;
        await fs.writeFile(file, bytes);
        const result = await verifyLedger(dir);
        expect(result.ok, `byte ${i} ^ ${mask}`).toBe(false);
        expect(result.problem?.seq, `byte ${i} ^ ${mask}: ${result.problem?.message}`).toBe(seq);
        expect(result.problem?.segment).toBe(path.basename(file));
        expect(result.problem?.line).toBe(index + 1);
        expect(result.records).toBe(seq - 1);
        seen.add(result.problem?.kind as string);
      }
    }
    await fs.writeFile(file, original);
    expect((await verifyLedger(dir)).ok).toBe(true);
    expect(seen.has('modified') && seen.has('unparsable')).toBe(true);
  });

  it('detects a change that keeps the JSON value (added whitespace)', async () => {
    const { file, index } = await locate(dir, 22);
    const lines = await segmentLines(file);
    lines[index] = lines[index].replace('"seq":22}', '"seq": 22}');
    await rewrite(file, lines);
    expect((await verifyLedger(dir)).problem).toMatchObject({ seq: 22, kind: 'modified' });
  });

  it('names a deleted record', async () => {
    const { file, index } = await locate(dir, 14);
    const lines = await segmentLines(file);
    lines.splice(index, 1);
    await rewrite(file, lines);
    const result = await verifyLedger(dir);
    expect(result.problem).toMatchObject({ seq: 14, kind: 'missing', segment: path.basename(file), line: index + 1 });
    expect(result).toMatchObject({ ok: false, records: 13, lastSeq: 13, headHash: written[12].hash });
  });

  it('names a deleted record at the start of a segment', async () => {
    const { file, index } = await locate(dir, 17);
    expect(index).toBe(0);
    const lines = await segmentLines(file);
    await rewrite(file, lines.slice(1));
    expect((await verifyLedger(dir)).problem).toMatchObject({ seq: 17, kind: 'missing' });
  });

  it('names the first out-of-order seq when two records are swapped', async () => {
    const { file, index } = await locate(dir, 14);
    const lines = await segmentLines(file);
    [lines[index], lines[index + 1]] = [lines[index + 1], lines[index]];
    await rewrite(file, lines);
    expect((await verifyLedger(dir)).problem).toMatchObject({ seq: 15, kind: 'reordered', line: index + 1 });
  });

  it('names a record moved far from its place as reordered', async () => {
    const a = await locate(dir, 9);
    const lines = await segmentLines(a.file);
    const moved = lines.splice(a.index, 1)[0];
    const b = await locate(dir, 31);
    await rewrite(a.file, lines);
    const target = await segmentLines(b.file);
    target.splice(b.index, 0, moved);
    await rewrite(b.file, target);
    expect((await verifyLedger(dir)).problem).toMatchObject({ seq: 10, kind: 'reordered' });
  });

  it('names a record swapped across a segment boundary', async () => {
    const a = await locate(dir, 16);
    const b = await locate(dir, 17);
    const la = await segmentLines(a.file);
    const lb = await segmentLines(b.file);
    [la[a.index], lb[b.index]] = [lb[b.index], la[a.index]];
    await rewrite(a.file, la);
    await rewrite(b.file, lb);
    expect((await verifyLedger(dir)).problem).toMatchObject({ seq: 17, kind: 'reordered', segment: path.basename(a.file) });
  });

  it('names an inserted record that chains to its predecessor and has a valid hash of its own', async () => {
    // The forger knows hash(13) and writes a second "seq 14" before the genuine one.
    const { file, index } = await locate(dir, 14);
    const lines = await segmentLines(file);
    lines.splice(index, 0, forge(14, written[12].hash, { decision: 'approved-by-forger' }));
    await rewrite(file, lines);
    const result = await verifyLedger(dir);
    expect(result.problem).toMatchObject({ seq: 14, kind: 'inserted', line: index + 1 });
    expect(result.records).toBe(13);
  });

  it('names an inserted record placed after the genuine one with the same seq', async () => {
    const { file, index } = await locate(dir, 14);
    const lines = await segmentLines(file);
    lines.splice(index + 1, 0, forge(14, written[12].hash));
    await rewrite(file, lines);
    expect((await verifyLedger(dir)).problem).toMatchObject({ seq: 14, kind: 'inserted', line: index + 2 });
  });

  it('names an inserted record whose seq continues the chain but whose prev is invented', async () => {
    const { file, index } = await locate(dir, 26);
    const lines = await segmentLines(file);
    lines.splice(index, 0, forge(26, 'ab'.repeat(32)));
    await rewrite(file, lines);
    expect((await verifyLedger(dir)).problem).toMatchObject({ seq: 26, kind: 'inserted', line: index + 1 });
  });

  it('names an inserted record with a seq far ahead', async () => {
    const { file, index } = await locate(dir, 26);
    const lines = await segmentLines(file);
    lines.splice(index, 0, forge(900, written[24].hash));
    await rewrite(file, lines);
    expect((await verifyLedger(dir)).problem).toMatchObject({ seq: 900, kind: 'inserted', line: index + 1 });
  });

  it('names a duplicated earlier record inserted later', async () => {
    const early = await locate(dir, 3);
    const { file, index } = await locate(dir, 30);
    const lines = await segmentLines(file);
    lines.splice(index, 0, early.line);
    await rewrite(file, lines);
    expect((await verifyLedger(dir)).problem).toMatchObject({ seq: 3, kind: 'inserted', line: index + 1 });
  });

  it('names a record whose content was replaced and whose hash was recomputed', async () => {
    const { file, index } = await locate(dir, 21);
    const lines = await segmentLines(file);
    lines[index] = forge(21, written[19].hash, { decision: 'rewritten' });
    await rewrite(file, lines);
    const result = await verifyLedger(dir);
    expect(result.problem).toMatchObject({ seq: 21, kind: 'modified', line: index + 1 });
    expect(result).toMatchObject({ records: 20, lastSeq: 20, headHash: written[19].hash });
  });

  it('names a record replaced by one with an invented prev', async () => {
    const { file, index } = await locate(dir, 21);
    const lines = await segmentLines(file);
    lines[index] = forge(21, 'cd'.repeat(32));
    await rewrite(file, lines);
    expect((await verifyLedger(dir)).problem).toMatchObject({ seq: 21, kind: 'modified', line: index + 1 });
  });

  it('names the first seq of a deleted segment in the middle', async () => {
    const segs = await segmentFiles(dir);
    await fs.rm(segs[4]);
    const result = await verifyLedger(dir);
    expect(result.problem).toMatchObject({ seq: 17, kind: 'missing', segment: path.basename(segs[5]), line: 1 });
    expect(result.problem?.message).toMatch(/seqs 17\.\.20 are missing/);
  });

  it('names seq 1 when the first segment is deleted', async () => {
    await fs.rm((await segmentFiles(dir))[0]);
    expect((await verifyLedger(dir)).problem).toMatchObject({ seq: 1, kind: 'missing' });
  });

  it('reports a torn last record as torn', async () => {
    const file = (await segmentFiles(dir)).at(-1) as string;
    await fs.appendFile(file, forge(41, written[39].hash).slice(0, 200));
    const result = await verifyLedger(dir);
    expect(result.problem).toMatchObject({ seq: 41, kind: 'torn', line: 5 });
    expect(result.records).toBe(40);
  });

  it('treats a half-written last record as in progress while a live agent holds the spool', async () => {
    const file = (await segmentFiles(dir)).at(-1) as string;
    await fs.appendFile(file, forge(41, written[39].hash).slice(0, 200));
    // The lock names a live process (this one): its batch write was caught half-way.
    await fs.writeFile(path.join(path.dirname(file), 'LOCK'), `${process.pid}\n`);
    const result = await verifyLedger(dir);
    expect(result).toMatchObject({ ok: true, records: 40, lastSeq: 40, writing: { pid: process.pid, seq: 41 } });
    // A complete but altered record is still tampering, writer or not.
    const lines = (await fs.readFile(file, 'utf8')).split('\n');
    lines[0] = lines[0].replace('"ts":', '"ts":1');
    await fs.writeFile(file, lines.join('\n'));
    expect((await verifyLedger(dir)).ok).toBe(false);
  });

  it('reports a renamed segment', async () => {
    const segs = await segmentFiles(dir);
    await fs.rename(segs[3], segs[3].replace('0013.jsonl', '0014.jsonl'));
    expect((await verifyLedger(dir)).problem).toMatchObject({ seq: 13, kind: 'modified' });
  });
});
