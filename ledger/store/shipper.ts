/**
 * Ships the spool into the store (ClickHouse), in batches by size and by time, exactly once.
 *
 * Exactly once, not "at least once and dedupe on read": `shipper.json` holds the last seq known to be
 * in the store. Whenever that could be stale (on start, and after any failed insert, where the insert
 * may or may not have landed, even partly) the shipper asks the store which seqs after it are already
 * there and inserts only the others. So a record is inserted again only if the store lost it.
 *
 * The backlog lives on disk in the spool, never in memory: a store outage costs disk, not RAM.
 */
import { readFile, stat } from 'node:fs/promises';
import { replaceFile } from '../../core/files.js';
import { WakeableSleep } from '../../core/wakeable-sleep.js';
import path from 'node:path';
import type { LedgerRecord } from '../spool/record.js';
import { SpoolTail } from '../spool/tail.js';
import { checkpointsPath, readCheckpointFile, type Checkpoint } from '../checkpoints/checkpoint.js';
import { CHECKPOINTS_TABLE } from './schema.js';
import { dateTimeText, LEDGER_TABLE } from './rows.js';
import { insertJsonEachRow, sqlNumber, sqlString } from './sql.js';
import { checkLedgerId, LEDGER_ID_COLUMN, LEGACY_LEDGER_ID } from './ledger-id.js';
import type { LedgerStore } from './store.js';

/** What the shipper needs from a store. */
export interface ShipTarget {
  insert(records: LedgerRecord[]): Promise<void>;
  /** Optional two-phase insert: what insert() would send, and sending it (the shipper prepares the next batch during an insert). */
  encode?(records: LedgerRecord[]): string;
  insertEncoded?(text: string): Promise<void>;
  /** Optional: builds what insert() would send from the spool lines' bytes, without parsing them (fast-rows.ts); sent with insertEncoded. */
  lineEncoder?(): LineEncoder;
  /** Signed checkpoints, copied beside the records they cover (the store's own copy; the file stays). */
  insertCheckpoints(checkpoints: Checkpoint[]): Promise<void>;
  /** Size of the largest checkpoint the store holds (0 for none). */
  maxCheckpointSize(): Promise<number>;
  /** Distinct seqs the store holds in (after, upTo]: their count and max. */
  present(after: number, upTo?: number): Promise<{ count: number; max: number }>;
  /** The distinct seqs the store holds in (after, upTo], ascending. */
  list(after: number, upTo: number): Promise<number[]>;
}

export interface ShipperOptions {
  dataDir: string;
  target: ShipTarget;
  /** Newest durable seq in the spool (only acknowledged records are shipped). */
  lastSeq: () => number;
  batchRecords?: number;
  /** Idle poll interval, and the least time between two inserts of partial batches (a full batch goes at once). */
  flushIntervalMs?: number;
  /** Backoff after a failed insert, doubling up to the max. */
  retryMinMs?: number;
  retryMaxMs?: number;
  onShipped?: (records: number, committed: number) => void;
  /** Every seq up to `committed` is in the store (after shipping, or learned from the store on a resync). */
  onCommitted?: (committed: number) => void;
  /** Run before talking to the store after a start or a failure (e.g. schema migrations). */
  prepare?: () => Promise<void>;
  onError?: (err: Error) => void;
}

export interface ShipperStatus {
  committed: number;
  backlog: number;
  /** Set while the store is failing: since when, and the last error. */
  failing: { since: number; error: string } | null;
}

interface ShipperFile { version: 1; committed: number }

/** Takes spool lines as bytes, in order, and gives the insert statement for them. */
export interface LineEncoder {
  add(buf: Buffer, start: number, end: number, segment: string): void;
  text(): string;
}

/**
 * Records read from the spool: how many and the last seq; the records themselves when they were
 * parsed (null when only their insert statement was built from their bytes); the insert statement
 * when the target encodes ahead.
 */
interface Batch { count: number; lastSeq: number; records: LedgerRecord[] | null; text: string | null }

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Shipper {
  private committed = 0;
  private tail!: SpoolTail;
  /** Seqs already in the store beyond `committed` (found after a failure): not inserted again. */
  private already = new Set<number>();
  private uncertain = true;
  private running = false;
  private loop: Promise<void> | null = null;
  private failing: ShipperStatus['failing'] = null;
  private readonly nap = new WakeableSleep();
  /** Checkpoints with size up to this are in the store. */
  private checkpointsShipped = 0;
  private checkpointFileSize = -1;
  /** The next batch, read from the spool (and encoded) while the store was inserting the one before. */
  private ahead: Promise<Batch> | null = null;
  private saving: Promise<void> = Promise.resolve();
  private saveQueued = false;
  private readonly file: string;
  private readonly batch: number;
  private readonly interval: number;

  constructor(private readonly o: ShipperOptions) {
    this.file = path.join(o.dataDir, 'shipper.json');
    this.batch = o.batchRecords ?? 5000;
    this.interval = o.flushIntervalMs ?? 1000;
  }

  status(): ShipperStatus {
    return { committed: this.committed, backlog: Math.max(0, this.o.lastSeq() - this.committed), failing: this.failing };
  }

  async start(): Promise<void> {
    this.committed = await this.load();
    this.tail = SpoolTail.at(this.o.dataDir, this.committed + 1);
    this.running = true;
    this.loop = this.run();
  }

  /** New records were appended: ship now rather than at the next poll. */
  poke(): void {
    this.nap.wake();
  }

  /** Ships what is durable now (when the store is up), then stops. */
  async stop(opts: { drainMs?: number } = {}): Promise<void> {
    const deadline = Date.now() + (opts.drainMs ?? 0);
    while (this.running && Date.now() < deadline && this.status().backlog > 0 && !this.failing) await sleep(20);
    this.running = false;
    this.nap.wake();
    await this.loop;
    // A last pass for what arrived while stopping (e.g. the final checkpoint written at shutdown).
    if (!this.failing && !this.uncertain) {
      try {
        while ((await this.shipOnce()) > 0 && Date.now() < deadline);
        await this.shipCheckpoints();
      } catch (err) {
        this.o.onError?.(err as Error);
      }
    }
    await this.saving;
  }

  private async run(): Promise<void> {
    let backoff = this.o.retryMinMs ?? 250;
    while (this.running) {
      try {
        if (this.uncertain) await this.resync();
        const shipped = await this.shipOnce();
        if (this.failing) this.failing = null;
        backoff = this.o.retryMinMs ?? 250;
        // A full batch means a backlog: go on at once. A partial one (steady traffic trickling in)
        // waits for the interval, so the store sees at most one insert per interval: each insert is
        // a ClickHouse part, and parts made faster than merges can fold them get inserts delayed,
        // then refused ("too many parts").
        if (shipped < this.batch) await this.nap.sleep(this.interval);
      } catch (err) {
        const e = err as Error;
        this.failing ??= { since: Date.now(), error: e.message };
        this.failing.error = e.message;
        this.uncertain = true; // the insert may have landed, in part or whole
        this.o.onError?.(e);
        await this.nap.sleep(backoff);
        backoff = Math.min(backoff * 2, this.o.retryMaxMs ?? 10_000);
      }
    }
  }

  /**
   * Learns what the store already holds after `committed`: the longest run with no hole (binary
   * search: distinct seqs in (committed, k] = k - committed holds up to the first hole and never after)
   * becomes committed; seqs present beyond the first hole are remembered and not inserted again.
   */
  private async resync(): Promise<void> {
    await this.o.prepare?.();
    const all = await this.o.target.present(this.committed);
    this.already.clear();
    if (all.count > 0) {
      let lo = this.committed;
      let hi = all.max;
      if (all.count !== all.max - this.committed) {
        while (lo < hi) {
          const mid = Math.ceil((lo + hi) / 2);
          const p = await this.o.target.present(this.committed, mid);
          if (p.count === mid - this.committed) lo = mid; else hi = mid - 1;
        }
      } else {
        lo = all.max;
      }
      await this.advance(lo);
      if (lo < all.max) this.already = new Set(await this.o.target.list(lo, all.max));
    }
    // A failed batch was already read from the tail: read again from just after what is confirmed.
    this.tail = SpoolTail.at(this.o.dataDir, this.committed + 1);
    this.ahead = null;
    this.checkpointsShipped = await this.o.target.maxCheckpointSize();
    this.checkpointFileSize = -1;
    this.uncertain = false;
  }

  private async shipOnce(): Promise<number> {
    const ahead = this.ahead;
    this.ahead = null;
    const { count, lastSeq, records, text } = ahead ? await ahead : await this.readBatch(false);
    if (count === 0) {
      await this.shipCheckpoints();
      return 0;
    }
    // A batch read as bytes holds none of `already` (readBatch checks), so all of it is missing.
    const missing = records === null ? null : this.already.size ? records.filter((r) => !this.already.has(r.seq)) : records;
    const missingCount = missing === null ? count : missing.length;
    const t = this.o.target;
    const inserting = missingCount === 0 ? Promise.resolve()
      : text !== null && missingCount === count && t.insertEncoded ? t.insertEncoded(text) : t.insert(missing!);
    // A full batch means more is probably waiting: read, parse and encode it while the store inserts
    // this one (the store parses on its own cores). The tail only moves forward, so a failure just
    // drops it (resync starts a new tail).
    const next = count === this.batch ? this.readBatch(true) : null;
    next?.catch(() => undefined); // its error surfaces where it is awaited (next round), never unhandled
    try {
      await inserting;
    } catch (err) {
      await next?.catch(() => undefined);
      throw err;
    }
    if (records !== null) for (const r of records) this.already.delete(r.seq);
    await this.advance(lastSeq);
    this.ahead = next;
    this.o.onShipped?.(missingCount, this.committed);
    return count;
  }

  /**
   * The next batch from the spool. Built straight from the lines' bytes when the target can (no
   * parse, no row objects) and none of it may already be in the store; else parsed into records,
   * and encoded too when `encode` (a read-ahead) and the target encodes.
   */
  private async readBatch(encode: boolean): Promise<Batch> {
    const t = this.o.target;
    const from = this.tail.next;
    if (t.lineEncoder && t.insertEncoded && !this.alreadyFrom(from)) {
      const enc = t.lineEncoder();
      const count = await this.tail.readLines(this.batch, this.o.lastSeq(), (buf, start, end, segment) => enc.add(buf, start, end, segment));
      return { count, lastSeq: from + count - 1, records: null, text: count > 0 ? enc.text() : null };
    }
    const records = await this.tail.read(this.batch, this.o.lastSeq());
    const text = encode && records.length > 0 && t.encode ? t.encode(records) : null;
    return { count: records.length, lastSeq: from + records.length - 1, records, text };
  }

  /** Whether any seq found in the store after a failure is at or after `seq`. */
  private alreadyFrom(seq: number): boolean {
    for (const s of this.already) if (s >= seq) return true;
    return false;
  }

  /** Checkpoints whose records are all in the store, not shipped yet, in order (sizes only grow). */
  private async shipCheckpoints(): Promise<void> {
    const file = checkpointsPath(this.o.dataDir);
    const size = await stat(file).then((st) => st.size, () => 0);
    if (size === this.checkpointFileSize) return;
    const read = await readCheckpointFile(file);
    const due = read.lines
      .map((l) => l.checkpoint)
      .filter((cp): cp is Checkpoint => cp !== null && cp.size > this.checkpointsShipped && cp.last_seq <= this.committed);
    if (due.length) {
      await this.o.target.insertCheckpoints(due);
      this.checkpointsShipped = due[due.length - 1].size;
    }
    // Checkpoints beyond what is committed wait for their records: look at the file again next time.
    const waiting = read.lines.some((l) => l.checkpoint && l.checkpoint.last_seq > this.committed);
    this.checkpointFileSize = waiting ? -1 : size;
  }

  private async advance(seq: number): Promise<void> {
    if (seq <= this.committed) return;
    this.committed = seq;
    if (this.tail.next <= seq) this.tail = SpoolTail.at(this.o.dataDir, seq + 1);
    this.scheduleSave();
    this.o.onCommitted?.(seq);
  }

  private async load(): Promise<number> {
    try {
      const data = JSON.parse(await readFile(this.file, 'utf8')) as ShipperFile;
      return Number.isSafeInteger(data.committed) && data.committed >= 0 ? data.committed : 0;
    } catch {
      return 0; // first start, or an unreadable file: resync() asks the store
    }
  }

  /**
   * shipper.json is saved behind the shipping, not before the next insert: the file is only where a
   * restart's resync starts asking the store (a stale file costs a question, never a duplicate), and
   * an fsync per batch in line with the inserts cost a few percent of the shipping rate.
   */
  private scheduleSave(): void {
    if (this.saveQueued) return;
    this.saveQueued = true;
    this.saving = this.saving.then(() => {
      this.saveQueued = false;
      return this.save();
    }).catch((err: Error) => this.o.onError?.(err));
  }

  private async save(): Promise<void> {
    await replaceFile(this.file, JSON.stringify({ version: 1, committed: this.committed } satisfies ShipperFile));
  }
}

/**
 * The shipper's view of a ClickHouse store (server or embedded): same SQL on both. Every row it
 * writes and every question it asks is about its own ledger (`ledgerId`, see ledger-id.ts): other
 * sidecars' chains in the same table have their own seq 1, 2, 3...
 */
export function storeTarget(store: LedgerStore, ledgerId: string = LEGACY_LEDGER_ID): ShipTarget {
  const mine = `${LEDGER_ID_COLUMN} = ${sqlString(checkLedgerId(ledgerId))}`;
  // uniqExact, not count(): rows duplicated by some earlier tool must not hide a hole.
  const range = (after: number, upTo?: number) =>
    `${mine} AND seq > ${sqlNumber(after)}${upTo === undefined ? '' : ` AND seq <= ${sqlNumber(upTo)}`}`;
  return {
    insert: (records) => store.insert(records, ledgerId),
    encode: (records) => store.insertText(records, ledgerId),
    insertEncoded: (text) => store.exec(text),
    lineEncoder: () => store.lineEncoder(ledgerId),
    insertCheckpoints: (cps) => store.exec(insertJsonEachRow(CHECKPOINTS_TABLE, [LEDGER_ID_COLUMN, 'size', 'root', 'ts', 'ts_ms', 'last_seq', 'key_id', 'sig'],
      cps.map((cp) => ({ ledger_id: ledgerId, size: cp.size, root: cp.root, ts: dateTimeText(cp.ts), ts_ms: cp.ts, last_seq: cp.last_seq, key_id: cp.key_id, sig: cp.sig })))),
    async maxCheckpointSize() {
      const [row] = await store.query<{ m: string }>(`SELECT max(size) AS m FROM ${CHECKPOINTS_TABLE} WHERE ${mine}`);
      return Number(row?.m ?? 0);
    },
    async present(after, upTo) {
      const [row] = await store.query<{ c: string; m: string }>(`SELECT uniqExact(seq) AS c, max(seq) AS m FROM ${LEDGER_TABLE} WHERE ${range(after, upTo)}`);
      return { count: Number(row?.c ?? 0), max: Number(row?.m ?? 0) };
    },
    async list(after, upTo) {
      const rows = await store.query<{ seq: string }>(`SELECT DISTINCT seq FROM ${LEDGER_TABLE} WHERE ${range(after, upTo)} ORDER BY seq`);
      return rows.map((r) => Number(r.seq));
    },
  };
}
