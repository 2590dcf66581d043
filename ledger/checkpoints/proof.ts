/**
 * Self-contained proofs an auditor checks with nothing but the public key.
 *
 * - Inclusion: "this record line is leaf i of the log whose root this signed checkpoint states".
 *   The file holds the record line, its leaf index, the checkpoint (with its signature) and the audit
 *   path. Checking it: the signature, then the audit path from the line's leaf hash to the signed
 *   root, then that the record's own hash fields agree with its content.
 * - Consistency: "the log at size m is a prefix of the log at size n" (it only grew), between two
 *   checkpoints by default.
 *
 * Proofs are built in one streaming pass over the spool (O(log n) memory), and refused when the spool
 * does not reproduce the checkpoint they would cite.
 */
import { isoTime } from '../../core/time.js';
import type { KeyObject } from 'node:crypto';
import { checkpointShapeProblem, checkpointSignatureProblem, checkpointsPath, readCheckpointFile, type Checkpoint } from './checkpoint.js';
import { CheckpointError } from './errors.js';
import { readLeafLines } from './leaves.js';
import { NodeCollector, consistencyRanges, inclusionRanges, leafHash, rootFromInclusionProof, verifyConsistency } from './merkle.js';
import { inspectLine, type LedgerRecord } from '../spool/record.js';
import { readRecords } from '../spool/reader.js';
import { readLedgerId } from '../store/ledger-id.js';

export const INCLUSION_PROOF_FORMAT = 'warden-inclusion-proof-v1';
export const CONSISTENCY_PROOF_FORMAT = 'warden-consistency-proof-v1';

export interface InclusionProof {
  format: typeof INCLUSION_PROOF_FORMAT;
  /**
   * The ledger (chain) the proof is about: `<dataDir>/ledger-id` (store/ledger-id.ts), so a proof from
   * one sidecar of a fleet names its chain; absent for a data dir without one. The signature covers
   * size, root and time, not this name: the checkpoint's key_id says which sidecar signed.
   */
  ledger_id?: string;
  /** The record's line in the spool, without the newline: the leaf's bytes (UTF-8). */
  record: string;
  /** 0-based leaf index (= seq - 1). */
  leaf_index: number;
  /** The signed checkpoint the path leads to. */
  checkpoint: Checkpoint;
  /** RFC 6962 audit path, hex, nearest the leaf first. */
  audit_path: string[];
}

export interface ConsistencyProof {
  format: typeof CONSISTENCY_PROOF_FORMAT;
  /** The ledger the proof is about (see InclusionProof.ledger_id). */
  ledger_id?: string;
  from: { size: number; root: string; checkpoint: Checkpoint | null };
  to: { size: number; root: string; checkpoint: Checkpoint | null };
  /** RFC 6962 consistency proof, hex. */
  proof: string[];
}

export interface ProofSources {
  /** The checkpoint file to cite (default `<dir>/checkpoints.jsonl`). */
  checkpointsFile?: string;
}

async function checkpointsOf(dir: string, file?: string): Promise<Checkpoint[]> {
  const read = await readCheckpointFile(file ?? checkpointsPath(dir));
  const bad = read.lines.find((l) => !l.checkpoint);
  if (bad) throw new CheckpointError(`${read.file} line ${bad.line} is not a checkpoint (${bad.error}); run \`warden ledger verify\``, { code: 'WARDEN_TAMPERED' });
  return read.lines.map((l) => l.checkpoint!);
}

/** The inclusion proof of the record whose event has this event_id, against the latest checkpoint. */
export async function proveInclusion(dir: string, eventId: string, sources: ProofSources = {}): Promise<InclusionProof> {
  const built = await buildInclusionProof(dir, eventId, sources);
  if (!built.reproduces) {
    throw new CheckpointError(`the spool at ${dir} does not reproduce the latest checkpoint (size ${built.proof.checkpoint.size}); run \`warden ledger verify\``, { code: 'WARDEN_TAMPERED' });
  }
  return built.proof;
}

/**
 * The inclusion proof document as the spool gives it, and whether the spool reproduces the signed
 * root. A spool altered after the checkpoint still yields a document (its line and path are what is on
 * disk now), which an independent verifier then refuses: the console shows that failure computed in
 * the browser rather than taking the server's word. proveInclusion refuses it here instead.
 */
export async function buildInclusionProof(dir: string, eventId: string, sources: ProofSources = {}): Promise<{ proof: InclusionProof; reproduces: boolean }> {
  const needle = `"event_id":${JSON.stringify(eventId)}`;
  let record: LedgerRecord | null = null;
  for await (const r of readRecords(dir, { prefilter: (line) => line.includes(needle) })) {
    if (r.event.event_id === eventId) {
      record = r;
      break;
    }
  }
  if (!record) throw new CheckpointError(`no record in the ledger at ${dir} has event_id ${JSON.stringify(eventId)}`, { code: 'WARDEN_NOT_FOUND' });
  const cps = await checkpointsOf(dir, sources.checkpointsFile);
  const cp = cps[cps.length - 1];
  if (!cp) throw new CheckpointError(`the ledger at ${dir} has no signed checkpoint yet, so there is no root to prove inclusion in`, { code: 'WARDEN_NOT_FOUND' });
  if (cp.size < record.seq) {
    throw new CheckpointError(
      `record seq ${record.seq} (event ${eventId}) is newer than the latest checkpoint (size ${cp.size}, signed ${isoTime(cp.ts)}); ` +
      'a proof is possible once the next checkpoint covers it (the agent writes one every ledger.checkpointEvery records or ledger.checkpointIntervalMs)',
      { code: 'WARDEN_CONFLICT' },
    );
  }
  const index = record.seq - 1;
  const collector = new NodeCollector(inclusionRanges(index, cp.size));
  let line: string | null = null;
  for await (const leaf of readLeafLines(dir, { toSeq: cp.size })) {
    if (collector.size === index) line = leaf.bytes.toString('utf8');
    collector.push(leafHash(leaf.bytes));
  }
  if (collector.size !== cp.size || line === null) {
    throw new CheckpointError(`the spool at ${dir} does not reproduce the latest checkpoint (size ${cp.size}); run \`warden ledger verify\``, { code: 'WARDEN_TAMPERED' });
  }
  const ledgerId = await readLedgerId(dir);
  return {
    reproduces: collector.frontier.root().toString('hex') === cp.root,
    proof: {
      format: INCLUSION_PROOF_FORMAT,
      ...(ledgerId !== null ? { ledger_id: ledgerId } : {}),
      record: line,
      leaf_index: index,
      checkpoint: cp,
      audit_path: collector.inclusionProof(index, cp.size).map((h) => h.toString('hex')),
    },
  };
}

export type ProofStep = 'format' | 'signature' | 'inclusion' | 'record';

export type ProofVerdict =
  | { ok: true; seq: number; record: LedgerRecord; checkpoint: Checkpoint; steps: string[] }
  | { ok: false; step: ProofStep; message: string; steps: string[] };

const HEX64 = /^[0-9a-f]{64}$/;

/** Checks an inclusion proof with only the public key: signature, audit path, then the record itself. */
export function verifyInclusionProof(proof: unknown, publicKey: KeyObject): ProofVerdict {
  const steps: string[] = [];
  const fail = (step: ProofStep, message: string): ProofVerdict => ({ ok: false, step, message, steps });
  const p = proof as Partial<InclusionProof> | null;
  if (typeof p !== 'object' || p === null || p.format !== INCLUSION_PROOF_FORMAT) return fail('format', `not a ${INCLUSION_PROOF_FORMAT} document`);
  if (typeof p.record !== 'string') return fail('format', 'record is not a string');
  if (!(Number.isSafeInteger(p.leaf_index) && (p.leaf_index as number) >= 0)) return fail('format', 'leaf_index is not a non-negative integer');
  if (!Array.isArray(p.audit_path) || !p.audit_path.every((h) => typeof h === 'string' && HEX64.test(h))) return fail('format', 'audit_path is not a list of 64-digit hex hashes');
  const shape = checkpointShapeProblem(p.checkpoint);
  if (shape) return fail('format', `the checkpoint ${shape}`);
  const cp = p.checkpoint as Checkpoint;
  const index = p.leaf_index as number;

  const sig = checkpointSignatureProblem(cp, publicKey);
  if (sig) return fail('signature', `the checkpoint (size ${cp.size}, signed ${isoTime(cp.ts)}) is not authentic: ${sig}`);
  steps.push(`signature ok: key ${cp.key_id} signed root ${cp.root} for size ${cp.size} at ${isoTime(cp.ts)}`);

  const root = rootFromInclusionProof(leafHash(p.record), index, cp.size, p.audit_path.map((h) => Buffer.from(h, 'hex')));
  if (root === null) return fail('inclusion', `an audit path of ${p.audit_path.length} hashes cannot lead from leaf ${index} to the root of a tree of size ${cp.size}`);
  if (root.toString('hex') !== cp.root) {
    return fail('inclusion', `the record line with this audit path leads to root ${root.toString('hex')}, not to the signed root ${cp.root}: the record (or the path) was altered`);
  }
  steps.push(`inclusion ok: the record line is leaf ${index} of the signed tree (${p.audit_path.length} hashes)`);

  const ins = inspectLine(p.record);
  if (!ins.ok) return fail('record', `the record line is not a ledger record: ${ins.error.message}`);
  if (!ins.selfOk) return fail('record', `the record's hash does not match its content: ${ins.why}`);
  if (ins.record.seq !== index + 1) return fail('record', `the record says seq ${ins.record.seq}, but leaf ${index} holds seq ${index + 1}`);
  steps.push(`record ok: seq ${ins.record.seq}${typeof p.ledger_id === 'string' ? ` of ledger ${p.ledger_id}` : ''}, hash ${ins.record.hash} = sha256(prev, seq, event)`);
  return { ok: true, seq: ins.record.seq, record: ins.record, checkpoint: cp, steps };
}

/**
 * A consistency proof between two sizes of the log, by default the first and the last checkpoint.
 * A size that has a checkpoint cites it (and its signed root); the spool must reproduce that root.
 */
export async function proveConsistency(dir: string, opts: { from?: number; to?: number } & ProofSources = {}): Promise<ConsistencyProof> {
  const cps = await checkpointsOf(dir, opts.checkpointsFile);
  const from = opts.from ?? cps[0]?.size;
  const to = opts.to ?? cps[cps.length - 1]?.size;
  if (from === undefined || to === undefined) throw new CheckpointError(`the ledger at ${dir} has no checkpoints; pass --from and --to`, { code: 'WARDEN_NOT_FOUND' });
  if (!(Number.isSafeInteger(from) && Number.isSafeInteger(to) && from >= 0 && from <= to)) {
    throw new CheckpointError(`a consistency proof needs 0 <= from <= to (got from ${from}, to ${to})`, { code: 'WARDEN_USAGE' });
  }
  const atFrom = cps.filter((c) => c.size === from).pop() ?? null;
  const atTo = cps.filter((c) => c.size === to).pop() ?? null;
  const collector = new NodeCollector(consistencyRanges(from, to));
  let rootFrom = from === 0 ? collector.frontier.root().toString('hex') : null;
  for await (const leaf of readLeafLines(dir, { toSeq: to })) {
    collector.push(leafHash(leaf.bytes));
    if (collector.size === from) rootFrom = collector.frontier.root().toString('hex');
  }
  if (collector.size < to) throw new CheckpointError(`the spool holds ${collector.size} records, fewer than ${to}`, { code: 'WARDEN_USAGE' });
  const rootTo = collector.frontier.root().toString('hex');
  for (const [c, root] of [[atFrom, rootFrom], [atTo, rootTo]] as const) {
    if (c && c.root !== root) {
      throw new CheckpointError(`the spool does not reproduce the checkpoint of size ${c.size} (root ${root}, signed ${c.root}); run \`warden ledger verify\``, { code: 'WARDEN_TAMPERED' });
    }
  }
  const ledgerId = await readLedgerId(dir);
  return {
    format: CONSISTENCY_PROOF_FORMAT,
    ...(ledgerId !== null ? { ledger_id: ledgerId } : {}),
    from: { size: from, root: rootFrom!, checkpoint: atFrom },
    to: { size: to, root: rootTo, checkpoint: atTo },
    proof: collector.consistencyProof(from, to).map((h) => h.toString('hex')),
  };
}

/**
 * Checks a consistency proof offline. With a public key, the checkpoints it cites must be signed by
 * it and state the roots the proof uses.
 */
export function verifyConsistencyProof(proof: unknown, publicKey?: KeyObject): { ok: true; steps: string[] } | { ok: false; message: string; steps: string[] } {
  const steps: string[] = [];
  const p = proof as Partial<ConsistencyProof> | null;
  if (typeof p !== 'object' || p === null || p.format !== CONSISTENCY_PROOF_FORMAT || !p.from || !p.to || !Array.isArray(p.proof)) {
    return { ok: false, message: `not a ${CONSISTENCY_PROOF_FORMAT} document`, steps };
  }
  for (const end of [p.from, p.to]) {
    if (!(Number.isSafeInteger(end.size) && typeof end.root === 'string' && HEX64.test(end.root))) return { ok: false, message: 'from/to need a size and a 64-digit hex root', steps };
    if (end.checkpoint && publicKey) {
      const shape = checkpointShapeProblem(end.checkpoint);
      const sig = shape ?? checkpointSignatureProblem(end.checkpoint, publicKey);
      if (sig) return { ok: false, message: `the checkpoint of size ${end.size} is not authentic: ${sig}`, steps };
      if (end.checkpoint.size !== end.size || end.checkpoint.root !== end.root) return { ok: false, message: `the checkpoint cited for size ${end.size} states another size or root`, steps };
      steps.push(`signature ok: size ${end.size}, root ${end.root}, key ${end.checkpoint.key_id}`);
    }
  }
  if (!p.proof.every((h) => typeof h === 'string' && HEX64.test(h))) return { ok: false, message: 'proof is not a list of 64-digit hex hashes', steps };
  const ok = verifyConsistency(p.from.size, p.to.size, Buffer.from(p.from.root, 'hex'), Buffer.from(p.to.root, 'hex'), p.proof.map((h) => Buffer.from(h, 'hex')));
  if (!ok) return { ok: false, message: `the proof does not show that the log of size ${p.from.size} is a prefix of the log of size ${p.to.size}`, steps };
  steps.push(`consistent: size ${p.from.size} (root ${p.from.root}) is a prefix of size ${p.to.size} (root ${p.to.root}); ${p.proof.length} hashes`);
  return { ok: true, steps };
}
