/**
 * Where each queue's stream reading stands, kept so a restart (clean or `kill -9`) neither loses nor
 * duplicates ledger records. The spool is the source of truth: every stream-derived event carries its
 * `attrs.stream_id`. The positions file is only a shortcut (positions + the spool seq they cover);
 * on start it is rolled forward over the spool records written after it.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { replaceFile } from '../core/files.js';
import { WakeableSleep } from '../core/wakeable-sleep.js';
import type { WardenEvent } from '../core/event.js';
import { compareStreamIds } from '../collectors/bullmq/keys.js';
import type { LedgerRecord } from '../ledger/spool/record.js';
import { JobStateIndex } from './job-states.js';

interface PositionsFile { version: 1; seq: number; positions: Record<string, string> }

/** How far back (in records) the terminal and job-state indexes look when rebuilt on start. */
const TERMINAL_LOOKBACK = 200_000;

/** Terminal records already durable, so gap reconciliation does not write a job's outcome twice. */
export class TerminalIndex {
  // Per queue, so the queue name is not repeated in every key; BullMQ's usual integer job IDs are
  // kept as numbers (no string per entry). 500k jobs then cost a few MiB of heap, not ~100 MiB.
  private readonly queues = new Map<string, { name: string; ids: Set<number | string> }>();
  /** Insertion order across queues, for evicting the oldest: [queue, id] pairs in a ring. */
  private readonly order: (number | string)[] = [];
  private readonly orderQueue: string[] = [];
  private head = 0;
  private count = 0;

  constructor(private readonly max = 500_000) {}

  has(queue: string, jobId: string): boolean {
    return this.queues.get(queue)?.ids.has(compactId(jobId)) ?? false;
  }

  add(ev: WardenEvent): void {
    if ((ev.kind !== 'job.completed' && ev.kind !== 'job.failed') || !ev.queue || !ev.job_id) return;
    let q = this.queues.get(ev.queue);
    if (!q) this.queues.set(ev.queue, (q = { name: ev.queue, ids: new Set() }));
    const id = compactId(ev.job_id);
    if (q.ids.has(id)) return;
    q.ids.add(id);
    if (this.count === this.max) {
      // Full: the slot at `head` holds the oldest entry; evict it and reuse the slot.
      this.queues.get(this.orderQueue[this.head])?.ids.delete(this.order[this.head]);
      this.order[this.head] = id;
      this.orderQueue[this.head] = q.name; // one shared string per queue, not one per job
      this.head = (this.head + 1) % this.max;
    } else {
      this.order.push(id);
      this.orderQueue.push(q.name);
      this.count++;
    }
  }

  get size(): number {
    return this.count;
  }
}

/** `"12345"` -> 12345 (canonical non-negative integers that fit a small integer); anything else stays a string. */
function compactId(id: string): number | string {
  if (id.length === 0 || id.length > 9 || (id.length > 1 && id[0] === '0')) return id;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c < 48 || c > 57) return id;
  }
  return Number(id);
}

export class PositionStore {
  private readonly file: string;
  private pending: PositionsFile | null = null;
  private writing: Promise<void> | null = null;
  private hurry = false;
  private readonly nap = new WakeableSleep();

  /**
   * `minIntervalMs`: the file is rewritten at most this often (latest wins). It is a shortcut the
   * spool rolls forward at start, so a file a moment behind costs a few records' scan, while a
   * rewrite (write, fsync, rename) per collector batch cost about a tenth of the sidecar's CPU.
   */
  constructor(dataDir: string, private readonly minIntervalMs = 250) {
    this.file = join(dataDir, 'positions.json');
  }

  /** Reads the positions file and rolls it forward over newer spool records. */
  async restore(read: (fromSeq: number) => AsyncIterable<LedgerRecord>): Promise<{ positions: Map<string, string>; terminals: TerminalIndex; jobStates: JobStateIndex; scanned: number }> {
    const saved = await this.load();
    const positions = new Map(Object.entries(saved.positions));
    const terminals = new TerminalIndex();
    const jobStates = new JobStateIndex();
    let scanned = 0;
    for await (const rec of read(Math.max(1, saved.seq - TERMINAL_LOOKBACK))) {
      scanned++;
      terminals.add(rec.event);
      jobStates.add(rec.event);
      if (rec.seq <= saved.seq) continue;
      const ev = rec.event;
      const pos = typeof ev.attrs.stream_id === 'string' ? ev.attrs.stream_id : ev.kind === 'collector.gap' ? ev.attrs.gap_to : null;
      if (ev.queue && typeof pos === 'string' && pos.includes('-')) {
        const cur = positions.get(ev.queue);
        if (!cur || compareStreamIds(pos, cur) > 0) positions.set(ev.queue, pos);
      }
    }
    return { positions, terminals, jobStates, scanned };
  }

  /** Records positions that are durable up to `seq`; written in the background, latest wins. */
  update(positions: Map<string, string>, seq: number): void {
    this.pending = { version: 1, seq, positions: Object.fromEntries(positions) };
    if (!this.writing) this.writing = this.drain();
  }

  /** Writes what is pending now (no waiting out the interval). */
  async flush(): Promise<void> {
    this.hurry = true;
    this.nap.wake();
    try {
      while (this.writing) await this.writing;
    } finally {
      this.hurry = false;
    }
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending) {
        const next = this.pending;
        this.pending = null;
        await this.write(next);
        if (this.pending && !this.hurry) await this.nap.sleep(this.minIntervalMs);
      }
    } finally {
      this.writing = null;
    }
  }


  // Write-then-rename: a crash leaves either the old file or the new one, never half of one.
  private async write(data: PositionsFile): Promise<void> {
    await replaceFile(this.file, JSON.stringify(data));
  }

  private async load(): Promise<PositionsFile> {
    try {
      const data = JSON.parse(await readFile(this.file, 'utf8')) as PositionsFile;
      if (data.version === 1 && typeof data.seq === 'number' && data.positions) return data;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        // An unreadable shortcut is not fatal: the spool itself holds every position.
        return { version: 1, seq: 0, positions: {} };
      }
    }
    return { version: 1, seq: 0, positions: {} };
  }
}
