/**
 * Follows the spool from a seq onward, remembering a byte offset, so a reader that keeps up (the
 * shipper) pays for each record once instead of re-scanning its segment on every batch.
 */
import fs from 'node:fs/promises';
import { CorruptRecordError } from '../errors.js';
import { parseRecordLine, type LedgerRecord } from './record.js';
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
    while (out.length < max && this.nextSeq <= toSeq) {
      if (!this.segment && !(await this.locate())) break;
      const seg = this.segment!;
      const fh = await fs.open(seg.path, 'r');
      let moved = false;
      try {
        const buf = Buffer.allocUnsafe(CHUNK);
        const { bytesRead } = await fh.read(buf, 0, CHUNK, this.offset);
        let start = 0;
        for (let nl = buf.indexOf(10, 0); nl !== -1 && nl < bytesRead && out.length < max; nl = buf.indexOf(10, start)) {
          const line = buf.toString('utf8', start, nl);
          const lineBytes = nl + 1 - start;
          start = nl + 1;
          const rec = parse(line, seg.name);
          this.offset += lineBytes;
          moved = true;
          if (rec.seq < this.nextSeq) continue; // positioning inside the segment
          if (rec.seq !== this.nextSeq) {
            throw new CorruptRecordError(`${seg.name}: expected seq ${this.nextSeq}, found ${rec.seq}; run \`warden ledger verify\``, rec.seq, seg.name, 0);
          }
          out.push(rec);
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
    return out;
  }

  private async locate(): Promise<boolean> {
    const [found] = await segmentsFrom(ledgerDirOf(this.dir), this.nextSeq);
    if (!found || found.firstSeq > this.nextSeq) return false;
    this.segment = found;
    this.offset = 0;
    return true;
  }
}

function parse(line: string, segment: string): LedgerRecord {
  try {
    return parseRecordLine(line);
  } catch (err) {
    throw new CorruptRecordError(`${segment}: ${(err as Error).message}; run \`warden ledger verify\``, null, segment, 0);
  }
}
