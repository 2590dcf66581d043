/**
 * The local, append-only, hash-chained spool every event is written to before a collector
 * acknowledges it.
 *
 * Durability: `append` resolves only after its records are written and fdatasync'd (fdatasync also
 * persists the file size, which is all an append changes). Throughput comes from group commit:
 * appends that arrive within `groupCommitMs`, or while a commit is in flight, share one write and one
 * sync. Events are canonicalized when `append` is called (spreading that CPU work and failing only the
 * caller with a bad event); seqs and hashes are assigned when the batch is committed, in call order.
 *
 * Consistency: the in-memory head (lastSeq, headHash) only moves after the sync succeeded. A failed
 * write or sync rejects the whole batch and truncates the segment back to where the batch began.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { WardenEvent } from '../../core/event.js';
import { CanonicalWriter, NotJsonError } from '../../core/canonical.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, writeAll } from '../../core/files.js';
import { InvalidEventError, SpoolClosedError, SpoolFailedError, SpoolWriteError } from '../errors.js';
import { acquireLock, releaseLock } from './lock.js';
import { eventShapeProblem, writeRecordLine, type LedgerRecord } from './record.js';
import { readRecords, type ReadOptions } from './reader.js';
import { recoverTail, type RecoveryReport } from './recover.js';
import { ledgerDirOf, listSegments, segmentName, syncDir } from './segments.js';

export interface SpoolOptions {
  /** Data directory; segments live in `<dir>/ledger/`. */
  dir: string;
  /** A new segment is started when the next batch would take the current one past this (default 64 MiB). */
  segmentBytes?: number;
  /** How long the first append of an idle spool waits for company before committing (default 5 ms). */
  groupCommitMs?: number;
  /** Most records per commit (default 16384); a single larger append is still committed whole. */
  maxBatch?: number;
  /** false skips fdatasync: for tests and benchmarks only, acknowledged records can then be lost. */
  fsync?: boolean;
}

export interface SpoolStats {
  segments: number;
  /** Bytes in all segments. */
  bytes: number;
  lastSeq: number;
  /** Commits since open: each is one write (and one sync when fsync is on). */
  flushes: number;
  /** fdatasync calls on segments since open. */
  syncs: number;
  /** Records committed since open. */
  records: number;
  /** Records accepted by append but not yet committed. */
  pending: number;
}

interface PendingAppend {
  events: WardenEvent[];
  /** The events' canonical JSON one after another (UTF-8); event i ends at ends[i]. */
  json: Buffer;
  ends: Uint32Array;
  resolve: (records: LedgerRecord[]) => void;
  reject: (err: Error) => void;
}

const DEFAULTS = { segmentBytes: 64 * 1024 * 1024, groupCommitMs: 5, maxBatch: 16384, fsync: true };

export class Spool {
  /** What open found and repaired at the tail. */
  readonly recovery: RecoveryReport;
  readonly dir: string;

  private readonly ledgerDir: string;
  private readonly lockPath: string;
  private readonly segmentBytes: number;
  private readonly groupCommitMs: number;
  private readonly maxBatch: number;
  private readonly fsync: boolean;

  private fh: fs.FileHandle;
  private segName: string;
  private segSize: number;
  private segmentCount: number;
  private totalBytes: number;
  private seq: number;
  private head: string;

  private queue: PendingAppend[] = [];
  /** Encodes each append's events (reused: append is synchronous). */
  private readonly encoder = new CanonicalWriter();
  /** A commit's lines (reused: one commit at a time, done with it when it resolves). */
  private readonly lines = new CanonicalWriter(256 << 10);
  private queued = 0;
  private timer: { cancel: () => void } | null = null;
  private flushing: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private failure: unknown = null;
  private readonly counters = { flushes: 0, syncs: 0, records: 0 };

  private constructor(init: {
    dir: string; ledgerDir: string; lockPath: string; options: Required<Omit<SpoolOptions, 'dir'>>;
    fh: fs.FileHandle; segName: string; segSize: number; segmentCount: number; totalBytes: number;
    seq: number; head: string; recovery: RecoveryReport;
  }) {
    this.dir = init.dir;
    this.ledgerDir = init.ledgerDir;
    this.lockPath = init.lockPath;
    this.segmentBytes = init.options.segmentBytes;
    this.groupCommitMs = init.options.groupCommitMs;
    this.maxBatch = init.options.maxBatch;
    this.fsync = init.options.fsync;
    this.fh = init.fh;
    this.segName = init.segName;
    this.segSize = init.segSize;
    this.segmentCount = init.segmentCount;
    this.totalBytes = init.totalBytes;
    this.seq = init.seq;
    this.head = init.head;
    this.recovery = init.recovery;
  }

  /** Opens (creating if needed) the spool under `opts.dir`, recovering a torn tail; see recover.ts. */
  static async open(opts: SpoolOptions): Promise<Spool> {
    const options = checkOptions(opts);
    const dir = path.resolve(opts.dir);
    const ledgerDir = ledgerDirOf(dir);
    await fs.mkdir(ledgerDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    // Records are private to Warden's user (also for a data dir made by an older version, or by hand).
    for (const d of [dir, ledgerDir]) await fs.chmod(d, PRIVATE_DIR_MODE).catch(() => undefined);
    const lockPath = path.join(ledgerDir, 'LOCK');
    await acquireLock(lockPath);
    try {
      let segments = await listSegments(ledgerDir);
      for (const seg of segments) await fs.chmod(seg.path, PRIVATE_FILE_MODE).catch(() => undefined);
      if (segments.length === 0) {
        await (await createSegment(ledgerDir, 1)).close();
        await syncDir(dir);
        segments = await listSegments(ledgerDir);
      }
      const head = await recoverTail(ledgerDir, segments);
      const last = segments[segments.length - 1];
      const fh = await fs.open(last.path, 'r+');
      const totalBytes = segments.reduce((n, s) => n + s.size, 0) - head.recovery.truncatedBytes;
      return new Spool({
        dir, ledgerDir, lockPath, options, fh, segName: last.name, segSize: head.tailSize,
        segmentCount: segments.length, totalBytes, seq: head.lastSeq, head: head.headHash, recovery: head.recovery,
      });
    } catch (err) {
      await releaseLock(lockPath);
      throw err;
    }
  }

  /** Streams records in seq order. Works on a spool that is open elsewhere (a torn or in-progress last line is not returned). */
  static read(dir: string, opts: ReadOptions = {}): AsyncGenerator<LedgerRecord> {
    return readRecords(dir, opts);
  }

  get lastSeq(): number {
    return this.seq;
  }

  get headHash(): string {
    return this.head;
  }

  stats(): SpoolStats {
    return {
      segments: this.segmentCount,
      bytes: this.totalBytes,
      lastSeq: this.seq,
      ...this.counters,
      pending: this.queued,
    };
  }

  /** Appends events in order; resolves with their records once they are on disk and synced. */
  append(events: readonly WardenEvent[]): Promise<LedgerRecord[]> {
    if (this.closing) return Promise.reject(new SpoolClosedError(this.dir));
    if (this.failure) return Promise.reject(new SpoolFailedError(this.dir, this.failure));
    let json: Buffer;
    let ends: Uint32Array;
    try {
      ({ json, ends } = this.encodeEvents(events));
    } catch (err) {
      return Promise.reject(err);
    }
    if (ends.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.queue.push({ events: events.slice(), json, ends, resolve, reject });
      this.queued += ends.length;
      this.schedule();
    });
  }

  /**
   * Canonical JSON of each event, as bytes in one buffer per append (no string per event: the
   * pieces, the joined text and the line around it were a quarter of the sidecar's allocations).
   * A bad event fails the whole call and names its index.
   */
  private encodeEvents(events: readonly WardenEvent[]): { json: Buffer; ends: Uint32Array } {
    const w = this.encoder;
    w.clear();
    const ends = new Uint32Array(events.length);
    for (let i = 0; i < events.length; i++) {
      const event = events[i];
      const problem = eventShapeProblem(event);
      if (problem) throw new InvalidEventError(i, `the event ${problem}`);
      try {
        w.write(event);
      } catch (err) {
        if (err instanceof NotJsonError || err instanceof RangeError) throw new InvalidEventError(i, err.message);
        throw err;
      }
      ends[i] = w.length;
    }
    const json = Buffer.allocUnsafe(w.length);
    w.buf.copy(json, 0, 0, w.length);
    return { json, ends };
  }

  /** Commits what is pending, then closes. Appends after this reject with SpoolClosedError. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.cancelTimer();
    if (!this.flushing && this.queue.length > 0) this.startFlush();
    while (this.flushing) await this.flushing;
    try {
      await this.fh.close();
    } finally {
      await releaseLock(this.lockPath);
    }
  }

  private schedule(): void {
    if (this.flushing) return; // the commit in flight takes what accumulated when it finishes
    if (this.queued >= this.maxBatch) {
      this.cancelTimer();
      this.startFlush();
      return;
    }
    if (this.timer) return;
    const fire = () => {
      this.timer = null;
      if (!this.flushing && this.queue.length > 0) this.startFlush();
    };
    if (this.groupCommitMs > 0) {
      const t = setTimeout(fire, this.groupCommitMs);
      this.timer = { cancel: () => clearTimeout(t) };
    } else {
      const t = setImmediate(fire);
      this.timer = { cancel: () => clearImmediate(t) };
    }
  }

  private cancelTimer(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  /** Only called with appends queued, so flushLoop always awaits before its finally runs. */
  private startFlush(): void {
    this.flushing = this.flushLoop();
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.takeBatch();
        try {
          await this.commit(batch);
        } catch (err) {
          // commit handles I/O errors itself; anything else is a bug, but callers must still hear of it.
          for (const call of batch) call.reject(err instanceof Error ? err : new Error(String(err)));
        }
      }
    } finally {
      // Same tick as the last queue check: an append cannot slip in between and be left unscheduled.
      this.flushing = null;
    }
  }

  /** Whole appends, oldest first, up to maxBatch records (at least one append). */
  private takeBatch(): PendingAppend[] {
    let n = 0;
    let count = 0;
    while (count < this.queue.length && (count === 0 || n + this.queue[count].ends.length <= this.maxBatch)) {
      n += this.queue[count].ends.length;
      count++;
    }
    this.queued -= n;
    return this.queue.splice(0, count);
  }

  private async commit(batch: PendingAppend[]): Promise<void> {
    if (this.failure) {
      for (const call of batch) call.reject(new SpoolFailedError(this.dir, this.failure));
      return;
    }
    // Chain from the committed head; nothing here is visible until the sync succeeds.
    let seq = this.seq;
    let prev = this.head;
    const results: LedgerRecord[][] = [];
    // Lines are written into one buffer this spool reuses: commits run one at a time, and each has
    // written and synced it before the next begins. Emptied without clear(): a full batch's lines
    // (up to maxBatch records) pass clear()'s size bound, and would be reallocated every commit.
    const out = this.lines;
    out.length = 0;
    for (const call of batch) {
      const n = call.ends.length;
      const records: LedgerRecord[] = new Array(n);
      let start = 0;
      for (let i = 0; i < n; i++) {
        seq++;
        const json = call.json.subarray(start, call.ends[i]);
        start = call.ends[i];
        const hash = writeRecordLine(out, prev, seq, json);
        records[i] = { seq, prev, hash, event: call.events[i] };
        prev = hash;
      }
      results.push(records);
    }
    const buf = out.buf.subarray(0, out.length);
    const count = seq - this.seq;

    if (this.segSize > 0 && this.segSize + buf.length > this.segmentBytes) {
      try {
        await this.rotate(this.seq + 1);
      } catch (err) {
        for (const call of batch) call.reject(new SpoolWriteError(segmentName(this.seq + 1), count, err));
        return;
      }
    }
    const offset = this.segSize;
    try {
      await writeAll(this.fh, buf, offset);
      if (this.fsync) {
        this.counters.syncs++;
        await this.fh.datasync();
      }
    } catch (err) {
      await this.rollback(offset);
      for (const call of batch) call.reject(new SpoolWriteError(this.segName, count, err));
      return;
    }
    this.segSize += buf.length;
    this.totalBytes += buf.length;
    this.seq = seq;
    this.head = prev;
    this.counters.flushes++;
    this.counters.records += count;
    for (let i = 0; i < batch.length; i++) batch[i].resolve(results[i]);
  }

  /** Cuts a failed batch off the segment. If even that fails, the tail is unknown: stop appending. */
  private async rollback(offset: number): Promise<void> {
    try {
      await this.fh.truncate(offset);
      if (this.fsync) await this.fh.datasync();
    } catch (err) {
      this.failure = err;
    }
  }

  /** Starts segment `firstSeq`. The old one is complete and synced; the new entry is made durable first. */
  private async rotate(firstSeq: number): Promise<void> {
    const fh = await createSegment(this.ledgerDir, firstSeq);
    const old = this.fh;
    this.fh = fh;
    this.segName = segmentName(firstSeq);
    this.segSize = 0;
    this.segmentCount++;
    await old.close().catch(() => undefined);
  }
}

function checkOptions(opts: SpoolOptions): Required<Omit<SpoolOptions, 'dir'>> {
  const o = {
    segmentBytes: opts.segmentBytes ?? DEFAULTS.segmentBytes,
    groupCommitMs: opts.groupCommitMs ?? DEFAULTS.groupCommitMs,
    maxBatch: opts.maxBatch ?? DEFAULTS.maxBatch,
    fsync: opts.fsync ?? DEFAULTS.fsync,
  };
  if (typeof opts.dir !== 'string' || opts.dir === '') throw new TypeError('Spool.open: dir is required');
  if (!(Number.isSafeInteger(o.segmentBytes) && o.segmentBytes > 0)) throw new RangeError('Spool.open: segmentBytes must be a positive integer');
  if (!(Number.isFinite(o.groupCommitMs) && o.groupCommitMs >= 0)) throw new RangeError('Spool.open: groupCommitMs must be >= 0');
  if (!(Number.isSafeInteger(o.maxBatch) && o.maxBatch > 0)) throw new RangeError('Spool.open: maxBatch must be a positive integer');
  return o;
}

/** Creates a segment file and makes its directory entry durable before anything is acknowledged in it. */
async function createSegment(ledgerDir: string, firstSeq: number): Promise<fs.FileHandle> {
  const file = path.join(ledgerDir, segmentName(firstSeq));
  const fh = await fs.open(file, 'wx', PRIVATE_FILE_MODE);
  try {
    await syncDir(ledgerDir);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await fs.rm(file, { force: true }).catch(() => undefined);
    throw err;
  }
  return fh;
}

