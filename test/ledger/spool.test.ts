import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../core/event.js';
import {
  GENESIS_HASH, InvalidEventError, Spool, SpoolClosedError, SpoolLockedError, recordHash, serializeRecord,
  verifyLedger,
} from '../../ledger/index.js';
import { event, events, readAll, removeDir, segmentFiles, segmentLines, tempDir } from '../harness/ledger.js';

let dir: string;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  await removeDir(dir);
});

describe('Spool append/read', () => {
  it('round-trips records across segment rotation, chained from genesis', async () => {
    const spool = await Spool.open({ dir, segmentBytes: 4096, groupCommitMs: 0 });
    expect(spool.lastSeq).toBe(0);
    expect(spool.headHash).toBe(GENESIS_HASH);
    const written = [];
    for (let i = 0; i < 30; i++) written.push(...(await spool.append(events(3))));
    expect(written.map((r) => r.seq)).toEqual(Array.from({ length: 90 }, (_, i) => i + 1));
    expect(spool.lastSeq).toBe(90);
    expect(spool.headHash).toBe(written[89].hash);
    const stats = spool.stats();
    await spool.close();

    const files = await segmentFiles(dir);
    expect(files.length).toBeGreaterThan(5);
    expect(stats.segments).toBe(files.length);
    let bytes = 0;
    for (const f of files) {
      const size = (await fs.stat(f)).size;
      bytes += size;
      // A segment only exceeds segmentBytes if a single batch does (these batches are ~1.8 KB).
      expect(size).toBeLessThanOrEqual(4096);
      const first = JSON.parse((await segmentLines(f))[0]);
      expect(path.basename(f)).toBe(`seg-${String(first.seq).padStart(16, '0')}.jsonl`);
    }
    expect(stats.bytes).toBe(bytes);

    const read = await readAll(dir);
    expect(read).toEqual(written);
    let prev = GENESIS_HASH;
    for (const r of read) {
      expect(r.prev).toBe(prev);
      expect(r.hash).toBe(recordHash(r.prev, r.seq, r.event));
      prev = r.hash;
    }
    // The bytes on disk are exactly the canonical serialization of each record.
    const lines = (await Promise.all(files.map(segmentLines))).flat();
    expect(lines).toEqual(read.map(serializeRecord));
    expect(lines[0]).toBe(`${canonicalJson({ event: read[0].event, hash: read[0].hash, prev: read[0].prev, seq: 1 })}\n`);
  });

  it('writes canonical bytes for any text: non-ASCII, escapes, surrogate pairs, long and huge strings', async () => {
    const spool = await Spool.open({ dir, groupCommitMs: 0 });
    const texts = ['plain', 'ünïcödé ✓ 中文', 'quote " backslash \\ newline \n tab \t nul \u0000', 'pair 😀 lone \ud800', 'é'.repeat(5000), 'x'.repeat(300_000)];
    const written = [];
    for (const t of texts) written.push(...(await spool.append([event({ reason: t, input: { [t.slice(0, 40)]: t, n: -12.5, big: 2 ** 60 }, attrs: { note: t.slice(0, 100) } }), event()])));
    await spool.close();
    const lines = (await Promise.all((await segmentFiles(dir)).map(segmentLines))).flat();
    expect(lines).toEqual(written.map(serializeRecord));
    for (const r of written) expect(r.hash).toBe(recordHash(r.prev, r.seq, r.event));
    expect((await verifyLedger(dir)).ok).toBe(true);
  });

  it('reads from a seq, skipping earlier segments, and up to a seq', async () => {
    const spool = await Spool.open({ dir, segmentBytes: 2048, groupCommitMs: 0, fsync: false });
    for (let i = 0; i < 20; i++) await spool.append(events(2));
    await spool.close();
    expect((await readAll(dir, 17)).map((r) => r.seq)).toEqual(Array.from({ length: 24 }, (_, i) => i + 17));
    const upTo: number[] = [];
    for await (const r of Spool.read(dir, { fromSeq: 5, toSeq: 9 })) upTo.push(r.seq);
    expect(upTo).toEqual([5, 6, 7, 8, 9]);
    expect(await readAll(dir, 41)).toEqual([]);
  });

  it('reopens where it left off and continues the chain', async () => {
    let spool = await Spool.open({ dir, groupCommitMs: 0 });
    await spool.append(events(4));
    const head = spool.headHash;
    await spool.close();
    spool = await Spool.open({ dir, groupCommitMs: 0 });
    expect(spool.recovery).toEqual({ truncatedBytes: 0, segment: null, lastSeq: 4, quarantined: null });
    expect(spool.lastSeq).toBe(4);
    expect(spool.headHash).toBe(head);
    const [r] = await spool.append([event()]);
    expect(r.seq).toBe(5);
    expect(r.prev).toBe(head);
    await spool.close();
    expect(await verifyLedger(dir)).toMatchObject({ ok: true, records: 5, lastSeq: 5 });
  });

  it('keeps the caller order of seqs and resolves each caller with its own records', async () => {
    const spool = await Spool.open({ dir, groupCommitMs: 10 });
    const batches = Array.from({ length: 50 }, (_, i) => events((i % 4) + 1, { job_id: `caller-${i}` }));
    const results = await Promise.all(batches.map((b) => spool.append(b)));
    await spool.close();
    let seq = 0;
    results.forEach((records, i) => {
      expect(records.map((r) => r.event.job_id)).toEqual(batches[i].map(() => `caller-${i}`));
      for (const r of records) expect(r.seq).toBe(++seq);
    });
  });
});

describe('Spool group commit', () => {
  it('commits concurrent appends in one write and one fsync', async () => {
    const spool = await Spool.open({ dir, groupCommitMs: 20 });
    const before = spool.stats();
    const all = await Promise.all(Array.from({ length: 100 }, () => spool.append([event()])));
    const after = spool.stats();
    await spool.close();
    expect(all.flat().map((r) => r.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(after.flushes - before.flushes).toBe(1);
    expect(after.syncs - before.syncs).toBe(1);
    expect(after.records).toBe(100);
  });

  it('accumulates the next batch while a commit is in flight', async () => {
    const spool = await Spool.open({ dir, groupCommitMs: 0 });
    const first = Array.from({ length: 10 }, () => spool.append([event()]));
    // Let the first commit start (setImmediate), then append more while its write/fsync runs.
    await new Promise((r) => setImmediate(r));
    expect(spool.stats().pending).toBe(0);
    const second = Array.from({ length: 40 }, () => spool.append([event()]));
    expect(spool.stats().pending).toBe(40);
    await Promise.all([...first, ...second]);
    const stats = spool.stats();
    await spool.close();
    expect(stats.flushes).toBe(2);
    expect(stats.syncs).toBe(2);
    expect(stats.lastSeq).toBe(50);
  });

  it('caps a commit at maxBatch records', async () => {
    const spool = await Spool.open({ dir, groupCommitMs: 50, maxBatch: 10 });
    const all = await Promise.all(Array.from({ length: 95 }, () => spool.append([event()])));
    const stats = spool.stats();
    await spool.close();
    expect(all.flat().map((r) => r.seq)).toEqual(Array.from({ length: 95 }, (_, i) => i + 1));
    expect(stats.flushes).toBe(10);
  });

  it('does not sync when fsync is off', async () => {
    const spool = await Spool.open({ dir, groupCommitMs: 0, fsync: false });
    await spool.append(events(3));
    expect(spool.stats()).toMatchObject({ flushes: 1, syncs: 0 });
    await spool.close();
  });
});

describe('Spool lifecycle and input errors', () => {
  it('close commits what is pending; later appends reject with SpoolClosedError', async () => {
    const spool = await Spool.open({ dir, groupCommitMs: 1000 });
    const pending = spool.append(events(3));
    await spool.close();
    expect((await pending).map((r) => r.seq)).toEqual([1, 2, 3]);
    await expect(spool.append([event()])).rejects.toBeInstanceOf(SpoolClosedError);
    await expect(spool.close()).resolves.toBeUndefined();
    expect((await readAll(dir)).length).toBe(3);
  });

  it('rejects only the append carrying an event without a JSON form', async () => {
    const spool = await Spool.open({ dir, groupCommitMs: 5 });
    const good1 = spool.append([event()]);
    const bad = spool.append([event(), { ...event(), duration_ms: Number.NaN }]);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const bad2 = spool.append([event({ input: cyclic })]);
    const bad3 = spool.append([{ ...event(), ts: undefined } as never]);
    const good2 = spool.append([event()]);
    await expect(bad).rejects.toThrow(InvalidEventError);
    await expect(bad).rejects.toThrow(/event #1/);
    await expect(bad2).rejects.toThrow(InvalidEventError);
    await expect(bad3).rejects.toThrow(/numeric ts/);
    expect((await good1)[0].seq).toBe(1);
    expect((await good2)[0].seq).toBe(2);
    await spool.close();
  });

  it('returns [] for an empty append without committing', async () => {
    const spool = await Spool.open({ dir });
    expect(await spool.append([])).toEqual([]);
    expect(spool.stats().flushes).toBe(0);
    await spool.close();
  });

  it('allows one writer per spool directory, and takes over a stale lock', async () => {
    const spool = await Spool.open({ dir });
    await expect(Spool.open({ dir })).rejects.toBeInstanceOf(SpoolLockedError);
    await spool.close();
    // A lock left by a process that no longer exists (pid far above pid_max) is stale.
    await fs.writeFile(path.join(dir, 'ledger', 'LOCK'), '99999999\n');
    const again = await Spool.open({ dir });
    await again.append([event()]);
    await again.close();
  });

  it('rejects bad options', async () => {
    await expect(Spool.open({ dir, segmentBytes: 0 })).rejects.toThrow(RangeError);
    await expect(Spool.open({ dir, maxBatch: 1.5 })).rejects.toThrow(RangeError);
  });

  it('appends throughput check: 20 000 records from many concurrent callers all land, in order', async () => {
    const spool = await Spool.open({ dir, segmentBytes: 1 << 20 });
    const calls = Array.from({ length: 2000 }, () => spool.append(events(10)));
    const records = (await Promise.all(calls)).flat();
    const stats = spool.stats();
    await spool.close();
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 20_000 }, (_, i) => i + 1));
    expect(stats.flushes).toBeLessThan(2000); // grouped, not one commit per call
    expect(stats.syncs).toBe(stats.flushes);
    const result = await verifyLedger(dir);
    expect(result).toMatchObject({ ok: true, records: 20_000, lastSeq: 20_000, headHash: records[19_999].hash });
  });
});
