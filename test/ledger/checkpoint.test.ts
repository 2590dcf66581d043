/**
 * Signed checkpoints as the agent writes them: keys on disk, a checkpoint every N records and every
 * T ms, restarts that resume the frontier (with and without records beyond the last checkpoint), and
 * refusal to sign over a spool that no longer matches.
 */
import crypto from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CheckpointError, CheckpointMismatchError, Checkpointer, Spool, checkpointMessage, checkpointSignatureProblem, keyIdOf,
  loadOrCreateSigningKey, loadPublicKey, serializeRecord, type Checkpoint, type LedgerRecord,
} from '../../ledger/index.js';
import { LeafTail } from '../../ledger/checkpoints/leaves.js';
import { buildCheckpointed, checkpointsIn, rewriteAndRechain, treeOf, truncateSpool } from './checkpoint-helpers.js';
import { events, readAll, removeDir, tempDir } from '../harness/ledger.js';

const dirs: string[] = [];
async function fresh(): Promise<string> {
  const d = await tempDir();
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await removeDir(d);
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function expectGenuine(cps: Checkpoint[], records: LedgerRecord[], publicKey: crypto.KeyObject): void {
  const tree = treeOf(records);
  for (const cp of cps) {
    expect(checkpointSignatureProblem(cp, publicKey), `checkpoint of size ${cp.size}`).toBeNull();
    expect(cp.root, `root of size ${cp.size}`).toBe(tree.root(cp.size).toString('hex'));
    expect(cp.last_seq).toBe(cp.size);
  }
}

describe('the signing key', () => {
  it('is generated once into <dataDir>/keys (private 0600, public beside it) and reused', async () => {
    const dir = await fresh();
    const a = await loadOrCreateSigningKey(dir);
    expect(a.created).toBe(true);
    expect(a.file).toBe(path.join(dir, 'keys', 'ledger-ed25519.pem'));
    expect((await fs.stat(a.file)).mode & 0o777).toBe(0o600);
    expect((await fs.stat(path.join(dir, 'keys'))).mode & 0o077).toBe(0);
    const pub = await loadPublicKey(a.publicFile);
    expect(pub.asymmetricKeyType).toBe('ed25519');
    const der = pub.export({ type: 'spki', format: 'der' });
    expect(a.keyId).toBe(crypto.createHash('sha256').update(der).digest('hex').slice(0, 16));
    expect(keyIdOf(pub)).toBe(a.keyId);
    const b = await loadOrCreateSigningKey(dir);
    expect(b.created).toBe(false);
    expect(b.keyId).toBe(a.keyId);
    expect(b.warnings).toEqual([]);
  });

  it('a configured key file is used as is (its public half still lands in <dataDir>/keys); wrong keys are named', async () => {
    const dir = await fresh();
    const { privateKey } = crypto.generateKeyPairSync('ed25519');
    const file = path.join(dir, 'my-key.pem');
    await fs.writeFile(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o644 });
    const k = await loadOrCreateSigningKey(dir, file);
    expect(k.created).toBe(false);
    expect(k.keyId).toBe(keyIdOf(crypto.createPublicKey(privateKey)));
    expect(keyIdOf(await loadPublicKey(k.publicFile))).toBe(k.keyId);
    expect(k.warnings.join()).toMatch(/readable by others.*chmod 600/);
    await expect(fs.stat(path.join(dir, 'keys', 'ledger-ed25519.pem'))).rejects.toThrow(/ENOENT/);

    await expect(loadOrCreateSigningKey(dir, path.join(dir, 'missing.pem'))).rejects.toThrow(/cannot read the ledger signing key .*missing\.pem \(ENOENT\)/);
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
    await fs.writeFile(path.join(dir, 'rsa.pem'), rsa.export({ type: 'pkcs8', format: 'pem' }));
    await expect(loadOrCreateSigningKey(dir, path.join(dir, 'rsa.pem'))).rejects.toThrow(/rsa key; an Ed25519 key is needed/);
  });
});

describe('Checkpointer', () => {
  it('writes a checkpoint every N records, each signed and equal to an independently built tree', async () => {
    const dir = await fresh();
    const { records, key, checkpoints } = await buildCheckpointed(dir, 47, 10);
    // every 10, then the final one at close
    expect(checkpoints.map((c) => c.size)).toEqual([10, 20, 30, 40, 47]);
    expectGenuine(checkpoints, records, key.publicKey);
    for (const cp of checkpoints) {
      expect(cp.key_id).toBe(key.keyId);
      expect(crypto.verify(null, Buffer.from(`warden-checkpoint-v1\n${cp.size}\n${cp.root}\n${cp.ts}\n`), key.publicKey, Buffer.from(cp.sig, 'base64'))).toBe(true);
      expect(checkpointMessage(cp.size, cp.root, cp.ts).toString()).toBe(`warden-checkpoint-v1\n${cp.size}\n${cp.root}\n${cp.ts}\n`);
      expect(Object.keys(cp)).toEqual(['version', 'size', 'root', 'ts', 'last_seq', 'key_id', 'sig']);
    }
    const state = JSON.parse(await fs.readFile(path.join(dir, 'checkpoints.state'), 'utf8'));
    expect(state.frontier.size).toBe(47);
    expect(state.root).toBe(checkpoints[4].root);
  });

  it('writes one every T ms while records arrive, and none while idle; listeners see each one', async () => {
    const dir = await fresh();
    const key = await loadOrCreateSigningKey(dir);
    const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0 });
    const errors: string[] = [];
    const cp = await Checkpointer.open({ dir, key, every: 1000, intervalMs: 40, fsync: false, lastSeq: 0, onError: (e, w) => errors.push(`${w}: ${e.message}`) });
    const seen: number[] = [];
    cp.onCheckpoint((c) => { seen.push(c.size); });
    cp.onCheckpoint(() => { throw new Error('a broken publisher'); });
    cp.onCheckpoint(async () => { throw new Error('an async broken publisher'); });
    cp.add(await spool.append(events(3)));
    await sleep(150);
    await cp.idle();
    expect(seen).toEqual([3]);
    await sleep(150); // nothing new: no checkpoint
    expect(seen).toEqual([3]);
    cp.add(await spool.append(events(2)));
    await sleep(150);
    await cp.idle();
    expect(seen).toEqual([3, 5]);
    await spool.close();
    expect(await cp.close({ lastSeq: spool.lastSeq })).toMatchObject({ size: 5 }); // nothing new: the last one
    expect((await checkpointsIn(dir)).map((c) => c.size)).toEqual([3, 5]);
    expect(errors.filter((e) => /broken publisher/.test(e))).toHaveLength(4);
    expect(errors.every((e) => e.startsWith('checkpoint listener'))).toBe(true);
  });

  it('with minGapMs, a count-triggered checkpoint waits out the gap after the previous one and then covers everything since', async () => {
    const dir = await fresh();
    const key = await loadOrCreateSigningKey(dir);
    const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0 });
    const cp = await Checkpointer.open({ dir, key, every: 5, intervalMs: 3_600_000, minGapMs: 400, fsync: false, lastSeq: 0 });
    const seen: { size: number; at: number }[] = [];
    cp.onCheckpoint((c) => { seen.push({ size: c.size, at: performance.now() }); });
    cp.add(await spool.append(events(5))); // nothing written yet: due at once
    await cp.idle();
    expect(seen.map((c) => c.size)).toEqual([5]);
    for (let i = 0; i < 4; i++) cp.add(await spool.append(events(5))); // four counts' worth inside the gap
    await cp.idle();
    expect(seen.map((c) => c.size)).toEqual([5]);
    await sleep(600);
    await cp.idle();
    expect(seen.map((c) => c.size)).toEqual([5, 25]); // one checkpoint for all of them
    expect(seen[1].at - seen[0].at).toBeGreaterThanOrEqual(390);
    await spool.close();
    await cp.close({ lastSeq: spool.lastSeq });
  });

  it('resumes after a restart from the saved frontier, without re-reading the spool', async () => {
    const dir = await fresh();
    const first = await buildCheckpointed(dir, 23, 10);
    const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0 });
    const cp = await Checkpointer.open({ dir, key: first.key, every: 10, intervalMs: 3_600_000, fsync: false, lastSeq: spool.lastSeq });
    expect(cp.stats()).toMatchObject({ size: 23, readAtOpen: 0, written: 0, last: { size: 23 } });
    const more = await spool.append(events(12));
    cp.add(more);
    await cp.idle();
    await spool.close();
    await cp.close({ lastSeq: spool.lastSeq });
    const cps = await checkpointsIn(dir);
    expect(cps.map((c) => c.size)).toEqual([10, 20, 23, 35]);
    expectGenuine(cps, [...first.records, ...more], first.key.publicKey);
  });

  it('catches up on records appended after the last checkpoint (a crash before it was written)', async () => {
    const dir = await fresh();
    const first = await buildCheckpointed(dir, 20, 10);
    // The agent appended 7 more records and died before checkpointing them.
    let spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0 });
    const unseen = await spool.append(events(7));
    await spool.close();

    spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0 });
    const cp = await Checkpointer.open({ dir, key: first.key, every: 10, intervalMs: 3_600_000, fsync: false, lastSeq: spool.lastSeq });
    expect(cp.stats()).toMatchObject({ size: 27, readAtOpen: 7 });
    const after = await spool.append(events(4));
    cp.add(after);
    await cp.idle();
    await spool.close();
    await cp.close({ lastSeq: spool.lastSeq });
    const cps = await checkpointsIn(dir);
    expect(cps.map((c) => c.size)).toEqual([10, 20, 31]);
    expectGenuine(cps, [...first.records, ...unseen, ...after], first.key.publicKey);
  });

  it('rebuilds the frontier from the spool when the state file is gone or does not fit, and checks it against the last checkpoint', async () => {
    const dir = await fresh();
    const { key, records } = await buildCheckpointed(dir, 25, 10);
    await fs.rm(path.join(dir, 'checkpoints.state'));
    let cp = await Checkpointer.open({ dir, key, fsync: false, lastSeq: 25 });
    expect(cp.stats()).toMatchObject({ size: 25, readAtOpen: 25 });
    await cp.close();
    // A state claiming more than the checkpoints cover is not trusted.
    await fs.writeFile(path.join(dir, 'checkpoints.state'), JSON.stringify({ version: 1, root: '00', frontier: { size: 31, nodes: [] } }));
    cp = await Checkpointer.open({ dir, key, fsync: false, lastSeq: 25 });
    expect(cp.stats()).toMatchObject({ size: 25, readAtOpen: 25 });
    await cp.close();
    expectGenuine(await checkpointsIn(dir), records, key.publicKey);
  });

  it('fills gaps in what it is fed from the spool (records appended by another path)', async () => {
    const dir = await fresh();
    const key = await loadOrCreateSigningKey(dir);
    const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0 });
    const cp = await Checkpointer.open({ dir, key, every: 8, intervalMs: 3_600_000, fsync: false, lastSeq: 0 });
    const all: LedgerRecord[] = [];
    for (let i = 0; i < 6; i++) {
      const recs = await spool.append(events(3));
      all.push(...recs);
      if (i !== 2) cp.add(recs); // seqs 7..9 never reach the checkpointer
      await cp.idle();
    }
    await spool.close();
    await cp.close({ lastSeq: spool.lastSeq });
    const cps = await checkpointsIn(dir);
    expect(cps[cps.length - 1].size).toBe(18);
    expectGenuine(cps, all, key.publicKey);
  });

  it('cuts off a torn last checkpoint line (never published) at the next start', async () => {
    const dir = await fresh();
    const { key, records } = await buildCheckpointed(dir, 15, 10);
    const file = path.join(dir, 'checkpoints.jsonl');
    const before = await fs.readFile(file, 'utf8');
    await fs.appendFile(file, '{"version":1,"size":2');
    const cp = await Checkpointer.open({ dir, key, fsync: false, lastSeq: 15 });
    await cp.close();
    expect(await fs.readFile(file, 'utf8')).toBe(before);
    expectGenuine(await checkpointsIn(dir), records, key.publicKey);
  });

  it('refuses to sign over a spool that was rewritten or truncated after its last checkpoint', async () => {
    const dir = await fresh();
    const { key } = await buildCheckpointed(dir, 30, 10);
    const copy = await fresh();
    await fs.cp(dir, copy, { recursive: true });

    await rewriteAndRechain(dir, 12, (r) => { r.event.attempt = 9; });
    // With the saved frontier the agent reads nothing it already checkpointed (finding this is
    // `warden ledger verify`'s job); rebuilding the frontier from the spool finds it.
    const resumed = await Checkpointer.open({ dir, key, fsync: false, lastSeq: 30 });
    expect(resumed.stats().readAtOpen).toBe(0);
    await resumed.close();
    await fs.rm(path.join(dir, 'checkpoints.state'));
    await expect(Checkpointer.open({ dir, key, fsync: false, lastSeq: 30 })).rejects.toThrow(CheckpointMismatchError);
    await expect(Checkpointer.open({ dir, key, fsync: false, lastSeq: 30 })).rejects.toThrow(/no longer have the Merkle root signed in .*line 3/);

    await truncateSpool(copy, 26);
    await expect(Checkpointer.open({ dir: copy, key, fsync: false, lastSeq: 26 })).rejects.toThrow(/has 26 records but the last signed checkpoint .* covers 30: records 27\.\.30 are gone/);
  });

  it('refuses a checkpoint file whose last line is not a checkpoint', async () => {
    const dir = await fresh();
    const { key } = await buildCheckpointed(dir, 10, 10);
    await fs.appendFile(path.join(dir, 'checkpoints.jsonl'), '{"version":1}\n');
    await expect(Checkpointer.open({ dir, key, fsync: false, lastSeq: 10 })).rejects.toThrow(CheckpointError);
  });

  it('follows the live spool across segments and read-chunk boundaries, checking each seq', async () => {
    const dir = await fresh();
    const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0, segmentBytes: 4000 });
    const tail = new LeafTail(dir, 1, { chunkBytes: 97 }); // smaller than one line
    const got: string[] = [];
    const all: LedgerRecord[] = [];
    for (const n of [3, 1, 7, 12, 2]) {
      all.push(...(await spool.append(events(n))));
      for await (const leaf of tail.read(spool.lastSeq)) {
        expect(leaf.seq).toBe(got.length + 1);
        got.push(leaf.bytes.toString('utf8'));
      }
    }
    await spool.close();
    expect((await fs.readdir(path.join(dir, 'ledger'))).filter((f) => f.startsWith('seg-')).length).toBeGreaterThan(3);
    expect(got).toEqual(all.map((r) => serializeRecord(r).slice(0, -1)));
    // Started mid-segment, it skips to its seq; a renamed segment (seqs not where they belong) is refused.
    const mid = new LeafTail(dir, 9);
    const some: number[] = [];
    for await (const leaf of mid.read(11)) some.push(leaf.seq);
    expect(some).toEqual([9, 10, 11]);
    const segs = (await fs.readdir(path.join(dir, 'ledger'))).filter((f) => f.startsWith('seg-')).sort();
    await fs.rename(path.join(dir, 'ledger', segs[1]), path.join(dir, 'ledger', 'seg-0000000000000002.jsonl'));
    await expect((async () => { for await (const _ of new LeafTail(dir, 2).read(3)); })()).rejects.toThrow(/where seq 2 belongs says seq \d+/);
  });

  it('what the spool read back equals what it was fed: one leaf per record line, byte for byte', async () => {
    const dir = await fresh();
    const { records } = await buildCheckpointed(dir, 12, 100);
    expect((await readAll(dir)).map((r) => r.hash)).toEqual(records.map((r) => r.hash));
  });
});
