/**
 * Verifies the ledger as ClickHouse holds it (server or embedded store), against the signed
 * checkpoints kept outside it (`<dataDir>/checkpoints.jsonl`, checked with the public key):
 *
 * 1. every checkpoint line is well formed, signed by a given key, and sizes never shrink (two
 *    checkpoints of one size must sign one root), as verifyCheckpoints checks for the spool;
 * 2. one pass over `warden_ledger` in seq order, in pages (`WHERE seq > last AND seq <= last + n ORDER
 *    BY seq`: the whole table is never held), rebuilds each record from its row (rowToRecord: a column
 *    changed so that the row is no longer the exact encoding of any record is caught there), recomputes
 *    its hash (recordHash over the canonical event) and checks the seq/prev links from genesis;
 * 3. in the same pass, the record's canonical line is a Merkle leaf (exactly the spool's bytes), and the
 *    frontier's root at every checkpointed size must equal the signed root: a store rewritten with every
 *    hash recomputed still reproduces a chain, but not the signed roots.
 *
 * Stops at the first problem and names the first bad seq (for a root mismatch: the seq range after the
 * last matching checkpoint). Shipping is asynchronous, so checkpoints beyond the rows present are
 * "not yet shipped" (a warning), unless `expectComplete` is set, or the shipper's own mark
 * (`<dataDir>/shipper.json`) says those records were stored: then the missing tail is truncation.
 */
import { isoTime } from '../../core/time.js';
import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { canonicalJson } from '../../core/event.js';
import {
  checkpointSignatureProblem, checkpointsPath, parseCheckpoint, readCheckpointFile, type Checkpoint, type CheckpointFile, type CheckpointLine,
} from '../checkpoints/checkpoint.js';
import { keyIdOf } from '../checkpoints/keys.js';
import { MerkleFrontier, leafHash } from '../checkpoints/merkle.js';
import { GENESIS_HASH, encodeRecord, type LedgerRecord } from '../spool/record.js';
import { CorruptRowError } from './errors.js';
import { LEDGER_SELECT, LEDGER_TABLE, rowToRecord } from './rows.js';
import { sqlNumber, sqlString } from './sql.js';
import { checkLedgerId, LEDGER_ID_COLUMN, LEGACY_LEDGER_ID } from './ledger-id.js';
import { CHECKPOINTS_TABLE } from './schema.js';
import type { LedgerStore } from './store.js';

export type StoreProblemKind =
  | 'modified' | 'missing' | 'reordered' | 'inserted' | 'duplicated' | 'unreadable'
  | 'checkpoint-malformed' | 'checkpoint-signature' | 'checkpoint-order' | 'checkpoint-fork'
  | 'mismatch' | 'truncated';

export interface StoreVerifyProblem {
  kind: StoreProblemKind;
  /** The ledger the problem is in (set by verifyStore). */
  ledgerId?: string;
  /** The first bad seq (for mismatch and truncated: the first seq of the range). null for a bad checkpoint line. */
  seq: number | null;
  /** For mismatch and truncated: the seqs where the difference lies (inclusive). */
  fromSeq?: number;
  toSeq?: number;
  /** 1-based line of the checkpoint file, for checkpoint problems. */
  checkpointLine?: number;
  message: string;
}

export interface StoreVerifyResult {
  ok: boolean;
  /** The ledger (chain) checked: rows and checkpoints with this ledger_id (ledger-id.ts). */
  ledgerId: string;
  /** `server <url>` or `embedded <dir>`. */
  store: string;
  /** Rows read from warden_ledger. */
  rows: number;
  /** Records verified good, from seq 1 (up to the problem, if any). */
  records: number;
  lastSeq: number;
  headHash: string;
  checkpoints: {
    file: string;
    /** Checkpoint lines (complete). */
    count: number;
    keyIds: string[];
    /** The largest checkpointed size whose root was recomputed from the rows and matched (0 if none). */
    verifiedSize: number;
    /** Checkpoints whose root was recomputed and matched. */
    matched: number;
    /** The largest checkpoint beyond the rows present, reported as not yet shipped (not tampering). */
    notShipped: Checkpoint | null;
    tornTail: boolean;
  };
  /** `committed` from `<dataDir>/shipper.json`, when present. */
  shipperCommitted: number | null;
  /** Not tampering, but worth saying (rows not yet shipped). */
  warnings: string[];
  problem?: StoreVerifyProblem;
  elapsedMs: number;
}

export interface StoreVerifyOptions {
  /**
   * The ledger to check (its rows and checkpoints); other ledgers in the same table are not read.
   * Default: the legacy ledger (rows stored without a ledger ID).
   */
  ledgerId?: string;
  /**
   * The data directory of the sidecar that writes this ledger: `checkpoints.jsonl` and `shipper.json`
   * are read from it. Without it (another sidecar's ledger), the signed checkpoints the store holds
   * for the ledger (warden_checkpoints) are used: still checked against the given public keys, but a
   * copy kept outside the store (this file, or one published to NATS) is what detects a store whose
   * rows and checkpoints were both removed.
   */
  dataDir?: string;
  /** Keys the checkpoints are signed with. Required when the checkpoint file has lines. */
  publicKeys: readonly KeyObject[];
  /** A checkpoint file other than `<dataDir>/checkpoints.jsonl`. */
  checkpointsFile?: string;
  /** Checkpoints beyond the rows present are truncation, not lag. */
  expectComplete?: boolean;
  /** Seqs per page. Default 10 000. */
  pageSize?: number;
}

/** One seq and every row that claims it (normally one). */
interface Group {
  seq: number;
  rows: Record<string, unknown>[];
}

/** A row read back as a record, with the line (leaf bytes) it stands for, or why it cannot be. */
type Decoded =
  | { ok: true; record: LedgerRecord; selfOk: boolean; line: string; why: string | null }
  | { ok: false; why: string };

function decode(row: Record<string, unknown>): Decoded {
  let record: LedgerRecord;
  try {
    record = rowToRecord(row);
  } catch (err) {
    if (err instanceof CorruptRowError) return { ok: false, why: err.message };
    throw err;
  }
  let eventJson: string;
  try {
    eventJson = canonicalJson(record.event);
  } catch (err) {
    return { ok: false, why: `its event has no canonical form (${(err as Error).message})` };
  }
  const enc = encodeRecord(record.prev, record.seq, eventJson);
  const selfOk = enc.hash === record.hash;
  return { ok: true, record, selfOk, line: enc.line.slice(0, -1), why: selfOk ? null : 'its content does not match its hash' };
}

/** Rows of one ledger in warden_ledger in seq order, grouped by seq, one page at a time, with lookahead. */
class GroupCursor {
  private buffer: Group[] = [];
  private last = 0;
  private done = false;
  rows = 0;
  private readonly mine: string;

  constructor(private readonly store: LedgerStore, private readonly pageSize: number, ledgerId: string) {
    this.mine = `${LEDGER_ID_COLUMN} = ${sqlString(ledgerId)}`;
  }

  async next(): Promise<Group | undefined> {
    if (this.buffer.length === 0) await this.fill();
    return this.buffer.shift();
  }

  async peek(): Promise<Group | undefined> {
    if (this.buffer.length === 0) await this.fill();
    return this.buffer[0];
  }

  /** The groups already read ahead (for a bounded search after a break). */
  buffered(): readonly Group[] {
    return this.buffer;
  }

  private async fill(): Promise<void> {
    while (this.buffer.length === 0 && !this.done) {
      const n = this.pageSize;
      // A window of seqs rather than LIMIT n alone: a LIMIT could cut one seq's rows in two, and
      // MergeTree ordered by (queue, ts, seq) answers the window from fewer granules.
      const limit = 4 * n;
      const rows = await this.store.query<Record<string, unknown>>(
        `SELECT ${LEDGER_SELECT}\nFROM ${LEDGER_TABLE}\nWHERE ${this.mine} AND seq > ${sqlNumber(this.last)} AND seq <= ${sqlNumber(this.last + n)}\n` +
          `ORDER BY seq\nLIMIT ${limit}`,
      );
      if (rows.length === 0) {
        // A hole wider than a page, or the end: where do rows resume?
        const [r] = await this.store.query<{ c: string; m: string }>(
          `SELECT count() AS c, min(seq) AS m FROM ${LEDGER_TABLE} WHERE ${this.mine} AND seq > ${sqlNumber(this.last)}`,
        );
        if (Number(r?.c ?? 0) === 0) this.done = true;
        else this.last = Number(r.m) - 1;
        continue;
      }
      this.rows += rows.length;
      let groups = groupBySeq(rows);
      if (rows.length === limit && groups.length > 1) groups = groups.slice(0, -1); // the last seq may be cut
      for (const g of groups) this.buffer.push(g);
      this.last = rows.length === limit ? groups[groups.length - 1].seq : this.last + n;
    }
  }
}

function groupBySeq(rows: Record<string, unknown>[]): Group[] {
  const out: Group[] = [];
  for (const row of rows) {
    const seq = Number(row.seq);
    const g = out[out.length - 1];
    if (g && g.seq === seq) g.rows.push(row);
    else out.push({ seq, rows: [row] });
  }
  return out;
}

const iso = isoTime;
const describeCp = (line: number, cp: Checkpoint) => `checkpoint line ${line} (size ${cp.size}, signed ${iso(cp.ts)})`;
const short = (h: string) => h.slice(0, 16);

async function shipperCommitted(dataDir: string | undefined): Promise<number | null> {
  if (dataDir === undefined) return null;
  try {
    const v = JSON.parse(await readFile(path.join(dataDir, 'shipper.json'), 'utf8')) as { committed?: unknown };
    return Number.isSafeInteger(v.committed) ? (v.committed as number) : null;
  } catch {
    return null;
  }
}

/**
 * Every ledger the store holds rows or checkpoints of, in order (`warden ledger verify --store`
 * checks each; a ledger whose rows were all deleted still has its checkpoints there).
 */
export async function listLedgers(store: LedgerStore): Promise<string[]> {
  const rows = await store.query<{ id: string }>(
    `SELECT DISTINCT ${LEDGER_ID_COLUMN} AS id FROM ${LEDGER_TABLE}\nUNION ALL\nSELECT DISTINCT ${LEDGER_ID_COLUMN} AS id FROM ${CHECKPOINTS_TABLE}`,
  );
  return [...new Set(rows.map((r) => String(r.id)))].sort();
}

/** The signed checkpoints the store holds for one ledger, as lines of a checkpoint file (in size order). */
async function storeCheckpoints(store: LedgerStore, ledgerId: string): Promise<CheckpointFile> {
  const rows = await store.query<Record<string, unknown>>(
    `SELECT size, root, ts_ms, last_seq, key_id, sig FROM ${CHECKPOINTS_TABLE}\nWHERE ${LEDGER_ID_COLUMN} = ${sqlString(ledgerId)}\n` +
      'ORDER BY size, ts_ms, root, sig\nLIMIT 1 BY size, root, ts_ms, last_seq, key_id, sig',
  );
  const lines: CheckpointLine[] = rows.map((r, i) => {
    const text = JSON.stringify({ version: 1, size: Number(r.size), root: r.root, ts: Number(r.ts_ms), last_seq: Number(r.last_seq), key_id: r.key_id, sig: r.sig });
    try {
      return { line: i + 1, text, checkpoint: parseCheckpoint(text), error: null };
    } catch (err) {
      return { line: i + 1, text, checkpoint: null, error: (err as Error).message };
    }
  });
  return { file: `${CHECKPOINTS_TABLE} (ledger ${ledgerId})`, exists: true, lines, tornBytes: 0, goodBytes: 0 };
}

export async function verifyStore(store: LedgerStore, opts: StoreVerifyOptions): Promise<StoreVerifyResult> {
  const started = performance.now();
  const ledgerId = checkLedgerId(opts.ledgerId ?? LEGACY_LEDGER_ID);
  let read: CheckpointFile;
  if (opts.checkpointsFile !== undefined || opts.dataDir !== undefined) {
    read = await readCheckpointFile(opts.checkpointsFile ?? checkpointsPath(opts.dataDir!));
  } else {
    read = await storeCheckpoints(store, ledgerId);
  }
  const file = read.file;
  const result: StoreVerifyResult = {
    ok: true, ledgerId, store: `${store.kind} ${store.target}`, rows: 0, records: 0, lastSeq: 0, headHash: GENESIS_HASH,
    checkpoints: {
      file, count: read.lines.length, keyIds: [], verifiedSize: 0, matched: 0, notShipped: null, tornTail: read.tornBytes > 0,
    },
    shipperCommitted: await shipperCommitted(opts.dataDir),
    warnings: [],
    elapsedMs: 0,
  };
  const finish = (problem?: StoreVerifyProblem): StoreVerifyResult => {
    result.elapsedMs = performance.now() - started;
    if (problem) {
      result.ok = false;
      // Several chains share the table: every problem names its ledger.
      result.problem = { ...problem, ledgerId };
    }
    return result;
  };

  // 1. The checkpoint lines on their own (signatures, order, forks).
  const keys = new Map<string, KeyObject>();
  for (const k of opts.publicKeys) keys.set(keyIdOf(k), k);
  const cps: { line: number; cp: Checkpoint }[] = [];
  const keyIds = new Set<string>();
  for (const l of read.lines) {
    if (!l.checkpoint) {
      return finish({ kind: 'checkpoint-malformed', seq: null, checkpointLine: l.line, message: `checkpoint line ${l.line} is not a checkpoint: ${l.error}` });
    }
    const cp = l.checkpoint;
    const key = keys.get(cp.key_id);
    const sigProblem = key
      ? checkpointSignatureProblem(cp, key)
      : `it is signed by key ${cp.key_id}, which is not among the given public keys (${[...keys.keys()].join(', ') || 'none'})`;
    if (sigProblem) return finish({ kind: 'checkpoint-signature', seq: null, checkpointLine: l.line, message: `${describeCp(l.line, cp)}: ${sigProblem}` });
    keyIds.add(cp.key_id);
    const prev = cps[cps.length - 1];
    if (prev && cp.size < prev.cp.size) {
      return finish({ kind: 'checkpoint-order', seq: null, checkpointLine: l.line, message: `${describeCp(l.line, cp)} follows ${describeCp(prev.line, prev.cp)}: a log only grows, so one of them is not genuine` });
    }
    if (prev && cp.size === prev.cp.size && cp.root !== prev.cp.root) {
      return finish({ kind: 'checkpoint-fork', seq: null, checkpointLine: l.line, message: `${describeCp(l.line, cp)} and ${describeCp(prev.line, prev.cp)} sign different roots for the same size: the log was forked` });
    }
    cps.push({ line: l.line, cp });
  }
  result.checkpoints.keyIds = [...keyIds];
  const distinct = cps.filter((c, i) => c.cp.size > 0 && (i === 0 || c.cp.size !== cps[i - 1].cp.size));
  let nextCp = 0;

  // 2 and 3. The rows: chain and Merkle roots in one pass.
  const cur = new GroupCursor(store, opts.pageSize ?? 10_000, ledgerId);
  const frontier = new MerkleFrontier();
  let expect = 1;
  let prev = GENESIS_HASH;
  /** The last accepted record (for blaming it when the next one still links to its original). */
  let last: LedgerRecord | null = null;
  const syncRows = () => { result.rows = cur.rows; };

  const accept = (rec: LedgerRecord, line: string): StoreVerifyProblem | null => {
    frontier.append(leafHash(line));
    result.records++;
    result.lastSeq = rec.seq;
    result.headHash = rec.hash;
    last = rec;
    expect = rec.seq + 1;
    prev = rec.hash;
    while (nextCp < distinct.length && distinct[nextCp].cp.size === result.records) {
      const c = distinct[nextCp];
      const got = frontier.root().toString('hex');
      if (got !== c.cp.root) {
        const from = result.checkpoints.verifiedSize + 1;
        const good = result.checkpoints.verifiedSize > 0 ? ` The checkpoint before it (size ${result.checkpoints.verifiedSize}) matches, so` : ' So';
        return {
          kind: 'mismatch', seq: from, fromSeq: from, toSeq: c.cp.size, checkpointLine: c.line,
          message: `${describeCp(c.line, c.cp)} does not match the store: the Merkle root of rows seq 1..${c.cp.size} is ${got}, ` +
            `but ${c.cp.root} was signed.${good} a record in seq ${from}..${c.cp.size} was changed, removed or inserted after it ` +
            'was checkpointed, and the hash chain was recomputed to hide it.',
        };
      }
      result.checkpoints.verifiedSize = c.cp.size;
      result.checkpoints.matched++;
      nextCp++;
    }
    return null;
  };

  for (let g = await cur.next(); g; g = await cur.next()) {
    if (g.seq > expect) {
      syncRows();
      const range = g.seq - 1 === expect ? `seq ${expect} is` : `seqs ${expect}..${g.seq - 1} are`;
      return finish({ kind: 'missing', seq: expect, fromSeq: expect, toSeq: g.seq - 1, message: `${range} missing from ${LEDGER_TABLE}: the rows resume at seq ${g.seq} (deleted rows)` });
    }
    // Rows sort by seq, so g.seq < expect cannot happen: a duplicate seq arrives in its own group.
    let rows = g.rows;
    if (rows.length > 1) {
      const distinctRows = new Map<string, Record<string, unknown>>();
      for (const r of rows) distinctRows.set(JSON.stringify(r), r);
      rows = [...distinctRows.values()];
      if (rows.length === 1) {
        // Identical copies: the chain holds, but every count over the table (approvals, decisions) would
        // count the record twice, so the store does not verify.
        syncRows();
        return finish({
          kind: 'duplicated', seq: g.seq,
          message: `seq ${g.seq} is stored ${g.rows.length} times in identical rows in ${LEDGER_TABLE} (a repeated insert): counts over the table would count it ${g.rows.length} times; ` +
            `remove the extra copies (e.g. OPTIMIZE TABLE ... DEDUPLICATE) and verify again`,
        });
      }
    }
    if (rows.length > 1) {
      syncRows();
      return finish(await duplicateProblem(g.seq, rows, prev, cur));
    }
    const d = decode(rows[0]);
    if (!d.ok) {
      syncRows();
      return finish({ kind: 'modified', seq: g.seq, message: `record seq ${g.seq} was altered in ${LEDGER_TABLE}: ${d.why}` });
    }
    const r = d.record;
    if (!d.selfOk) {
      syncRows();
      const moved = findMoved(r, expect, prev, cur.buffered());
      if (moved) return finish({ kind: 'reordered', seq: g.seq, message: moved });
      return finish({ kind: 'modified', seq: g.seq, message: `record seq ${g.seq} was altered in ${LEDGER_TABLE}: ${d.why} (hash ${short(r.hash)}…)` });
    }
    if (r.prev !== prev) {
      syncRows();
      const next = await cur.peek();
      const nextLinks = next?.rows.some((row) => row.prev === r.hash) ?? false;
      if (!last || (next && !nextLinks)) {
        return finish({ kind: 'modified', seq: r.seq, message: `record seq ${r.seq} does not link to the record before it and nothing links to it: it was forged or replaced (its own hash was recomputed)` });
      }
      const before: LedgerRecord = last;
      return finish({
        kind: 'modified', seq: before.seq,
        message: `record seq ${before.seq} was changed and its hash recomputed: seq ${r.seq} still links to the original (prev ${short(r.prev)}…, the stored seq ${before.seq} hashes to ${short(before.hash)}…)`,
      });
    }
    const p = accept(r, d.line);
    if (p) {
      syncRows();
      return finish(p);
    }
  }
  syncRows();

  // The rows end at lastSeq: checkpoints beyond it are lag or truncation.
  const beyond = distinct.slice(nextCp);
  if (beyond.length > 0) {
    const top = beyond[beyond.length - 1];
    const first = beyond[0];
    const shipped = result.shipperCommitted;
    const from = result.lastSeq + 1;
    if (opts.expectComplete || (shipped !== null && shipped > result.lastSeq)) {
      const why = opts.expectComplete
        ? '(--expect-complete: every checkpointed record should be in the store)'
        : `(the shipper recorded seq 1..${shipped} as stored, in shipper.json)`;
      return finish({
        kind: 'truncated', seq: from, fromSeq: from, toSeq: Math.min(first.cp.size, shipped !== null && !opts.expectComplete ? shipped : first.cp.size),
        checkpointLine: first.line,
        message: `${describeCp(first.line, first.cp)} covers seq 1..${first.cp.size}, but ${LEDGER_TABLE} ends at seq ${result.lastSeq} ${why}: ` +
          `seq ${from} onward were removed from the store after they were stored`,
      });
    }
    result.checkpoints.notShipped = top.cp;
    result.warnings.push(
      `${beyond.length} checkpoint(s) (up to size ${top.cp.size}) cover records not yet in ${LEDGER_TABLE} (it ends at seq ${result.lastSeq}): ` +
        'not yet shipped, so not checked; pass --expect-complete to treat this as truncation',
    );
  }
  return finish();
}

/**
 * Two or more different rows claim seq k. The genuine one links to seq k-1 and is what seq k+1 links
 * to; every other is forged (or a stale copy).
 */
async function duplicateProblem(seq: number, rows: Record<string, unknown>[], prev: string, cur: GroupCursor): Promise<StoreVerifyProblem> {
  const next = await cur.peek();
  const decoded = rows.map(decode);
  const genuine = decoded.findIndex((d) => d.ok && d.selfOk && d.record.prev === prev && (!next || next.rows.some((r) => r.prev === d.record.hash)));
  const hashes = decoded.map((d, i) => (d.ok ? `${short(d.record.hash)}…` : `row ${i + 1} (unreadable)`));
  if (genuine >= 0) {
    const forged = hashes.filter((_, i) => i !== genuine).join(', ');
    return {
      kind: 'inserted', seq,
      message: `seq ${seq} is held by ${rows.length} different rows: the one with hash ${hashes[genuine]} links to seq ${seq - 1}` +
        `${next ? ` and seq ${next.seq} links to it` : ''}; the other (hash ${forged}) is a forged or spliced-in record`,
    };
  }
  return { kind: 'inserted', seq, message: `seq ${seq} is held by ${rows.length} different rows (hashes ${hashes.join(', ')}), none of which continues the chain: forged or spliced-in records` };
}

/**
 * A row whose content does not hash under its seq: is it another seq's record, moved here (two rows'
 * seqs swapped)? Checked against the rows already read ahead, no further.
 */
function findMoved(r: LedgerRecord, expect: number, prev: string, ahead: readonly Group[]): string | null {
  for (const g of ahead) {
    for (const row of g.rows) {
      const d = decode(row);
      if (!d.ok) continue;
      // The genuine record of seq `expect` sits at seq g.seq (it links to seq expect-1 and hashes as seq expect).
      const other = d.record;
      if (other.prev === prev && encodeRecord(other.prev, expect, canonicalJson(other.event)).hash === other.hash) {
        const back = encodeRecord(r.prev, g.seq, canonicalJson(r.event)).hash === r.hash ? ` and seq ${expect} holds the record of seq ${g.seq}` : '';
        return `seq ${expect} and seq ${g.seq} were swapped: the record that belongs at seq ${expect} is stored as seq ${g.seq}${back} (rows moved with their content)`;
      }
    }
  }
  return null;
}
