import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Spool, SpoolCorruptError, verifyLedger } from '../../ledger/index.js';
import { buildLedger, event, events, readAll, removeDir, segmentFiles, segmentLines, tempDir } from '../harness/ledger.js';

let dir: string;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  await removeDir(dir);
});

async function lastSegment(): Promise<string> {
  return (await segmentFiles(dir)).at(-1) as string;
}

async function sha(file: string): Promise<string> {
  return createHash('sha256').update(await fs.readFile(file)).digest('hex');
}

describe('Spool.open recovery', () => {
  it('cuts a half-written last line, reports it, keeps earlier records, and continues the chain', async () => {
    const written = await buildLedger(dir, 10);
    const seg = await lastSegment();
    const sizeBefore = (await fs.stat(seg)).size;
    // What a crash in the middle of a write leaves: the first half of the next record, no newline.
    const spool0 = await Spool.open({ dir, fsync: false });
    const [extra] = await spool0.append([event()]);
    await spool0.close();
    const full = (await segmentLines(seg)).at(-1) as string;
    expect(JSON.parse(full).seq).toBe(extra.seq);
    const half = full.slice(0, Math.floor(full.length / 2));
    await fs.truncate(seg, sizeBefore);
    await fs.appendFile(seg, half);

    const spool = await Spool.open({ dir, groupCommitMs: 0 });
    expect(spool.recovery.truncatedBytes).toBe(Buffer.byteLength(half));
    expect(spool.recovery.segment).toBe(path.basename(seg));
    expect(spool.recovery.lastSeq).toBe(10);
    expect(spool.lastSeq).toBe(10);
    expect(spool.headHash).toBe(written[9].hash);
    expect((await fs.stat(seg)).size).toBe(sizeBefore);
    // The cut bytes are kept aside, not destroyed.
    expect(await fs.readFile(spool.recovery.quarantined as string, 'utf8')).toBe(half);

    const [next] = await spool.append([event()]);
    expect(next.seq).toBe(11);
    expect(next.prev).toBe(written[9].hash);
    await spool.close();
    expect((await readAll(dir)).slice(0, 10)).toEqual(written);
    expect(await verifyLedger(dir)).toMatchObject({ ok: true, records: 11 });
  });

  it('cuts a complete last line that does not match its hash', async () => {
    await buildLedger(dir, 6);
    const seg = await lastSegment();
    const lines = await segmentLines(seg);
    const last = lines.at(-1) as string;
    const tampered = last.replace('"attempt":1', '"attempt":2');
    expect(tampered).not.toBe(last);
    await fs.writeFile(seg, lines.slice(0, -1).join('') + tampered);
    const spool = await Spool.open({ dir });
    expect(spool.recovery).toMatchObject({ truncatedBytes: Buffer.byteLength(tampered), segment: path.basename(seg), lastSeq: 5 });
    await spool.close();
    expect(await verifyLedger(dir)).toMatchObject({ ok: true, records: 5 });
  });

  it('cuts a last line that does not chain (a duplicate of the record before it)', async () => {
    await buildLedger(dir, 4);
    const seg = await lastSegment();
    const lines = await segmentLines(seg);
    await fs.appendFile(seg, lines.at(-1) as string);
    const spool = await Spool.open({ dir });
    expect(spool.recovery).toMatchObject({ lastSeq: 4, truncatedBytes: Buffer.byteLength(lines.at(-1) as string) });
    await spool.close();
  });

  it('cuts garbage such as NUL bytes at the tail', async () => {
    await buildLedger(dir, 3);
    const seg = await lastSegment();
    await fs.appendFile(seg, Buffer.alloc(700));
    const spool = await Spool.open({ dir });
    expect(spool.recovery).toMatchObject({ truncatedBytes: 700, lastSeq: 3 });
    await spool.close();
  });

  it('refuses to open when a bad record is followed by good ones, and changes nothing', async () => {
    await buildLedger(dir, 10);
    const seg = await lastSegment();
    const lines = await segmentLines(seg);
    const i = lines.findIndex((l) => JSON.parse(l).seq === 7);
    lines[i] = lines[i].replace('"attempt":1', '"attempt":3');
    await fs.writeFile(seg, lines.join(''));
    const before = await sha(seg);

    const err = await Spool.open({ dir }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SpoolCorruptError);
    const e = err as SpoolCorruptError;
    expect(e.seq).toBe(7);
    expect(e.segment).toBe(path.basename(seg));
    expect(e.line).toBe(i + 1);
    expect(e.message).toMatch(/warden ledger verify/);
    expect(await sha(seg)).toBe(before);
    // The failed open released its lock.
    const dirEntries = await fs.readdir(path.join(dir, 'ledger'));
    expect(dirEntries).not.toContain('LOCK');
  });

  it('refuses to open when a record in the middle is missing', async () => {
    await buildLedger(dir, 8);
    const seg = await lastSegment();
    const lines = await segmentLines(seg);
    await fs.writeFile(seg, lines.filter((l) => JSON.parse(l).seq !== 4).join(''));
    await expect(Spool.open({ dir })).rejects.toMatchObject({ name: 'SpoolCorruptError', seq: 4 });
  });

  it('opens an empty last segment (a crash right after rotation) and links it to the previous one', async () => {
    const written = await buildLedger(dir, 12, { segmentBytes: 2000 }, 2);
    const segs = await segmentFiles(dir);
    expect(segs.length).toBeGreaterThan(2);
    const empty = path.join(dir, 'ledger', `seg-${String(13).padStart(16, '0')}.jsonl`);
    await fs.writeFile(empty, '');
    const spool = await Spool.open({ dir, segmentBytes: 2000 });
    expect(spool.lastSeq).toBe(12);
    expect(spool.headHash).toBe(written[11].hash);
    const [r] = await spool.append([event()]);
    expect(r.seq).toBe(13);
    await spool.close();
    expect((await fs.stat(empty)).size).toBeGreaterThan(0);
    expect(await verifyLedger(dir)).toMatchObject({ ok: true, records: 13 });
  });

  it('fails clearly when the previous segment does not end where the last one begins', async () => {
    await buildLedger(dir, 12, { segmentBytes: 2000 }, 2);
    const segs = await segmentFiles(dir);
    const prev = segs.at(-2) as string;
    const lines = await segmentLines(prev);
    await fs.writeFile(prev, lines.slice(0, -1).join(''));
    await expect(Spool.open({ dir })).rejects.toBeInstanceOf(SpoolCorruptError);
  });

  it('recovers after many appends in one segment with a torn tail of a multi-record batch', async () => {
    await buildLedger(dir, 200, {}, 50);
    const seg = await lastSegment();
    const spool0 = await Spool.open({ dir, fsync: false });
    await spool0.append(events(20));
    await spool0.close();
    // Keep 7 full lines of the last batch and part of the 8th, as a killed write would.
    const lines = await segmentLines(seg);
    const kept = lines.slice(0, 207).join('') + (lines[207] as string).slice(0, 100);
    await fs.writeFile(seg, kept);
    const spool = await Spool.open({ dir });
    expect(spool.recovery).toMatchObject({ lastSeq: 207, truncatedBytes: 100 });
    await spool.close();
    expect(await verifyLedger(dir)).toMatchObject({ ok: true, records: 207 });
  });
});
