/**
 * The Merkle leaves of the ledger, straight from the segment files: each record's line bytes without
 * the newline, exactly as written (no JSON parse, no UTF-8 round trip), which is what a leaf hashes.
 */
import { createReadStream } from 'node:fs';
import { CorruptRecordError } from './errors.js';
import { ledgerDirOf, listSegments } from './segments.js';

export interface LeafLine {
  /** The seq this line holds by position: its segment's first seq plus its line index. */
  seq: number;
  bytes: Buffer;
}

export interface LeafReadOptions {
  fromSeq?: number;
  toSeq?: number;
  /**
   * Check each line's own seq field against its position, and refuse a segment that ends inside a
   * record when more follow (the agent's catch-up). Off for verification, which hashes what is there
   * and lets the roots disagree.
   */
  strict?: boolean;
}

const SEQ_TAIL = /"seq":(\d{1,16})\}$/;

export async function* readLeafLines(dir: string, opts: LeafReadOptions = {}): AsyncGenerator<LeafLine> {
  const fromSeq = opts.fromSeq ?? 1;
  const toSeq = opts.toSeq ?? Number.POSITIVE_INFINITY;
  const segments = await listSegments(ledgerDirOf(dir));
  let start = 0;
  for (let i = 0; i < segments.length; i++) if (segments[i].firstSeq <= fromSeq) start = i;
  for (let i = start; i < segments.length; i++) {
    const seg = segments[i];
    if (seg.firstSeq > toSeq) return;
    let seq = seg.firstSeq;
    const isLast = i === segments.length - 1;
    for await (const { bytes, terminated } of splitLines(seg.path)) {
      if (!terminated) {
        if (isLast) return; // a write in progress, or a torn tail the next open cuts off
        if (opts.strict) throw new CorruptRecordError(`${seg.name}: the segment ends inside a record and more segments follow; run \`warden ledger verify\``, seq, seg.name);
      }
      if (opts.strict) {
        const m = SEQ_TAIL.exec(bytes.toString('latin1', Math.max(0, bytes.length - 32)));
        if (!m || Number(m[1]) !== seq) {
          throw new CorruptRecordError(`${seg.name}: the record where seq ${seq} belongs says ${m ? `seq ${m[1]}` : 'no seq'}; run \`warden ledger verify\``, seq, seg.name);
        }
      }
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
