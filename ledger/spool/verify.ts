/**
 * Offline integrity check of the whole ledger: every record's hash is recomputed from genesis, with
 * the reference canonicalization, across all segments, and the seq/prev links must be unbroken.
 *
 * Stops at the first problem and names it exactly. `problem.segment`/`problem.line` are where the
 * problem shows; `problem.seq` is the offending record's seq there (for `missing`, the first seq
 * that is absent). When a break could be blamed on either of two records, one record of lookahead
 * decides: the record the rest of the chain still links to is the genuine one.
 */
import { GENESIS_HASH, inspectLine, type LedgerRecord } from './record.js';
import { liveHolder } from './lock.js';
import { ledgerDirOf, listSegments, readLines, segmentName, type SegmentInfo } from './segments.js';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { fastCheckLine } from './fast-line.js';
import { checkPart, type PartResult, type PartSpec } from './verify-part.js';
import type { PartReply, PartRequest } from './verify-worker.js';
import { CORES, giveWorker, takeWorker } from './verify-pool.js';

export type ProblemKind = 'modified' | 'missing' | 'reordered' | 'inserted' | 'unparsable' | 'torn';

export interface VerifyProblem {
  seq: number;
  segment: string;
  /** 1-based line within the segment. */
  line: number;
  kind: ProblemKind;
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  /** Records verified good, in order from seq 1 (up to the problem, if any). */
  records: number;
  /** seq and hash of the last good record (0 and the genesis hash when there is none). */
  lastSeq: number;
  headHash: string;
  problem?: VerifyProblem;
  /** A running agent holds the spool and was writing the record after lastSeq when it was read. */
  writing?: { pid: number; seq: number };
}

interface Item {
  seg: SegmentInfo;
  line: number;
  terminated: boolean;
  inspected: ReturnType<typeof inspectLine>;
}

/** A good record already accepted into the chain. */
interface Accepted {
  record: LedgerRecord;
  seg: SegmentInfo;
  line: number;
}

/** How the fast path spreads over worker threads (tests and benchmarks only; the defaults suit a ledger). */
export interface ParallelTuning {
  /** Ledgers smaller than this (bytes, all segments) are checked on the calling thread. */
  minBytes: number;
  /** About how many bytes each part covers (a segment is split at line starts into parts about this big). */
  partBytes: number;
  /** Most threads to use, the calling one included when `onMain`; 1 or fewer: no workers. */
  threads: number;
  /**
   * The calling thread checks parts too, between its event-loop turns (one part at a time, as the
   * single-threaded path reads one chunk at a time), so one worker fewer is started.
   */
  onMain: boolean;
}

export const DEFAULT_PARALLEL: ParallelTuning = {
  // Spawning a worker costs a few ms to tens of ms on a loaded machine; the fast path checks ~1 MiB in ~5 ms.
  minBytes: 8 << 20,
  partBytes: 4 << 20,
  threads: CORES,
  onMain: true,
};

export async function verifyLedger(dir: string, tuning: Partial<ParallelTuning> = {}): Promise<VerifyResult> {
  const segments = await listSegments(ledgerDirOf(dir));
  // Most ledgers are intact: prove that from the bytes alone (no parse, no re-encoding), in parallel
  // when the ledger is big enough. Any doubt, and the reference pass below re-reads everything and
  // names the problem exactly.
  const parallel = await parallelFastVerify(segments, { ...DEFAULT_PARALLEL, ...tuning });
  const fast = parallel === undefined ? await fastVerify(segments) : parallel;
  if (fast) return fast;
  const cur = new Cursor(items(segments));
  let expect = 1;
  let prev = GENESIS_HASH;
  let records = 0;
  let last: Accepted | null = null;
  const fail = (problem: VerifyProblem, blameLast = false): VerifyResult =>
    blameLast && last
      ? { ok: false, records: records - 1, lastSeq: last.record.seq - 1, headHash: last.record.prev, problem }
      : { ok: false, records, lastSeq: expect - 1, headHash: prev, problem };

  for (let item = await cur.next(); item; item = await cur.next()) {
    const at = { segment: item.seg.name, line: item.line };
    const where = `${item.seg.name} line ${item.line}`;
    if (!item.terminated) {
      if (await cur.peek()) {
        return fail({ ...at, seq: expect, kind: 'unparsable', message: `${where}: the segment ends inside a record where seq ${expect} belongs, and more segments follow` });
      }
      // A live writer's batch can be caught half-written: everything before it is what matters.
      const pid = await liveHolder(path.join(ledgerDirOf(dir), 'LOCK'));
      if (pid !== null) return { ok: true, records, lastSeq: expect - 1, headHash: prev, writing: { pid, seq: expect } };
      return fail({
        ...at, seq: expect, kind: 'torn',
        message: `${where}: the last record (seq ${expect}) is incomplete: a write cut off by a crash, so it was never ` +
          `acknowledged. Opening the spool (starting the agent) truncates it; everything before it verified.`,
      });
    }
    const ins = item.inspected;
    if (!ins.ok) {
      return fail({ ...at, seq: expect, kind: 'unparsable', message: `${where}: where seq ${expect} belongs: ${ins.error.message}` });
    }
    const r = ins.record;
    if (!ins.selfOk) {
      const claim = r.seq === expect ? '' : ` (its seq field now says ${r.seq})`;
      return fail({ ...at, seq: expect, kind: 'modified', message: `${where}: record seq ${expect} was altered: ${ins.why}${claim}` });
    }
    if (r.seq === expect && r.prev === prev) {
      if (item.line === 1 && item.seg.firstSeq !== r.seq) {
        return fail({
          ...at, seq: r.seq, kind: 'modified',
          message: `${where}: the segment file's name says it starts at seq ${item.seg.firstSeq} but it starts at ` +
            `seq ${r.seq}; it should be named ${segmentName(r.seq)} (renamed file?)`,
        });
      }
      last = { record: r, seg: item.seg, line: item.line };
      records++;
      expect++;
      prev = r.hash;
      continue;
    }
    const found = await classifyBreak(cur, item, r, expect, prev, last);
    return fail(found.problem, found.blameLast);
  }
  return { ok: true, records, lastSeq: expect - 1, headHash: prev };
}

const CHUNK = 4 << 20;

/** The whole chain, certainly good, or null: let the reference pass decide. */
async function fastVerify(segments: SegmentInfo[]): Promise<VerifyResult | null> {
  let expect = 1;
  let prev = GENESIS_HASH;
  let buf = Buffer.allocUnsafe(CHUNK);
  for (const seg of segments) {
    const fh = await fs.open(seg.path, 'r');
    try {
      let filled = 0;
      let firstLine = true;
      for (;;) {
        if (filled === buf.length) {
          const bigger = Buffer.allocUnsafe(buf.length * 2); // one line longer than the buffer
          buf.copy(bigger, 0, 0, filled);
          buf = bigger;
        }
        const { bytesRead } = await fh.read(buf, filled, buf.length - filled, null);
        if (bytesRead === 0) break;
        const end = filled + bytesRead;
        let pos = 0;
        for (let nl = buf.indexOf(10, pos); nl >= 0 && nl < end; nl = buf.indexOf(10, pos)) {
          const link = fastCheckLine(buf, pos, nl, prev);
          if (!link || link.seq !== expect) return null;
          if (firstLine && seg.firstSeq !== link.seq) return null;
          firstLine = false;
          expect++;
          prev = link.hash;
          pos = nl + 1;
        }
        buf.copy(buf, 0, pos, end);
        filled = end - pos;
      }
      if (filled > 0) return null; // a torn or in-progress last line
    } finally {
      await fh.close();
    }
  }
  return { ok: true, records: expect - 1, lastSeq: expect - 1, headHash: prev };
}

/**
 * The fast path on worker threads: the segments cut into line-aligned parts, each part checked on a
 * worker (its lines from their bytes, and its own links from its first record's prev), then the
 * boundaries checked here once, in order: each part's first seq and prev continue the part before it.
 * The whole chain certainly good, or null (let the reference pass decide), or undefined: not run here
 * (a small ledger, one core, no worker script, or a worker that failed), so the caller's own thread
 * does the same checks.
 */
export async function parallelFastVerify(segments: SegmentInfo[], tuning: ParallelTuning): Promise<VerifyResult | null | undefined> {
  const total = segments.reduce((sum, s) => sum + s.size, 0);
  if (tuning.threads < 2 || total < tuning.minBytes || segments.length === 0) return undefined;
  const parts = planParts(segments, Math.max(1, tuning.partBytes));
  const threads = Math.min(tuning.threads, parts.length);
  if (threads < 2) return undefined;
  const script = workerScript();
  if (!script) return undefined;
  const results = await runParts(script, parts, threads, tuning.onMain);
  if (results === undefined || results === null) return results;
  let expect = 1;
  let prev = GENESIS_HASH;
  for (const r of results) {
    if (r.count === 0) continue;
    if (r.firstSeq !== expect || r.firstPrev !== prev) return null;
    expect = r.lastSeq + 1;
    prev = r.lastHash;
  }
  return { ok: true, records: expect - 1, lastSeq: expect - 1, headHash: prev };
}

/** Each segment cut into parts of about `partBytes`; a segment's last part reads to its end (a live writer may be appending). */
export function planParts(segments: SegmentInfo[], partBytes: number): PartSpec[] {
  const parts: PartSpec[] = [];
  for (const seg of segments) {
    const k = Math.max(1, Math.round(seg.size / partBytes));
    for (let i = 0; i < k; i++) {
      parts.push({
        path: seg.path,
        start: Math.floor((seg.size * i) / k),
        end: i === k - 1 ? null : Math.floor((seg.size * (i + 1)) / k),
        segFirstSeq: seg.firstSeq,
      });
    }
  }
  return parts;
}

/**
 * The worker's script: beside this module in dist/. Run from the TypeScript sources (the tests), the
 * built copy in dist/ is used (the test setup builds it); without one, there is no parallel path.
 */
function workerScript(): URL | null {
  const here = fileURLToPath(import.meta.url);
  const file = here.endsWith('.ts')
    ? path.resolve(path.dirname(here), '..', '..', 'dist', 'ledger', 'spool', 'verify-worker.js')
    : path.join(path.dirname(here), 'verify-worker.js');
  return existsSync(file) ? pathToFileURL(file) : null;
}

/**
 * Runs the parts on `threads` threads (workers, and this one when `onMain`), handing out the next part as each finishes. Results in part
 * order; null as soon as any part is "not sure"; undefined when a worker failed or could not read.
 */
async function runParts(script: URL, parts: PartSpec[], threads: number, onMain: boolean): Promise<PartResult[] | null | undefined> {
  const results: (PartResult | undefined)[] = new Array(parts.length);
  const workers: Worker[] = [];
  let next = 0;
  let remaining = parts.length;
  let reusable = false; // every part answered: no worker has anything in flight
  try {
    return await new Promise<PartResult[] | null | undefined>((resolve) => {
      let settled = false;
      const settle = (v: PartResult[] | null | undefined) => {
        if (!settled) {
          settled = true;
          reusable = remaining === 0;
          resolve(v);
        }
      };
      const feed = (w: Worker) => {
        if (next < parts.length) {
          const req: PartRequest = { id: next, part: parts[next++] };
          w.postMessage(req);
        }
      };
      for (let i = onMain ? 1 : 0; i < threads; i++) {
        let w: Worker;
        try {
          w = takeWorker(script);
        } catch {
          return settle(undefined);
        }
        workers.push(w);
        w.on('message', (reply: PartReply) => {
          if (settled) return;
          if ('error' in reply) return settle(undefined);
          if (reply.result === null) return settle(null);
          results[reply.id] = reply.result;
          if (--remaining === 0) return settle(results as PartResult[]);
          feed(w);
        });
        w.on('error', () => settle(undefined));
        w.on('exit', () => settle(undefined)); // before every part answered
        // Two parts queued per worker: its next one is waiting while this thread, busy with a part of
        // its own, cannot yet read the worker's answer (else the worker idles for a part's time).
        feed(w);
        feed(w);
      }
      if (onMain) {
        void (async () => {
          while (!settled && next < parts.length) {
            const id = next++;
            let r: PartResult | null;
            try {
              r = checkPart(parts[id]);
            } catch {
              return settle(undefined);
            }
            if (r === null) return settle(null);
            results[id] = r;
            if (--remaining === 0) return settle(results as PartResult[]);
            await new Promise((res) => setImmediate(res)); // let the workers' replies in
          }
        })();
      }
    });
  } finally {
    // Warm workers go back to the pool (verify-pool.ts); one that may still be busy is ended.
    if (reusable) for (const w of workers) giveWorker(script, w);
    else await Promise.all(workers.map((w) => w.terminate().catch(() => undefined)));
  }
}

/** A self-consistent record that does not continue the chain: decide what happened, and to which record. */
async function classifyBreak(
  cur: Cursor, item: Item, r: LedgerRecord, expect: number, prev: string, last: Accepted | null,
): Promise<{ problem: VerifyProblem; blameLast: boolean }> {
  const here = { segment: item.seg.name, line: item.line };
  const where = `${item.seg.name} line ${item.line}`;
  const problem = (p: Omit<VerifyProblem, 'segment' | 'line'>, at = here) => ({ problem: { ...at, ...p }, blameLast: false });
  const atLast = last ? { segment: last.seg.name, line: last.line } : here;
  const lastWhere = last ? `${last.seg.name} line ${last.line}` : where;
  const next = recordOf(await cur.peek());

  if (r.seq === expect) {
    if (next && next.seq === r.seq) {
      return problem({ seq: r.seq, kind: 'inserted', message: `${where}: an extra record claiming seq ${r.seq} that does not link to seq ${r.seq - 1}; the genuine seq ${r.seq} follows it` });
    }
    if ((next && next.prev !== r.hash) || !last) {
      return problem({ seq: r.seq, kind: 'modified', message: `${where}: record seq ${r.seq} does not link to the record before it and nothing links to it: it was forged or replaced (its own hash was recomputed)` });
    }
    return {
      problem: { ...atLast, seq: last.record.seq, kind: 'modified', message: `${lastWhere}: record seq ${last.record.seq} was changed and its hash recomputed: seq ${r.seq} (${where}) still links to the original` },
      blameLast: true,
    };
  }

  if (r.seq < expect) {
    // Two records claim the same place in the chain; the one the next record links to is genuine.
    if (last && r.seq === last.record.seq && r.prev === last.record.prev && next && next.prev === r.hash) {
      return {
        problem: { ...atLast, seq: last.record.seq, kind: 'inserted', message: `${lastWhere}: a forged record claiming seq ${last.record.seq}; the genuine one is at ${where} and the chain continues from it` },
        blameLast: true,
      };
    }
    return problem({ seq: r.seq, kind: 'inserted', message: `${where}: seq ${r.seq} appears again after seq ${expect - 1}: a duplicated or inserted record` });
  }

  // r.seq > expect: records skipped here are either further on (reordered) or gone (missing).
  if (next && next.seq === expect && next.prev === prev) {
    if (r.prev === next.hash) {
      return problem({ seq: r.seq, kind: 'reordered', message: `${where}: seq ${r.seq} is before seq ${expect}: the two records were swapped` });
    }
    return problem({ seq: r.seq, kind: 'inserted', message: `${where}: an extra record claiming seq ${r.seq}; the chain continues with seq ${expect} after it` });
  }
  for (let later = await cur.next(); later; later = await cur.next()) {
    const lr = recordOf(later);
    if (lr && lr.seq >= expect && lr.seq < r.seq) {
      return problem({ seq: r.seq, kind: 'reordered', message: `${where}: seq ${r.seq} found where seq ${expect} belongs; seq ${lr.seq} comes later (${later.seg.name} line ${later.line}): records were moved` });
    }
  }
  const range = r.seq - 1 === expect ? `seq ${expect} is` : `seqs ${expect}..${r.seq - 1} are`;
  let segNote = '';
  if (item.line === 1 && item.seg.firstSeq === r.seq) segNote = ` (a whole segment, ${segmentName(expect)}, may have been deleted)`;
  else if (item.line === 1) segNote = ' (removed from the start of this segment)';
  return problem({ seq: expect, kind: 'missing', message: `${where}: ${range} missing before seq ${r.seq}${segNote}` });
}

function recordOf(item: Item | undefined): LedgerRecord | null {
  return item && item.terminated && item.inspected.ok ? item.inspected.record : null;
}

async function* items(segments: SegmentInfo[]): AsyncGenerator<Item> {
  for (const seg of segments) {
    for await (const l of readLines(seg.path)) {
      yield { seg, line: l.lineNo, terminated: l.terminated, inspected: inspectLine(l.text) };
    }
  }
}

/** An async iterator with one item of lookahead. */
class Cursor {
  private buffered: Item[] = [];
  constructor(private readonly source: AsyncIterator<Item>) {}

  async next(): Promise<Item | undefined> {
    if (this.buffered.length > 0) return this.buffered.shift();
    const r = await this.source.next();
    return r.done ? undefined : r.value;
  }

  async peek(): Promise<Item | undefined> {
    if (this.buffered.length === 0) {
      const r = await this.source.next();
      if (r.done) return undefined;
      this.buffered.push(r.value);
    }
    return this.buffered[0];
  }
}
