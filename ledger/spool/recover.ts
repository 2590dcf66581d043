/**
 * What `Spool.open` does to find the head of the chain after any kind of stop, clean or not.
 *
 * Only the last segment can have been being written, so only it is scanned (byte-level: layout, seq,
 * prev link, own hash). A torn tail — bytes after the last good record that contain no further
 * valid record: a half-written line, a last line that does not parse or does not chain — is what a
 * crash during an unacknowledged write leaves behind, and is cut off (after being copied aside).
 * A bad record FOLLOWED by valid ones is not something a crash produces; truncating there would
 * destroy acknowledged records, so open refuses with SpoolCorruptError.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { SpoolCorruptError } from '../errors.js';
import { GENESIS_HASH, checkLineBytes } from './record.js';
import { readLastLine, readLines, syncDir, type SegmentInfo } from './segments.js';

export interface RecoveryReport {
  /** Bytes cut from the end of the last segment (0 after a clean stop). */
  truncatedBytes: number;
  /** The segment that was truncated, or null. */
  segment: string | null;
  /** The last record kept. */
  lastSeq: number;
  /** Where the cut bytes were saved (inside the ledger directory), or null. */
  quarantined: string | null;
}

export interface Head {
  lastSeq: number;
  headHash: string;
  /** Size of the last segment after recovery: where the next write goes. */
  tailSize: number;
  recovery: RecoveryReport;
}

export async function recoverTail(ledgerDir: string, segments: SegmentInfo[]): Promise<Head> {
  const last = segments[segments.length - 1];
  const before = segments.length > 1 ? segments[segments.length - 2] : null;
  // The link into the last segment: genesis, the previous segment's last hash, or unknown when
  // earlier segments were removed (the first record's prev is then taken as given).
  let expectPrev: string | null = last.firstSeq === 1 ? GENESIS_HASH : null;
  if (before) expectPrev = await lastHashOf(before, last.firstSeq - 1);

  let expectSeq = last.firstSeq;
  let prev = expectPrev;
  let goodEnd = 0;
  let firstBad: { lineNo: number; seq: number; detail: string } | null = null;
  for await (const line of readLines(last.path)) {
    const c = line.terminated ? checkLineBytes(line.text) : null;
    if (firstBad) {
      if (c?.selfOk) {
        const detail = `${firstBad.detail}, and valid records follow it (line ${line.lineNo})`;
        throw new SpoolCorruptError(last.name, firstBad.seq, firstBad.lineNo, detail);
      }
      continue;
    }
    if (c && c.selfOk && c.seq === expectSeq && (prev === null || c.prev === prev)) {
      goodEnd = line.offset + line.bytes;
      expectSeq++;
      prev = c.hash;
      continue;
    }
    firstBad = { lineNo: line.lineNo, seq: expectSeq, detail: describeBad(line.terminated, c, expectSeq) };
  }
  if (prev === null) {
    throw new SpoolCorruptError(last.name, expectSeq, 1, 'the only segment starts after seq 1 and holds no valid record, so the chain head is unknown');
  }

  const lastSeq = expectSeq - 1;
  const truncatedBytes = last.size - goodEnd;
  if (truncatedBytes === 0) {
    return { lastSeq, headHash: prev, tailSize: goodEnd, recovery: { truncatedBytes: 0, segment: null, lastSeq, quarantined: null } };
  }
  const quarantined = await quarantine(ledgerDir, last, goodEnd);
  const fh = await fs.open(last.path, 'r+');
  try {
    await fh.truncate(goodEnd);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return {
    lastSeq,
    headHash: prev,
    tailSize: goodEnd,
    recovery: { truncatedBytes, segment: last.name, lastSeq, quarantined },
  };
}

/** The hash of a full segment's last record, which must be `seq`. */
async function lastHashOf(seg: SegmentInfo, seq: number): Promise<string> {
  const line = await readLastLine(seg.path);
  const c = line?.terminated ? checkLineBytes(line.text) : null;
  if (!c || !c.selfOk || c.seq !== seq) {
    throw new SpoolCorruptError(seg.name, seq, null, `its last record is not a valid seq ${seq}, yet the next segment starts at ${seq + 1}`);
  }
  return c.hash;
}

function describeBad(terminated: boolean, c: ReturnType<typeof checkLineBytes>, expectSeq: number): string {
  if (!terminated) return 'the line is incomplete';
  if (!c) return 'the line is not a well-formed record';
  if (!c.selfOk) return `the record (seq ${c.seq}) does not match its hash`;
  if (c.seq !== expectSeq) return `found seq ${c.seq} where seq ${expectSeq} belongs`;
  return 'the record does not link to the one before it';
}

/** Keeps the cut bytes next to the segments: they may be evidence, and cutting must not erase it. */
async function quarantine(ledgerDir: string, seg: SegmentInfo, from: number): Promise<string> {
  const fh = await fs.open(seg.path, 'r');
  let bytes: Buffer;
  try {
    bytes = Buffer.alloc(seg.size - from);
    let done = 0;
    while (done < bytes.length) {
      const { bytesRead } = await fh.read(bytes, done, bytes.length - done, from + done);
      if (bytesRead === 0) break;
      done += bytesRead;
    }
  } finally {
    await fh.close();
  }
  const name = `torn-${seg.name.replace(/\.jsonl$/, '')}-at-${from}-${Date.now()}.bin`;
  const target = path.join(ledgerDir, name);
  const out = await fs.open(target, 'wx', 0o600);
  try {
    await out.writeFile(bytes);
    await out.sync();
  } finally {
    await out.close();
  }
  await syncDir(ledgerDir);
  return target;
}
