/**
 * The Merkle leaves of the ledger, straight from the segment files: each record's line bytes without
 * the newline, exactly as written (no JSON parse, no UTF-8 round trip), which is what a leaf hashes.
 * `readLeafLines` streams them for verification and proofs (the i-th line of the spool is leaf i-1,
 * whatever it says); `LeafTail` follows the live spool for the Checkpointer.
 */
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import { CorruptRecordError } from '../errors.js';
import { ledgerDirOf, listSegments, segmentsFrom, segmentsInRange } from '../spool/segments.js';

export interface LeafLine {
  /** The seq this line holds by position: its segment's first seq plus its line index. */
  seq: number;
  bytes: Buffer;
}

export interface LeafReadOptions {
  fromSeq?: number;
  toSeq?: number;
}

const SEQ_TAIL = /"seq":(\d{1,16})\}$/;
const SEQ_KEY = Buffer.from('"seq":');

/**
 * The seq a record line ends with (what SEQ_TAIL reads: `"seq":` then 1-16 digits then `}`), or -1;
 * read from the bytes, with no string or match per line (the Checkpointer reads every line).
 */
function tailSeq(b: Uint8Array): number {
  let i = b.length - 1;
  if (i < 0 || b[i] !== 0x7d) return -1;
  let seq = 0;
  let mul = 1;
  while (i > 0 && b[i - 1] >= 0x30 && b[i - 1] <= 0x39) {
    i--;
    seq += (b[i] - 0x30) * mul;
    mul *= 10;
  }
  const digits = b.length - 1 - i;
  if (digits < 1 || digits > 16 || i < SEQ_KEY.length) return -1;
  for (let k = 0; k < SEQ_KEY.length; k++) if (b[i - SEQ_KEY.length + k] !== SEQ_KEY[k]) return -1;
  return seq;
}

export async function* readLeafLines(dir: string, opts: LeafReadOptions = {}): AsyncGenerator<LeafLine> {
  const fromSeq = opts.fromSeq ?? 1;
  const toSeq = opts.toSeq ?? Number.POSITIVE_INFINITY;
  for await (const { seg, isLast } of segmentsInRange(dir, fromSeq, toSeq)) {
    let seq = seg.firstSeq;
    for await (const { bytes, terminated } of splitLines(seg.path)) {
      // At the very end: a write in progress, or a torn tail the next open cuts off. Elsewhere the
      // bytes are hashed as they are and the roots disagree.
      if (!terminated && isLast) return;
      if (seq > toSeq) return;
      if (seq >= fromSeq) yield { seq, bytes };
      seq++;
    }
  }
}

async function* splitLines(file: string): AsyncGenerator<{ bytes: Buffer; terminated: boolean }> {
  let carry: Buffer[] = [];
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
    let pos = 0;
    for (let nl = chunk.indexOf(10, pos); nl >= 0; nl = chunk.indexOf(10, pos)) {
      let bytes = chunk.subarray(pos, nl);
      if (carry.length > 0) {
        bytes = Buffer.concat([...carry, bytes]);
        carry = [];
      }
      yield { bytes, terminated: true };
      pos = nl + 1;
    }
    if (pos < chunk.length) carry.push(chunk.subarray(pos));
  }
  if (carry.length > 0) yield { bytes: Buffer.concat(carry), terminated: false };
}

/**
 * Follows the spool's leaves as the agent appends: remembers the segment and byte offset it reached,
 * so each read costs only the new records. Reads only up to a seq the spool has reported durable
 * (complete, synced lines), and checks each line's seq against its position.
 */
export class LeafTail {
  private seg: { name: string; path: string; firstSeq: number } | null = null;
  private offset = 0;
  private seq = 0; // seq of the line at `offset` in `seg`
  private readonly chunkBytes: number;

  constructor(private readonly dir: string, private next: number, opts: { chunkBytes?: number } = {}) {
    this.chunkBytes = opts.chunkBytes ?? 256 * 1024;
  }

  /** The next seq it will yield. */
  get nextSeq(): number {
    return this.next;
  }

  /**
   * Leaves from nextSeq through toSeq, in order. Each leaf's bytes are a view into a read buffer
   * the next step reuses: hash them (or copy them) before asking for the next.
   */
  async *read(toSeq: number): AsyncGenerator<LeafLine> {
    while (this.next <= toSeq) {
      if (!this.seg || this.seq > this.next) await this.locate();
      const seg = this.seg!;
      const fh = await fs.open(seg.path, 'r');
      let eof = false;
      try {
        const buf = Buffer.allocUnsafe(this.chunkBytes);
        let carry: Buffer | null = null;
        while (this.next <= toSeq) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, this.offset + (carry?.length ?? 0));
          if (bytesRead === 0) {
            eof = true;
            break;
          }
          const data: Buffer = carry ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
          carry = null;
          let pos = 0;
          for (let nl = data.indexOf(10); nl >= 0 && this.next <= toSeq; nl = data.indexOf(10, pos)) {
            // A view, not a copy (buf is reused): valid until the caller asks for the next leaf.
            const bytes = data.subarray(pos, nl);
            const said = tailSeq(bytes);
            if (said !== this.seq) {
              const m = SEQ_TAIL.exec(bytes.toString('latin1', Math.max(0, bytes.length - 32)));
              throw new CorruptRecordError(`${seg.name}: the record where seq ${this.seq} belongs says ${m ? `seq ${m[1]}` : 'no seq'}; run \`warden ledger verify\``, this.seq, seg.name);
            }
            this.offset += nl - pos + 1;
            pos = nl + 1;
            const seq = this.seq++;
            if (seq >= this.next) {
              this.next = seq + 1;
              yield { seq, bytes };
            }
          }
          if (this.next > toSeq) break;
          if (pos < data.length) carry = Buffer.from(data.subarray(pos));
        }
      } finally {
        await fh.close();
      }
      // The segment ends before toSeq: the rest is in the next segment, which must start right here.
      if (eof && this.next <= toSeq) {
        const after = (await listSegments(ledgerDirOf(this.dir))).find((s) => s.firstSeq === this.seq);
        if (!after || after.firstSeq !== this.next) {
          throw new CorruptRecordError(`the spool has no record ${this.next} although it was reported durable; run \`warden ledger verify\``, this.next);
        }
        this.seg = after;
        this.offset = 0;
      }
    }
  }

  /** Positions at the start of the segment holding `next` (its earlier lines are skipped by read). */
  private async locate(): Promise<void> {
    const [seg] = await segmentsFrom(ledgerDirOf(this.dir), this.next);
    if (!seg || seg.firstSeq > this.next) {
      throw new CorruptRecordError(`the spool has no segment holding seq ${this.next}; run \`warden ledger verify\``, this.next);
    }
    this.seg = seg;
    this.offset = 0;
    this.seq = seg.firstSeq;
  }
}
