/**
 * verify's parallel fast path (ledger/spool/verify.ts parallelFastVerify, verify-part.ts, the worker
 * thread verify-worker.ts): the segments cut into line-aligned parts, each checked on a worker with
 * its own links, the boundaries checked once. It must accept exactly the intact ledgers the
 * single-threaded path accepts, and on anything else leave the verdict to the reference pass, so
 * verifyLedger's result is the same whether the parts ran on workers or not.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { recordHash, serializeRecord, verifyLedger, type LedgerRecord } from '../../ledger/index.js';
import { ledgerDirOf, listSegments } from '../../ledger/spool/segments.js';
import { checkPart } from '../../ledger/spool/verify-part.js';
import { parallelFastVerify, planParts, type ParallelTuning } from '../../ledger/spool/verify.js';
import { endIdleWorkers, idleWorkerIds } from '../../ledger/spool/verify-pool.js';
import { event as harnessEvent, locate, removeDir, segmentLines, tempDir } from '../harness/ledger.js';
import { Spool } from '../../ledger/index.js';

// ASCII-only events: the fast path leaves non-ASCII to the reference pass.
const event = () => harnessEvent({ input: { to: 'user@example.com', template: 'welcome', n: 1 } });

// 300 records of ~560 bytes in ~40 KB segments (5 segments); parts of ~12 KB cut each segment in 3-4.
const FORCED: ParallelTuning = { minBytes: 0, partBytes: 12_000, threads: 2, onMain: false };
const WITH_MAIN: ParallelTuning = { ...FORCED, onMain: true }; // the calling thread takes parts too
const SINGLE: Partial<ParallelTuning> = { threads: 1 };

let pristine: string;
let written: LedgerRecord[];
let dir: string;
const work: string[] = [];

beforeAll(async () => {
  pristine = await tempDir();
  const spool = await Spool.open({ dir: pristine, fsync: false, groupCommitMs: 0, segmentBytes: 40_000 });
  written = [];
  for (let i = 0; i < 300; i += 10) written.push(...(await spool.append(Array.from({ length: 10 }, event))));
  await spool.close();
});
afterAll(async () => {
  for (const d of [pristine, ...work]) await removeDir(d);
});
beforeEach(async () => {
  dir = await tempDir();
  work.push(dir);
  await fs.cp(path.join(pristine, 'ledger'), path.join(dir, 'ledger'), { recursive: true });
});

const segments = () => listSegments(ledgerDirOf(dir));

/** The seqs that open a part but not a segment (boundaries inside a segment). */
async function midSegmentPartStarts(): Promise<number[]> {
  const out: number[] = [];
  for (const part of planParts(await segments(), FORCED.partBytes)) {
    const r = checkPart(part);
    if (part.start > 0 && r && r.count > 0) out.push(r.firstSeq);
  }
  return out;
}

async function rewriteLine(seq: number, make: (line: string, lines: string[], index: number) => string[]): Promise<void> {
  const { file, index, line } = await locate(dir, seq);
  const lines = await segmentLines(file);
  await fs.writeFile(file, make(line, lines, index).join(''));
}

/** Rewrites seqs `from`.. (within its segment) as a self-consistent chain whose first prev is `prev`. */
async function rechainFrom(from: number, prev: string): Promise<void> {
  const { file, index } = await locate(dir, from);
  const lines = await segmentLines(file);
  for (let i = index; i < lines.length; i++) {
    const r = JSON.parse(lines[i]) as LedgerRecord;
    const hash = recordHash(prev, r.seq, r.event);
    lines[i] = serializeRecord({ ...r, prev, hash });
    prev = hash;
  }
  await fs.writeFile(file, lines.join(''));
}

async function expectSameVerdict(): Promise<void> {
  expect(await parallelFastVerify(await segments(), FORCED)).toBeNull();
  expect(await parallelFastVerify(await segments(), WITH_MAIN)).toBeNull();
  const reference = await verifyLedger(dir, SINGLE);
  expect(reference.ok).toBe(false);
  expect(await verifyLedger(dir, FORCED)).toEqual(reference);
  expect(await verifyLedger(dir, WITH_MAIN)).toEqual(reference);
}

describe('parallel fast verify', () => {
  it('cuts segments into line-aligned parts that cover every record once, in order', async () => {
    const segs = await segments();
    expect(segs.length).toBeGreaterThanOrEqual(4);
    const parts = planParts(segs, FORCED.partBytes);
    expect(parts.length).toBeGreaterThan(segs.length * 2);
    const seqs: number[] = [];
    for (const part of parts) {
      const r = checkPart(part);
      expect(r).not.toBeNull();
      if (r && r.count > 0) for (let s = r.firstSeq; s <= r.lastSeq; s++) seqs.push(s);
    }
    expect(seqs).toEqual(written.map((r) => r.seq));
  });

  it('accepts an intact ledger on worker threads with the single-threaded result', async () => {
    const expected = { ok: true, records: 300, lastSeq: 300, headHash: written[299].hash };
    expect(await parallelFastVerify(await segments(), FORCED)).toEqual(expected);
    expect(await parallelFastVerify(await segments(), WITH_MAIN)).toEqual(expected);
    expect(await verifyLedger(dir, FORCED)).toEqual(expected);
    expect(await verifyLedger(dir, WITH_MAIN)).toEqual(expected);
    expect(await verifyLedger(dir, SINGLE)).toEqual(expected);
  });

  it('keeps its workers warm between verifies, and ends those that may still be busy', async () => {
    await endIdleWorkers();
    const expected = { ok: true, records: 300, lastSeq: 300, headHash: written[299].hash };
    expect(await verifyLedger(dir, FORCED)).toEqual(expected);
    const warm = idleWorkerIds();
    expect(warm).toHaveLength(2); // FORCED: two workers, none on this thread
    expect(await verifyLedger(dir, FORCED)).toEqual(expected);
    expect(idleWorkerIds().sort()).toEqual(warm.slice().sort()); // the same threads, not new ones
    // A verdict reached before every part answered (a broken chain) ends its workers: a reused worker
    // must never hold a stale part.
    await rechainFrom(150, 'f'.repeat(64));
    const broken = await verifyLedger(dir, FORCED);
    expect(broken.ok).toBe(false);
    expect(idleWorkerIds().some((id) => warm.includes(id))).toBe(false);
    expect(broken).toEqual(await verifyLedger(dir, SINGLE));
    await endIdleWorkers();
    expect(idleWorkerIds()).toEqual([]);
  });

  it('stays on the calling thread for a small ledger or one thread', async () => {
    const segs = await segments();
    expect(await parallelFastVerify(segs, { ...FORCED, minBytes: 1 << 30 })).toBeUndefined();
    expect(await parallelFastVerify(segs, { ...FORCED, threads: 1 })).toBeUndefined();
    expect(await parallelFastVerify(segs, { ...FORCED, partBytes: 1 << 30, minBytes: 0 })).not.toBeUndefined(); // one part per segment, 5 parts
  });

  it('catches a chain re-hashed from a part boundary inside a segment (only the boundary check sees it)', async () => {
    const [seq] = await midSegmentPartStarts();
    expect(seq).toBeGreaterThan(1);
    await rechainFrom(seq, 'ab'.repeat(32));
    await expectSameVerdict();
    // The reference pass blames the record before it (seq's new prev cannot tell which of the two changed).
    expect((await verifyLedger(dir, FORCED)).problem?.seq).toBe(seq - 1);
  });

  it('catches a chain re-hashed from the first record of a segment', async () => {
    const segs = await segments();
    await rechainFrom(segs[2].firstSeq, 'cd'.repeat(32));
    await expectSameVerdict();
  });

  it.each([
    ['deleted at a mid-segment boundary', (l: string, lines: string[], i: number) => lines.filter((_, j) => j !== i)],
    ['duplicated at a mid-segment boundary', (l: string, lines: string[], i: number) => [...lines.slice(0, i), l, ...lines.slice(i)]],
    ['swapped with the record before the boundary', (l: string, lines: string[], i: number) => [...lines.slice(0, i - 1), l, lines[i - 1], ...lines.slice(i + 1)]],
    ['altered in place', (l: string, lines: string[], i: number) => [...lines.slice(0, i), l.replace('welcome', 'welcomf'), ...lines.slice(i + 1)]],
  ])('a record %s: same problem as the reference pass', async (_name, make) => {
    const [seq] = await midSegmentPartStarts();
    await rewriteLine(seq, make);
    await expectSameVerdict();
  });

  it('a torn last record and a renamed segment: same problem as the reference pass', async () => {
    const segs = await segments();
    const last = segs[segs.length - 1];
    const bytes = await fs.readFile(last.path);
    await fs.writeFile(last.path, bytes.subarray(0, bytes.length - 40));
    await expectSameVerdict();
    expect((await verifyLedger(dir, FORCED)).problem?.kind).toBe('torn');
    await fs.writeFile(last.path, bytes);
    await fs.rename(segs[1].path, path.join(path.dirname(segs[1].path), `seg-${String(segs[1].firstSeq + 1).padStart(16, '0')}.jsonl`));
    await expectSameVerdict();
  });
});
