/** Shared by the checkpoint, proof and checkpoint CLI tests: real spools, real keys, real files. */
import fs from 'node:fs/promises';
import {
  Checkpointer, MemoryTree, Spool, leafHash, loadOrCreateSigningKey, readCheckpointFile, recordHash, serializeRecord,
  type Checkpoint, type LedgerRecord, type SigningKey,
} from '../../ledger/index.js';
import { events, segmentFiles, segmentLines } from '../harness/ledger.js';

export interface Checkpointed {
  records: LedgerRecord[];
  key: SigningKey;
  checkpoints: Checkpoint[];
}

/**
 * A ledger of `count` records appended in chunks of `chunk`, with a checkpointer (every `every`
 * records) fed as the agent feeds it, waiting for each checkpoint so that sizes are exact.
 */
export async function buildCheckpointed(dir: string, count: number, every: number, chunk = 5, spoolOpts: { segmentBytes?: number } = {}): Promise<Checkpointed> {
  const key = await loadOrCreateSigningKey(dir);
  const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0, ...spoolOpts });
  const cp = await Checkpointer.open({ dir, key, every, intervalMs: 3_600_000, fsync: false, lastSeq: spool.lastSeq });
  const records: LedgerRecord[] = [];
  for (let i = 0; i < count; i += chunk) {
    const recs = await spool.append(events(Math.min(chunk, count - i)));
    cp.add(recs);
    records.push(...recs);
    await cp.idle();
  }
  await spool.close();
  await cp.close({ lastSeq: spool.lastSeq });
  return { records, key, checkpoints: await checkpointsIn(dir) };
}

export async function checkpointsIn(dir: string): Promise<Checkpoint[]> {
  return (await readCheckpointFile(`${dir}/checkpoints.jsonl`)).lines.map((l) => l.checkpoint!);
}

/** The Merkle leaves of records, computed independently of the spool's files. */
export function treeOf(records: readonly LedgerRecord[]): MemoryTree {
  return new MemoryTree(records.map((r) => leafHash(serializeRecord(r).slice(0, -1))));
}

/**
 * The attack the hash chain alone cannot see: change record `seq`, then recompute its hash and the
 * prev/hash of every record after it, keeping each line in its segment file.
 */
export async function rewriteAndRechain(dir: string, seq: number, mutate: (r: LedgerRecord) => void): Promise<void> {
  let prev: string | null = null;
  for (const file of await segmentFiles(dir)) {
    const lines = await segmentLines(file);
    const out = lines.map((line) => {
      const r = JSON.parse(line) as LedgerRecord;
      if (r.seq < seq) return line;
      if (r.seq === seq) mutate(r);
      if (prev !== null) r.prev = prev;
      r.hash = recordHash(r.prev, r.seq, r.event);
      prev = r.hash;
      return serializeRecord(r);
    });
    await fs.writeFile(file, out.join(''));
  }
}

/** Cuts the spool back to its first `keep` records (whole lines: the hash chain still verifies). */
export async function truncateSpool(dir: string, keep: number): Promise<void> {
  for (const file of await segmentFiles(dir)) {
    const lines = await segmentLines(file);
    const kept = lines.filter((l) => (JSON.parse(l) as LedgerRecord).seq <= keep);
    if (kept.length === 0) await fs.rm(file);
    else await fs.writeFile(file, kept.join(''));
  }
}
