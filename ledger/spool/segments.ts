/**
 * Segment files: `<dir>/ledger/seg-<firstSeq, 16 digits>.jsonl`. The name carries the first seq so
 * readers can skip whole segments and order them without opening them.
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { LedgerNotFoundError } from '../errors.js';

export interface SegmentInfo {
  name: string;
  path: string;
  firstSeq: number;
  size: number;
}

const SEGMENT_NAME = /^seg-(\d{16})\.jsonl$/;

export function ledgerDirOf(dir: string): string {
  return path.join(dir, 'ledger');
}

export function segmentName(firstSeq: number): string {
  return `seg-${String(firstSeq).padStart(16, '0')}.jsonl`;
}

/** Segments in seq order. Other files (the lock, quarantined tails) are not segments. */
export async function listSegments(ledgerDir: string): Promise<SegmentInfo[]> {
  let names: string[];
  try {
    names = await fs.readdir(ledgerDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new LedgerNotFoundError(path.dirname(ledgerDir));
    throw err;
  }
  const segs: SegmentInfo[] = [];
  for (const name of names) {
    const m = SEGMENT_NAME.exec(name);
    if (!m) continue;
    const p = path.join(ledgerDir, name);
    segs.push({ name, path: p, firstSeq: Number(m[1]), size: (await fs.stat(p)).size });
  }
  return segs.sort((a, b) => a.firstSeq - b.firstSeq);
}

/**
 * The segments to read for records from `fromSeq` on, in seq order: the first is the one holding
 * `fromSeq` (the last whose first seq is <= it); empty when the spool has no segment at all.
 */
export async function segmentsFrom(ledgerDir: string, fromSeq: number): Promise<SegmentInfo[]> {
  const segs = await listSegments(ledgerDir);
  let start = 0;
  for (let i = 0; i < segs.length; i++) if (segs[i].firstSeq <= fromSeq) start = i;
  return segs.slice(start);
}

/**
 * The segments a read of seqs `fromSeq..toSeq` (toSeq absent: to the end) passes through, with
 * whether each is the last one (where a torn or in-progress line may end the read).
 */
export async function* segmentsInRange(dir: string, fromSeq = 1, toSeq = Number.POSITIVE_INFINITY): AsyncGenerator<{ seg: SegmentInfo; isLast: boolean }> {
  const segments = await segmentsFrom(ledgerDirOf(dir), fromSeq);
  for (let i = 0; i < segments.length; i++) {
    if (segments[i].firstSeq > toSeq) return;
    yield { seg: segments[i], isLast: i === segments.length - 1 };
  }
}

/** fsync a directory so a created, renamed or removed entry survives power loss. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await fs.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface Line {
  text: string;
  /** byte offset of the line's first byte in the file. */
  offset: number;
  /** bytes including the newline, when there is one. */
  bytes: number;
  /** 1-based. */
  lineNo: number;
  /** false only for a last line without "\n": a torn write, or a write in progress. */
  terminated: boolean;
}

/** Streams a file's lines with their byte offsets (offsets are what recovery truncates to). */
export async function* readLines(file: string): AsyncGenerator<Line> {
  const stream = createReadStream(file, { highWaterMark: 1 << 20 });
  let carry: Buffer[] = [];
  let offset = 0;
  let lineNo = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let pos = 0;
    for (;;) {
      const nl = chunk.indexOf(10, pos);
      if (nl < 0) break;
      let text: string;
      let bytes: number;
      if (carry.length > 0) {
        const joined = Buffer.concat([...carry, chunk.subarray(pos, nl)]);
        carry = [];
        text = joined.toString('utf8');
        bytes = joined.length + 1;
      } else {
        text = chunk.toString('utf8', pos, nl);
        bytes = nl - pos + 1;
      }
      yield { text, offset, bytes, lineNo: ++lineNo, terminated: true };
      offset += bytes;
      pos = nl + 1;
    }
    // Keep a partial line as a list of pieces: a long line without newlines must not be re-copied per chunk.
    if (pos < chunk.length) carry.push(chunk.subarray(pos));
  }
  if (carry.length > 0) {
    const rest = Buffer.concat(carry);
    yield { text: rest.toString('utf8'), offset, bytes: rest.length, lineNo: ++lineNo, terminated: false };
  }
}

/** The last line of a file, read backwards from the end (a segment can be 64 MiB; the line is short). */
export async function readLastLine(file: string): Promise<{ text: string; terminated: boolean } | null> {
  const fh = await fs.open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size === 0) return null;
    const pieces: Buffer[] = [];
    let end = size;
    let first = true;
    let terminated = false;
    while (end > 0) {
      const len = Math.min(64 * 1024, end);
      const buf = Buffer.alloc(len);
      await readExactly(fh, buf, end - len);
      let searchEnd = len;
      if (first) {
        terminated = buf[len - 1] === 10;
        if (terminated) searchEnd = len - 1;
        first = false;
      }
      const nl = buf.subarray(0, searchEnd).lastIndexOf(10);
      if (nl >= 0) {
        pieces.unshift(buf.subarray(nl + 1, searchEnd));
        break;
      }
      pieces.unshift(buf.subarray(0, searchEnd));
      end -= len;
    }
    return { text: Buffer.concat(pieces).toString('utf8'), terminated };
  } finally {
    await fh.close();
  }
}

async function readExactly(fh: fs.FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
    if (bytesRead === 0) throw new Error(`unexpected end of file at ${position + done}`);
    done += bytesRead;
  }
}
