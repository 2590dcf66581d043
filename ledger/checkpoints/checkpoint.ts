/**
 * Signed checkpoints (RFC 6962 "signed tree heads") of the whole ledger, and the Checkpointer that
 * writes them while the agent appends.
 *
 * A checkpoint says: "the first `size` records of this ledger have Merkle root `root`", signed with
 * Ed25519 over `warden-checkpoint-v1\n<size>\n<root>\n<ts>\n`. A spool rewritten after the fact, even
 * with its hash chain recomputed, no longer reproduces the roots of checkpoints kept elsewhere
 * (`<dataDir>/checkpoints.jsonl` here; ClickHouse and NATS through `onCheckpoint`).
 *
 * Files in the data directory:
 * - `checkpoints.jsonl`: one checkpoint per line, appended and fsync'd. A torn last line (a crash
 *   mid-write) was never published and is cut off at the next start.
 * - `checkpoints.state`: the Merkle frontier (O(log n) hashes) at the last checkpoint, replaced
 *   atomically after each checkpoint. On start the frontier is restored from it and the spool records
 *   after it are read back, so the next root covers the whole log. Without it (or when it does not fit
 *   the checkpoints) the frontier is rebuilt from the spool.
 */
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError, CheckpointMismatchError } from './errors.js';
import { LeafTail } from './leaves.js';
import { keyIdOf } from './keys.js';
import { MerkleFrontier, leafHash } from './merkle.js';
import { serializeRecord, type LedgerRecord } from '../spool/record.js';
import { PRIVATE_FILE_MODE, replaceFile, writeAll } from '../../core/files.js';

export const CHECKPOINTS_FILE = 'checkpoints.jsonl';
export const CHECKPOINT_STATE_FILE = 'checkpoints.state';
export const CHECKPOINT_CONTEXT = 'warden-checkpoint-v1';

export interface Checkpoint {
  version: 1;
  /** Records covered: seq 1..size (leaf i is seq i + 1). */
  size: number;
  /** RFC 6962 Merkle root of those records, hex. */
  root: string;
  /** When it was signed, epoch ms. */
  ts: number;
  /** The last seq covered (= size: the tree is over the whole log). */
  last_seq: number;
  /** sha256 of the signing public key (SPKI DER), hex, first 16 digits. */
  key_id: string;
  /** Ed25519 signature over checkpointMessage(size, root, ts), base64. */
  sig: string;
}

/** The signed bytes: `warden-checkpoint-v1\n<size>\n<root>\n<ts>\n`. */
export function checkpointMessage(size: number, root: string, ts: number): Buffer {
  return Buffer.from(`${CHECKPOINT_CONTEXT}\n${size}\n${root}\n${ts}\n`, 'utf8');
}

export function signCheckpoint(key: { privateKey: KeyObject; keyId: string }, size: number, root: Buffer | string, ts: number): Checkpoint {
  const rootHex = typeof root === 'string' ? root : root.toString('hex');
  const sig = crypto.sign(null, checkpointMessage(size, rootHex, ts), key.privateKey).toString('base64');
  return { version: 1, size, root: rootHex, ts, last_seq: size, key_id: key.keyId, sig };
}

/** null when the signature is good; otherwise what is wrong with it. */
export function checkpointSignatureProblem(cp: Checkpoint, publicKey: KeyObject): string | null {
  const id = keyIdOf(publicKey);
  if (cp.key_id !== id) return `it is signed by key ${cp.key_id}, not by the given public key (${id})`;
  let ok = false;
  try {
    ok = crypto.verify(null, checkpointMessage(cp.size, cp.root, cp.ts), publicKey, Buffer.from(cp.sig, 'base64'));
  } catch {
    ok = false;
  }
  return ok ? null : `its signature does not verify with key ${id}: the checkpoint was forged or altered`;
}

const HEX64 = /^[0-9a-f]{64}$/;
const KEY_ID = /^[0-9a-f]{16}$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** What is wrong with the shape of a checkpoint, or null. */
export function checkpointShapeProblem(v: unknown): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'is not a JSON object';
  const c = v as Record<string, unknown>;
  if (c.version !== 1) return `has version ${JSON.stringify(c.version)}; this Warden reads version 1`;
  if (!(Number.isSafeInteger(c.size) && (c.size as number) >= 0)) return 'has no valid size';
  if (typeof c.root !== 'string' || !HEX64.test(c.root)) return 'has no valid root (64 hex digits)';
  if (!(Number.isSafeInteger(c.ts) && (c.ts as number) > 0)) return 'has no valid ts';
  if (c.last_seq !== c.size) return `has last_seq ${JSON.stringify(c.last_seq)} but size ${c.size as number} (they must be equal)`;
  if (typeof c.key_id !== 'string' || !KEY_ID.test(c.key_id)) return 'has no valid key_id (16 hex digits)';
  if (typeof c.sig !== 'string' || !BASE64.test(c.sig)) return 'has no valid sig (base64)';
  return null;
}

export function parseCheckpoint(text: string): Checkpoint {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(`not JSON (${(err as Error).message})`);
  }
  const problem = checkpointShapeProblem(v);
  if (problem) throw new CheckpointError(`the checkpoint ${problem}`);
  const c = v as Checkpoint;
  return { version: 1, size: c.size, root: c.root, ts: c.ts, last_seq: c.last_seq, key_id: c.key_id, sig: c.sig };
}

export interface CheckpointLine {
  /** 1-based line number in the file. */
  line: number;
  text: string;
  checkpoint: Checkpoint | null;
  /** Why the line is not a checkpoint (checkpoint is then null). */
  error: string | null;
}

export interface CheckpointFile {
  file: string;
  exists: boolean;
  lines: CheckpointLine[];
  /** Bytes after the last newline: a write cut off by a crash (or in progress). Not a checkpoint. */
  tornBytes: number;
  /** Length of the file up to and including its last newline. */
  goodBytes: number;
}

export function checkpointsPath(dir: string): string {
  return path.join(path.resolve(dir), CHECKPOINTS_FILE);
}

export async function readCheckpointFile(file: string): Promise<CheckpointFile> {
  let buf: Buffer;
  try {
    buf = await fs.readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { file, exists: false, lines: [], tornBytes: 0, goodBytes: 0 };
    throw err;
  }
  const goodBytes = buf.lastIndexOf(10) + 1;
  const texts = buf.toString('utf8', 0, goodBytes).split('\n').slice(0, -1);
  const lines = texts.map((text, i): CheckpointLine => {
    try {
      return { line: i + 1, text, checkpoint: parseCheckpoint(text), error: null };
    } catch (err) {
      return { line: i + 1, text, checkpoint: null, error: (err as Error).message };
    }
  });
  return { file, exists: true, lines, tornBytes: buf.length - goodBytes, goodBytes };
}

/** The Merkle leaf of a record: its canonical line without the newline. */
export function recordLeaf(r: LedgerRecord): Buffer {
  const line = serializeRecord(r);
  return leafHash(line.slice(0, -1));
}

export interface CheckpointerOptions {
  /** The data directory: the spool is `<dir>/ledger/`, checkpoints go to `<dir>/checkpoints.jsonl`. */
  dir: string;
  key: { privateKey: KeyObject; keyId: string };
  /** A checkpoint once this many records arrived since the last one (default 1000). */
  every?: number;
  /** ... or this often while there are records since the last one (default 10000 ms). */
  intervalMs?: number;
  /**
   * A count-triggered checkpoint comes at least this long after the one before (default 0): at a high
   * record rate the cadence is set by time, not by count (each checkpoint costs a signature, two fsyncs
   * and a file replace), and at a low rate by count as before.
   */
  minGapMs?: number;
  /** false skips fsync: tests and benchmarks only. */
  fsync?: boolean;
  /** The clock for `ts` (default Date.now). */
  now?: () => number;
  /** A checkpoint that could not be written (retried at the next trigger), or a listener that threw. */
  onError?: (err: Error, where: string) => void;
}

export interface CheckpointerOpenOptions extends CheckpointerOptions {
  /** The spool's last seq at open: records up to it are read back so the frontier covers them. */
  lastSeq: number;
}

export interface CheckpointerStats {
  /** Records in the tree. */
  size: number;
  /** Checkpoints written since open. */
  written: number;
  /** Records after the saved frontier that open read back from the spool (0 after a clean stop). */
  readAtOpen: number;
  last: Checkpoint | null;
}

export type CheckpointListener = (cp: Checkpoint) => void | Promise<void>;

interface SavedState {
  version: 1;
  key_id: string;
  root: string;
  frontier: { size: number; nodes: string[] };
}

export class Checkpointer {
  private readonly file: string;
  private readonly stateFile: string;
  private readonly every: number;
  private readonly fsync: boolean;
  private readonly now: () => number;
  private readonly onError: (err: Error, where: string) => void;
  private readonly listeners: CheckpointListener[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** A count-triggered checkpoint waiting out minGapMs. */
  private gapTimer: NodeJS.Timeout | null = null;
  private lastWriteAt = 0;
  private readonly minGap: number;
  private chain: Promise<unknown> = Promise.resolve();
  private queued = false;
  private closed = false;
  /** The highest seq add() has been told of: the spool holds every record up to it. */
  private highest: number;
  private lastSize: number;
  private readonly counters = { written: 0, readAtOpen: 0 };

  private constructor(
    private readonly opts: CheckpointerOptions,
    private readonly tree: MerkleFrontier,
    private readonly tail: LeafTail,
    private fh: fs.FileHandle,
    private fileSize: number,
    private lastCp: Checkpoint | null,
    readAtOpen: number,
  ) {
    this.file = checkpointsPath(opts.dir);
    this.stateFile = path.join(path.resolve(opts.dir), CHECKPOINT_STATE_FILE);
    this.every = opts.every ?? 1000;
    this.minGap = opts.minGapMs ?? 0;
    this.fsync = opts.fsync ?? true;
    this.now = opts.now ?? Date.now;
    this.onError = opts.onError ?? (() => undefined);
    this.highest = tree.size;
    this.lastSize = lastCp?.size ?? 0;
    this.counters.readAtOpen = readAtOpen;
    const interval = opts.intervalMs ?? 10_000;
    this.timer = setInterval(() => {
      if (this.tree.size > this.lastSize || this.highest > this.tree.size) this.schedule();
    }, interval);
    this.timer.unref();
  }

  /**
   * Restores the frontier of the last checkpoint and reads the spool's records after it (up to
   * `lastSeq`). Throws CheckpointMismatchError when the spool does not reproduce the last checkpoint.
   */
  static async open(opts: CheckpointerOpenOptions): Promise<Checkpointer> {
    if (!(Number.isSafeInteger(opts.every ?? 1) && (opts.every ?? 1) > 0)) throw new RangeError('Checkpointer: every must be a positive integer');
    if (!(Number.isFinite(opts.intervalMs ?? 1) && (opts.intervalMs ?? 1) > 0)) throw new RangeError('Checkpointer: intervalMs must be > 0');
    if (!(Number.isFinite(opts.minGapMs ?? 0) && (opts.minGapMs ?? 0) >= 0)) throw new RangeError('Checkpointer: minGapMs must be >= 0');
    const dir = path.resolve(opts.dir);
    const file = checkpointsPath(dir);
    const read = await readCheckpointFile(file);
    if (read.tornBytes > 0) await fs.truncate(file, read.goodBytes); // never published: see the file comment
    const lastLine = read.lines[read.lines.length - 1];
    if (lastLine && !lastLine.checkpoint) {
      throw new CheckpointError(`${file} line ${lastLine.line} is not a checkpoint (${lastLine.error}); run \`warden ledger verify\``, { code: 'WARDEN_TAMPERED' });
    }
    const last = lastLine?.checkpoint ?? null;
    if (last && last.size > opts.lastSeq) {
      throw new CheckpointMismatchError(
        `the ledger has ${opts.lastSeq} records but the last signed checkpoint (${file} line ${lastLine.line}) covers ${last.size}: ` +
        `records ${opts.lastSeq + 1}..${last.size} are gone (truncated, or restored from an older backup). Run \`warden ledger verify\`; ` +
        `the agent will not sign checkpoints over a ledger that lost signed records.`,
      );
    }

    const tree = (await restoreFrontier(path.join(dir, CHECKPOINT_STATE_FILE), last, opts.lastSeq)) ?? new MerkleFrontier();
    const from = tree.size;
    const check = (size: number) => {
      if (last && size === last.size && tree.root().toString('hex') !== last.root) {
        throw new CheckpointMismatchError(
          `the ledger's first ${last.size} records no longer have the Merkle root signed in ${file} line ${lastLine.line}: ` +
          `the spool was changed after it was checkpointed. Run \`warden ledger verify\` to find where; the agent will not sign checkpoints over it.`,
        );
      }
    };
    check(tree.size);
    const tail = new LeafTail(dir, tree.size + 1);
    for await (const leaf of tail.read(opts.lastSeq)) {
      tree.append(leafHash(leaf.bytes));
      check(tree.size);
    }
    if (tree.size !== opts.lastSeq) throw new CheckpointError(`read ${tree.size} records back from the spool, expected ${opts.lastSeq}`);
    const fh = await fs.open(file, 'a', PRIVATE_FILE_MODE);
    try {
      await fh.chmod(PRIVATE_FILE_MODE);
      return new Checkpointer(opts, tree, tail, fh, read.goodBytes, last, tree.size - from);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /** Registers a listener for every checkpoint written (after it is durable). Returns an unsubscribe. */
  onCheckpoint(fn: CheckpointListener): () => void {
    this.listeners.push(fn);
    return () => {
      const i = this.listeners.indexOf(fn);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /**
   * Records that are durable in the spool (what Spool.append resolved with). Cheap and never throws:
   * it only notes how far the spool is durable. The leaves are hashed from the spool's own bytes
   * when the next checkpoint is made (read from where the last read stopped), so every record up to
   * the highest seq seen is covered, including records that reached the spool some other way.
   */
  add(records: readonly LedgerRecord[]): void {
    if (this.closed) return;
    for (const r of records) if (r.seq > this.highest) this.highest = r.seq;
    if (this.highest - this.lastSize < this.every) return;
    const wait = this.lastWriteAt + this.minGap - performance.now();
    if (wait <= 0) this.schedule();
    else if (!this.gapTimer) {
      this.gapTimer = setTimeout(() => { this.gapTimer = null; if (!this.closed) this.schedule(); }, wait);
      this.gapTimer.unref();
    }
  }

  /** Writes a checkpoint now if there are records since the last one; resolves with it (or null). */
  checkpoint(): Promise<Checkpoint | null> {
    const p = this.chain.then(() => this.write());
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Resolves when no checkpoint is being written or waiting to be. */
  async idle(): Promise<void> {
    for (let c = this.chain; ; c = this.chain) {
      await c;
      if (c === this.chain) return;
    }
  }

  get size(): number {
    return this.tree.size;
  }

  get last(): Checkpoint | null {
    return this.lastCp;
  }

  stats(): CheckpointerStats {
    return { size: this.tree.size, ...this.counters, last: this.lastCp };
  }

  /** Stops the timer and writes a final checkpoint covering everything up to `lastSeq` (if given). */
  async close(opts: { lastSeq?: number } = {}): Promise<Checkpoint | null> {
    if (this.closed) {
      await this.idle();
      return this.lastCp;
    }
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.gapTimer) clearTimeout(this.gapTimer);
    this.gapTimer = null;
    if (opts.lastSeq !== undefined && opts.lastSeq > this.highest) this.highest = opts.lastSeq;
    try {
      await this.checkpoint();
    } catch (err) {
      this.onError(err as Error, 'final checkpoint');
    }
    await this.idle();
    await this.fh.close();
    return this.lastCp;
  }

  private schedule(): void {
    if (this.queued) return;
    this.queued = true;
    this.chain = this.chain.then(() => {
      this.queued = false;
      return this.write();
    }).catch((err: Error) => this.onError(err, 'checkpoint'));
  }

  private async write(): Promise<Checkpoint | null> {
    if (this.highest > this.tree.size) {
      for await (const leaf of this.tail.read(this.highest)) this.tree.append(leafHash(leaf.bytes));
    }
    const size = this.tree.size;
    if (size === 0 || size === this.lastSize) return null;
    const root = this.tree.root().toString('hex');
    const state: SavedState = { version: 1, key_id: this.opts.key.keyId, root, frontier: this.tree.toJSON() };
    const cp = signCheckpoint(this.opts.key, size, root, this.now());
    const buf = Buffer.from(`${JSON.stringify(cp)}\n`, 'utf8');
    try {
      await writeAll(this.fh, buf, this.fileSize);
      if (this.fsync) await this.fh.datasync();
    } catch (err) {
      await this.fh.truncate(this.fileSize).catch(() => undefined);
      throw new CheckpointError(`writing a checkpoint to ${this.file} failed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); retrying at the next trigger`);
    }
    this.fileSize += buf.length;
    this.lastWriteAt = performance.now();
    this.lastSize = size;
    this.lastCp = cp;
    this.counters.written++;
    // The state is only a shortcut for the next start: if writing it fails, the start rebuilds from the spool.
    await this.saveState(state).catch((err) => this.onError(err as Error, 'checkpoint state'));
    for (const fn of this.listeners.slice()) {
      try {
        const r = fn(cp);
        if (r && typeof (r as Promise<void>).then === 'function') (r as Promise<void>).catch((err) => this.onError(err as Error, 'checkpoint listener'));
      } catch (err) {
        this.onError(err as Error, 'checkpoint listener');
      }
    }
    return cp;
  }

  private async saveState(state: SavedState): Promise<void> {
    await replaceFile(this.stateFile, `${JSON.stringify(state)}\n`, { fsync: this.fsync });
  }
}

/** The saved frontier, when it is usable: for this log, no larger than the spool or the last checkpoint. */
async function restoreFrontier(file: string, last: Checkpoint | null, lastSeq: number): Promise<MerkleFrontier | null> {
  let state: SavedState;
  try {
    state = JSON.parse(await fs.readFile(file, 'utf8')) as SavedState;
  } catch {
    return null;
  }
  let tree: MerkleFrontier;
  try {
    tree = MerkleFrontier.fromJSON(state.frontier);
  } catch {
    return null;
  }
  if (tree.size > lastSeq) return null;
  if (last && tree.size > last.size) return null; // state ahead of the checkpoints: not ours to trust
  if (!last && tree.size > 0) return null;
  if (tree.root().toString('hex') !== state.root) return null;
  return tree;
}

