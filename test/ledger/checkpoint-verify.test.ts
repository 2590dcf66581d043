/**
 * verifyCheckpoints: what the hash chain alone cannot catch (a spool rewritten with every hash
 * recomputed, a spool cut back to a shorter valid chain), and checkpoints that are not genuine.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { signCheckpoint, verifyCheckpoints, verifyLedger, type Checkpoint, type SigningKey } from '../../ledger/index.js';
import { buildCheckpointed, rewriteAndRechain, treeOf, truncateSpool } from './checkpoint-helpers.js';
import { events, removeDir, tempDir } from '../harness/ledger.js';

// 60 records over several segments, a checkpoint every 10: sizes 10, 20, ..., 60.
let pristine: string;
let key: SigningKey;
let dir: string;
const dirs: string[] = [];

beforeAll(async () => {
  pristine = await tempDir();
  ({ key } = await buildCheckpointed(pristine, 60, 10, 5, { segmentBytes: 8000 }));
});
beforeEach(async () => {
  dir = await tempDir();
  dirs.push(dir);
  await fs.cp(pristine, dir, { recursive: true });
});
afterAll(async () => {
  for (const d of [pristine, ...dirs]) await removeDir(d);
});

const cpFile = () => path.join(dir, 'checkpoints.jsonl');
async function cpLines(): Promise<string[]> {
  return (await fs.readFile(cpFile(), 'utf8')).split('\n').filter(Boolean);
}
async function setLines(lines: string[]): Promise<void> {
  await fs.writeFile(cpFile(), lines.map((l) => `${l}\n`).join(''));
}

describe('verifyCheckpoints', () => {
  it('accepts a genuine ledger: every signature, every root, every consistency proof', async () => {
    expect((await fs.readdir(path.join(dir, 'ledger'))).filter((f) => f.startsWith('seg-')).length).toBeGreaterThan(2);
    const r = await verifyCheckpoints(dir, key.publicKey);
    expect(r).toMatchObject({ ok: true, checkpoints: 6, verifiedSize: 60, spoolRecords: 60, consistencyProofs: 5, keyIds: [key.keyId], tornTail: false });
    expect(r.problem).toBeUndefined();
  });

  it('catches a record rewritten with the whole hash chain recomputed, naming the checkpoint and the seq range', async () => {
    await rewriteAndRechain(dir, 25, (r) => { r.event.error = 'nothing happened here'; r.event.kind = 'job.completed'; });
    expect((await verifyLedger(dir)).ok).toBe(true); // the chain alone is fooled
    const r = await verifyCheckpoints(dir, key.publicKey);
    expect(r.ok).toBe(false);
    expect(r.problem).toMatchObject({ kind: 'mismatch', line: 3, fromSeq: 21, toSeq: 30, checkpoint: { size: 30 } });
    expect(r.problem?.message).toMatch(/checkpoint line 3 \(size 30, .*\) does not match the spool: .* seq 21\.\.30 was changed/);
    expect(r.verifiedSize).toBe(20);
  });

  it('a rewrite of the very first record is blamed on seq 1..10', async () => {
    await rewriteAndRechain(dir, 1, (r) => { r.event.attempt = 3; });
    expect((await verifyLedger(dir)).ok).toBe(true);
    expect((await verifyCheckpoints(dir, key.publicKey)).problem).toMatchObject({ kind: 'mismatch', line: 1, fromSeq: 1, toSeq: 10 });
  });

  it('catches a spool cut back to fewer records than a checkpoint covers', async () => {
    await truncateSpool(dir, 44);
    expect(await verifyLedger(dir)).toMatchObject({ ok: true, records: 44 }); // still a valid chain
    const r = await verifyCheckpoints(dir, key.publicKey);
    expect(r.problem).toMatchObject({ kind: 'truncated', line: 5, fromSeq: 45, toSeq: 50 });
    expect(r.problem?.message).toMatch(/holds only 44 records: seq 45\.\.50 were removed/);
    expect(r.verifiedSize).toBe(40);
  });

  it('catches a forged checkpoint: an edited root, a signature by another key, a garbled line', async () => {
    const lines = await cpLines();
    const genuine = JSON.parse(lines[3]) as Checkpoint;
    await setLines(lines.map((l, i) => (i === 3 ? JSON.stringify({ ...genuine, root: 'ab'.repeat(32) }) : l)));
    let r = await verifyCheckpoints(dir, key.publicKey);
    expect(r.problem).toMatchObject({ kind: 'signature', line: 4 });
    expect(r.problem?.message).toMatch(/signature does not verify .* forged or altered/);

    // Re-signed by an attacker's own key: the root even matches a rewritten spool, but the key is not the ledger's.
    const { privateKey } = crypto.generateKeyPairSync('ed25519');
    const other = { privateKey, keyId: 'f'.repeat(16) };
    await setLines(lines.map((l, i) => (i === 3 ? JSON.stringify(signCheckpoint(other, genuine.size, genuine.root, genuine.ts)) : l)));
    r = await verifyCheckpoints(dir, key.publicKey);
    expect(r.problem).toMatchObject({ kind: 'signature', line: 4 });
    expect(r.problem?.message).toMatch(/signed by key ffffffffffffffff, which is not among the given public keys/);

    await setLines(lines.map((l, i) => (i === 1 ? l.slice(0, 40) : l)));
    expect((await verifyCheckpoints(dir, key.publicKey)).problem).toMatchObject({ kind: 'malformed', line: 2 });
  });

  it('checkpoints must only grow, and one size has one root (a fork is named)', async () => {
    const lines = await cpLines();
    await setLines([lines[0], lines[2], lines[1], ...lines.slice(3)]);
    expect((await verifyCheckpoints(dir, key.publicKey)).problem).toMatchObject({ kind: 'order', line: 3 });

    const second = JSON.parse(lines[1]) as Checkpoint;
    const fork = signCheckpoint(key, second.size, crypto.randomBytes(32), second.ts + 1);
    await setLines([lines[0], lines[1], JSON.stringify(fork), ...lines.slice(2)]);
    const r = await verifyCheckpoints(dir, key.publicKey);
    expect(r.problem).toMatchObject({ kind: 'fork', line: 3 });
    expect(r.problem?.message).toMatch(/different roots for the same size: the log was forked/);
  });

  it('a head of another log signed with the ledger key itself (a stolen key) is still caught by its root', async () => {
    const alienRecords = events(10).map((event, i) => ({ seq: i + 1, prev: '0'.repeat(64), hash: '1'.repeat(64), event }));
    const lines = await cpLines();
    await setLines([JSON.stringify(signCheckpoint(key, 10, treeOf(alienRecords).root(10), 1)), ...lines.slice(1)]);
    const r = await verifyCheckpoints(dir, key.publicKey);
    expect(r.problem).toMatchObject({ kind: 'mismatch', line: 1, fromSeq: 1, toSeq: 10 });
  });

  it('ignores a partial last line (a write in progress), and verifies an external copy of the checkpoints', async () => {
    const copy = path.join(dir, 'auditor-copy.jsonl');
    await fs.copyFile(cpFile(), copy);
    await fs.appendFile(cpFile(), '{"version":1,"si');
    const r = await verifyCheckpoints(dir, key.publicKey);
    expect(r).toMatchObject({ ok: true, tornTail: true, checkpoints: 6 });
    // The local file was replaced wholesale by a consistent forgery: the auditor's copy still catches the rewrite.
    await rewriteAndRechain(dir, 33, (r2) => { r2.event.attempt = 7; });
    await fs.rm(cpFile());
    expect(await verifyCheckpoints(dir, key.publicKey)).toMatchObject({ ok: true, checkpoints: 0, spoolRecords: 60 });
    expect((await verifyCheckpoints(dir, key.publicKey, { file: copy })).problem).toMatchObject({ kind: 'mismatch', fromSeq: 31, toSeq: 40 });
  });
});
