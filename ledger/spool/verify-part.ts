/**
 * One part of verify's parallel fast path: the lines that *start* in the byte range `[start, end)` of
 * one segment file (end null: to the end of the file), each checked from its bytes (fast-line.ts) and
 * linked to the line before it within the part. The part's first prev and last hash are returned so
 * the caller can check the boundaries between parts once, in order.
 *
 * Like fastCheckLine it only says "good" (a PartResult) or "not sure" (null); the reference pass
 * decides what is wrong. Synchronous: it runs on a worker thread (verify-worker.ts).
 */
import fs from 'node:fs';
import { fastCheckLine } from './fast-line.js';

export interface PartSpec {
  path: string;
  /** Byte offset where the part starts; a line belongs to the part its first byte lies in. */
  start: number;
  /** Byte offset where the next part starts, or null: this part reads to the end of the file. */
  end: number | null;
  /** The seq the segment's name says it starts at (checked against its first line, at offset 0). */
  segFirstSeq: number;
}

export interface PartResult {
  /** Lines in the part (0: none starts in the range). */
  count: number;
  firstSeq: number;
  firstPrev: string;
  lastSeq: number;
  lastHash: string;
}

const CHUNK = 4 << 20;

export function checkPart(part: PartSpec): PartResult | null {
  const fd = fs.openSync(part.path, 'r');
  try {
    return scan(fd, part);
  } finally {
    fs.closeSync(fd);
  }
}

function scan(fd: number, part: PartSpec): PartResult | null {
  const { start, end } = part;
  let buf = Buffer.allocUnsafe(CHUNK);
  // A part after the first begins after the first newline at or after start - 1.
  let skipping = start > 0;
  let bufAt = skipping ? start - 1 : 0; // file offset of buf[0]
  let filled = 0;
  let count = 0;
  let firstSeq = 0;
  let firstPrev = '';
  let expect = 0;
  let prev = '';
  const done = (): PartResult => ({ count, firstSeq, firstPrev, lastSeq: expect - 1, lastHash: prev });
  for (;;) {
    if (filled === buf.length) {
      const bigger = Buffer.allocUnsafe(buf.length * 2); // one line longer than the buffer
      buf.copy(bigger, 0, 0, filled);
      buf = bigger;
    }
    const bytesRead = fs.readSync(fd, buf, filled, buf.length - filled, bufAt + filled);
    if (bytesRead === 0) break;
    const avail = filled + bytesRead;
    let pos = 0;
    if (skipping) {
      const nl = buf.indexOf(10, 0);
      if (nl < 0 || nl >= avail) {
        bufAt += avail;
        filled = 0;
        if (end !== null && bufAt >= end) return done(); // no line starts in the range
        continue;
      }
      pos = nl + 1;
      skipping = false;
    }
    for (let nl = buf.indexOf(10, pos); ; nl = buf.indexOf(10, pos)) {
      if (end !== null && bufAt + pos >= end) return done();
      if (nl < 0 || nl >= avail) break;
      const link = fastCheckLine(buf, pos, nl, count === 0 ? undefined : prev);
      if (!link) return null;
      if (bufAt + pos === 0 && link.seq !== part.segFirstSeq) return null;
      if (count === 0) {
        firstSeq = link.seq;
        firstPrev = link.prev;
      } else if (link.seq !== expect || link.prev !== prev) {
        return null;
      }
      count++;
      expect = link.seq + 1;
      prev = link.hash;
      pos = nl + 1;
    }
    buf.copy(buf, 0, pos, avail);
    bufAt += pos;
    filled = avail - pos;
  }
  // The end of the file: bytes after the last newline are a torn or in-progress line, if they start
  // in this part (a part that ends before them leaves them to the next).
  if (skipping || filled === 0) return done();
  return end !== null && bufAt >= end ? done() : null;
}
