/**
 * Offline verification of the signed checkpoints against the spool, with nothing but the public key:
 *
 * 1. every line of the checkpoint file is a checkpoint, signed by a given key, and sizes never shrink
 *    (two checkpoints of one size must have one root: otherwise the log forked);
 * 2. one streaming pass over the spool's lines recomputes the Merkle root at every checkpointed size
 *    and compares it with the signed one. The first checkpoint that does not match names the seq
 *    range where the change is: after the last checkpoint that still matches, up to its own size;
 * 3. each checkpoint is shown to extend the one before with an RFC 6962 consistency proof (built in
 *    the same pass), the check a monitor holding only older checkpoints would make. With the spool at
 *    hand this cannot fail once every root matched (both roots are then prefixes of one log); it is
 *    kept as the literal statement "the log only grew", and `kind: 'inconsistent'` is its failure.
 *
 * The hash chain itself is verifyLedger's job; run both (the CLI does). This catches what the chain
 * cannot: a spool rewritten with every hash recomputed.
 */
import { isoTime } from '../../core/time.js';
import type { KeyObject } from 'node:crypto';
import { checkpointSignatureProblem, checkpointsPath, readCheckpointFile, type Checkpoint } from './checkpoint.js';
import { readLeafLines } from './leaves.js';
import { keyIdOf } from './keys.js';
import { NodeCollector, consistencyRanges, leafHash, verifyConsistency } from './merkle.js';

export type CheckpointProblemKind = 'malformed' | 'signature' | 'order' | 'fork' | 'mismatch' | 'truncated' | 'inconsistent';

export interface CheckpointProblem {
  kind: CheckpointProblemKind;
  /** 1-based line of the checkpoint file. */
  line: number;
  checkpoint: Checkpoint | null;
  /** For mismatch and truncated: the seqs where the difference lies (inclusive). */
  fromSeq?: number;
  toSeq?: number;
  message: string;
}

export interface CheckpointVerifyResult {
  ok: boolean;
  file: string;
  /** Checkpoints in the file (complete lines). */
  checkpoints: number;
  /** The largest size whose root was recomputed from the spool and matched (0 if none). */
  verifiedSize: number;
  /** Records in the spool (complete lines). */
  spoolRecords: number;
  /** Consistency proofs checked between successive checkpoints of different sizes. */
  consistencyProofs: number;
  /** Key ids that signed the checkpoints. */
  keyIds: string[];
  /** A partial last line was ignored (a write in progress, or cut off by a crash). */
  tornTail: boolean;
  last: Checkpoint | null;
  problem?: CheckpointProblem;
}

export interface VerifyCheckpointsOptions {
  /** A checkpoint file other than `<dir>/checkpoints.jsonl`, e.g. a copy kept by the auditor. */
  file?: string;
}

const iso = isoTime;
const describe = (line: number, cp: Checkpoint) => `checkpoint line ${line} (size ${cp.size}, signed ${iso(cp.ts)})`;

export async function verifyCheckpoints(
  dir: string, publicKeys: KeyObject | readonly KeyObject[], opts: VerifyCheckpointsOptions = {},
): Promise<CheckpointVerifyResult> {
  const keys = new Map<string, KeyObject>();
  for (const k of Array.isArray(publicKeys) ? publicKeys : [publicKeys as KeyObject]) keys.set(keyIdOf(k), k);
  const file = opts.file ?? checkpointsPath(dir);
  const read = await readCheckpointFile(file);
  const result: CheckpointVerifyResult = {
    ok: true, file, checkpoints: read.lines.length, verifiedSize: 0, spoolRecords: 0, consistencyProofs: 0,
    keyIds: [], tornTail: read.tornBytes > 0, last: read.lines[read.lines.length - 1]?.checkpoint ?? null,
  };
  const fail = (problem: CheckpointProblem): CheckpointVerifyResult => ({ ...result, ok: false, problem });

  // 1. Each line on its own, and the order of sizes.
  const cps: { line: number; cp: Checkpoint }[] = [];
  const keyIds = new Set<string>();
  for (const l of read.lines) {
    if (!l.checkpoint) return fail({ kind: 'malformed', line: l.line, checkpoint: null, message: `checkpoint line ${l.line} is not a checkpoint: ${l.error}` });
    const cp = l.checkpoint;
    const key = keys.get(cp.key_id);
    const sigProblem = key
      ? checkpointSignatureProblem(cp, key)
      : `it is signed by key ${cp.key_id}, which is not among the given public keys (${[...keys.keys()].join(', ')})`;
    if (sigProblem) return fail({ kind: 'signature', line: l.line, checkpoint: cp, message: `${describe(l.line, cp)}: ${sigProblem}` });
    keyIds.add(cp.key_id);
    const prev = cps[cps.length - 1];
    if (prev && cp.size < prev.cp.size) {
      return fail({ kind: 'order', line: l.line, checkpoint: cp, message: `${describe(l.line, cp)} follows ${describe(prev.line, prev.cp)}: a log only grows, so one of them is not genuine` });
    }
    if (prev && cp.size === prev.cp.size && cp.root !== prev.cp.root) {
      return fail({ kind: 'fork', line: l.line, checkpoint: cp, message: `${describe(l.line, cp)} and ${describe(prev.line, prev.cp)} sign different roots for the same size: the log was forked` });
    }
    cps.push({ line: l.line, cp });
  }
  result.keyIds = [...keyIds];
  if (cps.length === 0) {
    for await (const _ of readLeafLines(dir)) result.spoolRecords++;
    return result;
  }

  // 2. One pass over the spool: roots at every checkpointed size, and the nodes the proofs need.
  const distinct = cps.filter((c, i) => i === 0 || c.cp.size !== cps[i - 1].cp.size);
  const collector = new NodeCollector();
  for (let i = 1; i < distinct.length; i++) for (const r of consistencyRanges(distinct[i - 1].cp.size, distinct[i].cp.size)) collector.want(r);
  let next = 0;
  while (next < distinct.length && distinct[next].cp.size === 0) next++;
  const rootMismatch = (c: { line: number; cp: Checkpoint }, got: string): CheckpointProblem => {
    const from = result.verifiedSize + 1;
    const good = result.verifiedSize > 0 ? ` The checkpoint before it (size ${result.verifiedSize}) matches, so` : ' So';
    return {
      kind: 'mismatch', line: c.line, checkpoint: c.cp, fromSeq: from, toSeq: c.cp.size,
      message: `${describe(c.line, c.cp)} does not match the spool: the Merkle root of seq 1..${c.cp.size} is ${got}, ` +
        `but ${c.cp.root} was signed.${good} a record in seq ${from}..${c.cp.size} was changed, removed or inserted after it was checkpointed` +
        ' (if the hash chain verifies, its hashes were recomputed to hide it).',
    };
  };
  let count = 0;
  for await (const leaf of readLeafLines(dir)) {
    count++;
    if (next >= distinct.length) continue; // beyond the last checkpoint: only counted
    collector.push(leafHash(leaf.bytes));
    if (count === distinct[next].cp.size) {
      const got = collector.frontier.root().toString('hex');
      if (got !== distinct[next].cp.root) {
        result.spoolRecords = count;
        for await (const _ of readLeafLines(dir, { fromSeq: count + 1 })) result.spoolRecords++;
        return fail(rootMismatch(distinct[next], got));
      }
      result.verifiedSize = count;
      next++;
    }
  }
  result.spoolRecords = count;
  if (next < distinct.length) {
    const c = distinct[next];
    return fail({
      kind: 'truncated', line: c.line, checkpoint: c.cp, fromSeq: count + 1, toSeq: c.cp.size,
      message: `${describe(c.line, c.cp)} covers seq 1..${c.cp.size}, but the spool holds only ${count} records: ` +
        `seq ${count + 1}..${c.cp.size} were removed after they were checkpointed`,
    });
  }

  // 3. Each checkpoint extends the one before.
  for (let i = 1; i < distinct.length; i++) {
    const a = distinct[i - 1];
    const b = distinct[i];
    const proof = collector.consistencyProof(a.cp.size, b.cp.size);
    if (!verifyConsistency(a.cp.size, b.cp.size, Buffer.from(a.cp.root, 'hex'), Buffer.from(b.cp.root, 'hex'), proof)) {
      return fail({ kind: 'inconsistent', line: b.line, checkpoint: b.cp, message: `${describe(b.line, b.cp)} is not an extension of ${describe(a.line, a.cp)}: the consistency proof fails` });
    }
    result.consistencyProofs++;
  }
  return result;
}
