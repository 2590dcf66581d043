/**
 * Inclusion and consistency proofs built from a real spool and checked with nothing but the public
 * key: every record of a small ledger, and the ways a proof can lie.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CheckpointError, MemoryTree, Spool, leafHash, proveConsistency, proveInclusion, recordHash, serializeRecord, signCheckpoint,
  verifyConsistencyProof, verifyInclusionProof, type InclusionProof, type LedgerRecord, type SigningKey,
} from '../../ledger/index.js';
import { buildCheckpointed, checkpointsIn } from './checkpoint-helpers.js';
import { events, removeDir, tempDir } from '../harness/ledger.js';

let dir: string;
let key: SigningKey;
let records: LedgerRecord[];
const dirs: string[] = [];

beforeAll(async () => {
  dir = await tempDir();
  // 37 records, checkpoints at 16, 32 and (at close) 37: an odd size, so paths are ragged.
  ({ key, records } = await buildCheckpointed(dir, 37, 16, 4));
});
afterAll(async () => {
  for (const d of [dir, ...dirs]) await removeDir(d);
});

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

describe('inclusion proofs', () => {
  it('every record proves against the latest checkpoint, offline, with only the public key', async () => {
    const pub = crypto.createPublicKey(await fs.readFile(key.publicFile, 'utf8'));
    for (const r of records) {
      const proof = await proveInclusion(dir, r.event.event_id);
      expect(proof.leaf_index).toBe(r.seq - 1);
      expect(proof.checkpoint.size).toBe(37);
      expect(proof.record).toBe(serializeRecord(r).slice(0, -1));
      const v = verifyInclusionProof(JSON.parse(JSON.stringify(proof)), pub);
      if (!v.ok) expect.fail(`seq ${r.seq}: ${v.step}: ${v.message}`);
      expect(v.seq).toBe(r.seq);
      expect(v.steps).toHaveLength(3);
    }
  });

  it('fails, naming the step, for a modified record, a modified path, a forged checkpoint or the wrong key', async () => {
    const proof = await proveInclusion(dir, records[20].event.event_id);
    const bad = (mutate: (p: InclusionProof) => void, pub = key.publicKey) => {
      const p = clone(proof);
      mutate(p);
      return verifyInclusionProof(p, pub);
    };
    // One byte of the record line, anywhere: the path no longer reaches the signed root.
    for (const at of [2, 40, proof.record.indexOf('"attempt"') + 10, proof.record.length - 2]) {
      const v = bad((p) => { p.record = p.record.slice(0, at) + String.fromCharCode(p.record.charCodeAt(at) ^ 1) + p.record.slice(at + 1); });
      expect(v, `byte ${at}`).toMatchObject({ ok: false, step: 'inclusion' });
    }
    expect(bad((p) => { p.record = p.record.replace('"attempt":1', '"attempt":2'); })).toMatchObject({ ok: false, step: 'inclusion', message: expect.stringMatching(/the record \(or the path\) was altered/) });
    expect(bad((p) => { p.audit_path[1] = 'ab'.repeat(32); })).toMatchObject({ ok: false, step: 'inclusion' });
    expect(bad((p) => { p.audit_path.pop(); })).toMatchObject({ ok: false, step: 'inclusion' });
    expect(bad((p) => { p.leaf_index += 1; })).toMatchObject({ ok: false, step: 'inclusion' });
    expect(bad((p) => { p.checkpoint.root = 'cd'.repeat(32); })).toMatchObject({ ok: false, step: 'signature' });
    expect(bad((p) => { p.checkpoint.size = 36; p.checkpoint.last_seq = 36; })).toMatchObject({ ok: false, step: 'signature' });
    expect(bad(() => undefined, crypto.generateKeyPairSync('ed25519').publicKey)).toMatchObject({ ok: false, step: 'signature', message: expect.stringMatching(/not by the given public key/) });
    expect(verifyInclusionProof({ format: 'something else' }, key.publicKey)).toMatchObject({ ok: false, step: 'format' });
    expect(bad((p) => { (p as { audit_path: unknown }).audit_path = ['xyz']; })).toMatchObject({ ok: false, step: 'format' });
  });

  it('the last step catches a record whose own hash does not match its content, even if a signed tree includes it', async () => {
    // A log someone signed with a record altered without re-hashing: signature and path are fine.
    const lines = records.slice(0, 5).map((r) => serializeRecord(r).slice(0, -1));
    lines[2] = lines[2].replace('"attempt":1', '"attempt":5');
    const tree = new MemoryTree(lines.map((l) => leafHash(l)));
    const cp = signCheckpoint(key, 5, tree.root(), Date.now());
    const proof = { format: 'warden-inclusion-proof-v1', record: lines[2], leaf_index: 2, checkpoint: cp, audit_path: tree.inclusionProof(2).map((h) => h.toString('hex')) };
    expect(verifyInclusionProof(proof, key.publicKey)).toMatchObject({ ok: false, step: 'record', message: expect.stringMatching(/hash does not match its content/) });
    // And one that claims another seq than its leaf position.
    const r = { ...records[3], seq: 9 };
    r.hash = recordHash(r.prev, r.seq, r.event);
    const moved = [...lines.slice(0, 3), serializeRecord(r).slice(0, -1), lines[4]];
    const t2 = new MemoryTree(moved.map((l) => leafHash(l)));
    const p2 = { ...proof, record: moved[3], leaf_index: 3, checkpoint: signCheckpoint(key, 5, t2.root(), Date.now()), audit_path: t2.inclusionProof(3).map((h) => h.toString('hex')) };
    expect(verifyInclusionProof(p2, key.publicKey)).toMatchObject({ ok: false, step: 'record', message: expect.stringMatching(/says seq 9, but leaf 3 holds seq 4/) });
  });

  it('says why no proof can be made: unknown event, not yet checkpointed, no checkpoints', async () => {
    await expect(proveInclusion(dir, '01ARZ3NDEKTSV4RRFFQ69G5FAV')).rejects.toThrow(/no record .* has event_id "01ARZ3NDEKTSV4RRFFQ69G5FAV"/);
    const d = await tempDir();
    dirs.push(d);
    const built = await buildCheckpointed(d, 12, 10);
    // Records after the last checkpoint: append without a checkpointer.
    const spool = await Spool.open({ dir: d, fsync: false, groupCommitMs: 0 });
    const [late] = await spool.append(events(1));
    await spool.close();
    await expect(proveInclusion(d, late.event.event_id)).rejects.toThrow(/seq 13 .* is newer than the latest checkpoint \(size 12/);
    await expect(proveInclusion(d, built.records[0].event.event_id)).resolves.toMatchObject({ leaf_index: 0 });
    await fs.rm(path.join(d, 'checkpoints.jsonl'));
    await expect(proveInclusion(d, built.records[0].event.event_id)).rejects.toThrow(CheckpointError);
  });
});

describe('consistency proofs', () => {
  it('between the first and the last checkpoint by default, and between any two sizes', async () => {
    const cps = await checkpointsIn(dir);
    expect(cps.map((c) => c.size)).toEqual([16, 32, 37]);
    const p = await proveConsistency(dir);
    expect(p).toMatchObject({ from: { size: 16, root: cps[0].root, checkpoint: cps[0] }, to: { size: 37, root: cps[2].root, checkpoint: cps[2] } });
    expect(verifyConsistencyProof(clone(p), key.publicKey)).toMatchObject({ ok: true });
    const tree = new MemoryTree(records.map((r) => leafHash(serializeRecord(r).slice(0, -1))));
    for (const [from, to] of [[0, 37], [1, 37], [16, 32], [5, 17], [37, 37], [31, 33]]) {
      const q = await proveConsistency(dir, { from, to });
      expect(q.proof).toEqual(tree.consistencyProof(from, to).map((h) => h.toString('hex')));
      expect(q.from.root).toBe(tree.root(from).toString('hex'));
      expect(verifyConsistencyProof(q), `${from} -> ${to}`).toMatchObject({ ok: true });
    }
  });

  it('a tampered proof, a swapped pair or a forged checkpoint fails', async () => {
    const p = await proveConsistency(dir);
    const flipped = clone(p);
    const h = Buffer.from(flipped.proof[0], 'hex');
    h[0] ^= 16;
    flipped.proof[0] = h.toString('hex');
    expect(verifyConsistencyProof(flipped)).toMatchObject({ ok: false });
    const swapped = { ...clone(p), from: clone(p.to), to: clone(p.from) };
    expect(verifyConsistencyProof(swapped)).toMatchObject({ ok: false });
    const forged = clone(p);
    forged.to.root = 'ab'.repeat(32);
    forged.to.checkpoint!.root = forged.to.root;
    expect(verifyConsistencyProof(forged, key.publicKey)).toMatchObject({ ok: false, message: expect.stringMatching(/not authentic/) });
    await expect(proveConsistency(dir, { from: 10, to: 99 })).rejects.toThrow(/holds 37 records, fewer than 99/);
    await expect(proveConsistency(dir, { from: 20, to: 10 })).rejects.toThrow(/0 <= from <= to/);
  });
});
