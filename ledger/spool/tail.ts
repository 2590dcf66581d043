/**
 * Follows the spool from a seq onward, remembering a byte offset, so a reader that keeps up (the
 * shipper) pays for each record once instead of re-scanning its segment on every batch.
 */
import fs from 'node:fs/promises';
import { CorruptRecordError } from '../errors.js';
import { parseRecordLine, type LedgerRecord } from './record.js';
import { LINE, lineLayout } from './fast-line.js';
import { ledgerDirOf, listSegments, segmentsFrom, type SegmentInfo } from './segments.js';

const CHUNK = 1 << 20;

export class SpoolTail {
  private segment: SegmentInfo | null = null;
  private offset = 0;

  private constructor(private readonly dir: string, private nextSeq: number) {}

  /** A tail whose first record will be `fromSeq`. */
  static at(dir: string, fromSeq: number): SpoolTail {
    return new SpoolTail(dir, Math.max(1, fromSeq));
  }

  get next(): number { return this.nextSeq; }

  /**
   * Up to `max` records, in order, that are complete on disk and `<= toSeq` (pass the spool's
   * lastSeq so only acknowledged records are read). Returns [] when there is nothing new yet.
   */
  async read(max: number, toSeq: number): Promise<LedgerRecord[]> {
    const out: LedgerRecord[] = [];
    let rec: LedgerRecord | null = null;
    await this.follow(max, toSeq, (buf, start, end, segment) => (rec = parseSegmentLine(buf.toString('utf8', start, end), segment)).seq, () => out.push(rec!));
    return out;
  }

  /**
   * The same records as read(), handed over as their lines' bytes (`buf[start, end)`, no newline;
   * valid only during the call) without being parsed: for a reader that takes the spool's bytes as
   * they are (the shipper's insert builder). Returns how many were handed over.
   */
  async readLines(max: number, toSeq: number, take: (buf: Buffer, start: number, end: number, segment: string) => void): Promise<number> {
    let n = 0;
    const seqOf = (buf: Buffer, start: number, end: number, segment: string) =>
      lineLayout(buf, start, end) ? LINE.seq : parseSegmentLine(buf.toString('utf8', start, end), segment).seq; // a malformed line: the parse names it
    await this.follow(max, toSeq, seqOf, (buf, start, end, segment) => {
      n++;
      take(buf, start, end, segment);
    });
    return n;
  }

  /** The loop of read() and readLines(): `seqOf` reads a line's seq (or throws), `take` gets each line that is next in order. */
  private async follow(
    max: number, toSeq: number,
    seqOf: (buf: Buffer, start: number, end: number, segment: string) => number,
    take: (buf: Buffer, start: number, end: number, segment: string) => void,
  ): Promise<void> {
    let taken = 0;
    while (taken < max && this.nextSeq <= toSeq) {
      if (!this.segment && !(await this.locate())) break;
      const seg = this.segment!;
      const fh = await fs.open(seg.path, 'r');
      let moved = false;
      try {
        const buf = Buffer.allocUnsafe(CHUNK);
        const { bytesRead } = await fh.read(buf, 0, CHUNK, this.offset);
        let start = 0;
        for (let nl = buf.indexOf(10, 0); nl !== -1 && nl < bytesRead && taken < max; nl = buf.indexOf(10, start)) {
          const lineStart = start;
          start = nl + 1;
          const seq = seqOf(buf, lineStart, nl, seg.name);
          this.offset += nl + 1 - lineStart;
          moved = true;
          if (seq < this.nextSeq) continue; // positioning inside the segment
          if (seq !== this.nextSeq) {
            throw new CorruptRecordError(`${seg.name}: expected seq ${this.nextSeq}, found ${seq}; run \`warden ledger verify\``, seq, seg.name, 0);
          }
          take(buf, lineStart, nl, seg.name);
          taken++;
          this.nextSeq++;
        }
        if (start === 0 && bytesRead === CHUNK) throw new CorruptRecordError(`${seg.name}: a record longer than ${CHUNK} bytes`, null, seg.name, 0);
      } finally {
        await fh.close();
      }
      if (!moved) {
        // End of this segment's complete lines: move on only once a newer segment exists.
        const segs = await listSegments(ledgerDirOf(this.dir));
        const after = segs.find((s) => s.firstSeq > seg.firstSeq);
        if (!after || after.firstSeq !== this.nextSeq) break;
        this.segment = after;
        this.offset = 0;
      }
    }
  }

  private async locate(): Promise<boolean> {
    const [found] = await segmentsFrom(ledgerDirOf(this.dir), this.nextSeq);
    if (!found || found.firstSeq > this.nextSeq) return false;
    this.segment = found;
    this.offset = 0;
    return true;
  }
}

/** parseRecordLine, its error naming the segment the line is in (the shipper's insert builder reports the same way). */
export function parseSegmentLine(line: string, segment: string): LedgerRecord {
  try {
    return parseRecordLine(line);
  } catch (err) {
    throw new CorruptRecordError(`${segment}: ${(err as Error).message}; run \`warden ledger verify\``, null, segment, 0);
  }
}
