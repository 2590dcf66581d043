/** Streaming reads of the records in seq order, across segments, without loading files whole. */
import { CorruptRecordError } from '../errors.js';
import { parseRecordLine, type LedgerRecord } from './record.js';
import { readLines, segmentsInRange } from './segments.js';

export interface ReadOptions {
  /** First seq wanted (default 1). Segments that end before it are not opened. */
  fromSeq?: number;
  /** Last seq wanted, inclusive. A reader beside a live spool passes `spool.lastSeq` to see only acknowledged records. */
  toSeq?: number;
}

export interface RawReadOptions extends ReadOptions {
  /** Cheap test on the raw line; lines it rejects are not parsed (used by queries). */
  prefilter?: (line: string) => boolean;
}

export async function* readRecords(dir: string, opts: RawReadOptions = {}): AsyncGenerator<LedgerRecord> {
  const fromSeq = opts.fromSeq ?? 1;
  const toSeq = opts.toSeq ?? Number.POSITIVE_INFINITY;
  for await (const { seg, isLast } of segmentsInRange(dir, fromSeq, toSeq)) {
    for await (const line of readLines(seg.path)) {
      if (!line.terminated) {
        // At the very end this is a write in progress or a torn tail that the next open cuts off.
        if (isLast) return;
        throw new CorruptRecordError(
          `${seg.name} line ${line.lineNo}: the segment ends inside a record; run \`warden ledger verify\``,
          null, seg.name, line.lineNo,
        );
      }
      if (opts.prefilter && !opts.prefilter(line.text)) continue;
      let record: LedgerRecord;
      try {
        record = parseRecordLine(line.text);
      } catch (err) {
        if (!(err instanceof CorruptRecordError)) throw err;
        throw new CorruptRecordError(
          `${seg.name} line ${line.lineNo}: ${err.message}; run \`warden ledger verify\``,
          err.seq, seg.name, line.lineNo,
        );
      }
      if (record.seq < fromSeq) continue;
      if (record.seq > toSeq) return;
      yield record;
    }
  }
}
