/**
 * The checkpoint commands as an auditor runs them (`node dist/agent/cli.js ...` as a child process):
 * verify with checkpoints, prove / verify-proof with nothing but the public key, consistency, and
 * `warden start` writing checkpoints for records it finds in the spool.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Spool, readCheckpointFile, type LedgerRecord, type SigningKey } from '../../ledger/index.js';
import { startRedis } from '../harness/index.js';
import { Queue } from 'bullmq';
import { buildCheckpointed, rewriteAndRechain, truncateSpool } from './checkpoint-helpers.js';
import { events, removeDir, tempDir } from '../harness/ledger.js';

const CLI = path.resolve('dist/agent/cli.js');

function warden(args: string[], opts: { cwd?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { cwd: opts.cwd, env: { PATH: process.env.PATH }, timeout: 60_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

let base: string;
let dataDir: string;
let key: SigningKey;
let records: LedgerRecord[];

beforeAll(async () => {
  base = await tempDir();
  dataDir = path.join(base, 'data');
  ({ key, records } = await buildCheckpointed(dataDir, 30, 10));
});
afterAll(async () => {
  await removeDir(base);
});

async function copyOf(name: string): Promise<string> {
  const d = path.join(base, name);
  await fs.cp(dataDir, d, { recursive: true });
  return d;
}

describe('warden ledger verify (with checkpoints)', () => {
  it('exit 0: the chain and every checkpoint check out', async () => {
    const r = await warden(['ledger', 'verify', '--data-dir', dataDir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/ledger intact: 30 records/);
    expect(r.stdout).toContain(`checkpoints intact: 3 signed by key ${key.keyId}; Merkle roots match the spool for seq 1..30; 2 consistency proofs show the log only grew`);
  });

  it('exit 1 for a rewrite with recomputed hashes: the chain is fooled, the checkpoint names where', async () => {
    const d = await copyOf('rechained');
    await rewriteAndRechain(d, 14, (rec) => { rec.event.attempt = 2; });
    const r = await warden(['ledger', 'verify', '--data-dir', d]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/ledger intact: 30 records/);
    expect(r.stdout).toMatch(/LEDGER TAMPERED: checkpoint line 2 \(mismatch\) \[seq 11\.\.20\]: checkpoint line 2 \(size 20, /);
  });

  it('exit 1 for a truncated spool and for a forged checkpoint; exit 2 when no public key is at hand', async () => {
    const t = await copyOf('truncated');
    await truncateSpool(t, 17);
    const f = await copyOf('forged');
    const file = path.join(f, 'checkpoints.jsonl');
    await fs.writeFile(file, (await fs.readFile(file, 'utf8')).replace(/"ts":(\d+)/, (_, ts) => `"ts":${Number(ts) + 1}`));
    const k = await copyOf('nokey');
    await fs.rm(path.join(k, 'keys'), { recursive: true });
    const [r, g, n, withKey] = await Promise.all([
      warden(['ledger', 'verify', '--data-dir', t]),
      warden(['ledger', 'verify', '--data-dir', f]),
      warden(['ledger', 'verify', '--data-dir', k]),
      warden(['ledger', 'verify', '--data-dir', k, '--public-key', key.publicFile]),
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/ledger intact: 17 records/);
    expect(r.stdout).toMatch(/LEDGER TAMPERED: checkpoint line 2 \(truncated\) \[seq 18\.\.20\]/);

    expect(g.code).toBe(1);
    expect(g.stdout).toMatch(/LEDGER TAMPERED: checkpoint line 1 \(signature\)/);

    expect(n.code).toBe(2);
    expect(n.stderr).toMatch(/holds 3 signed checkpoints but no public key was found .* pass --public-key/);
    expect(withKey.code).toBe(0);
  });
});

describe('warden ledger prove / verify-proof / consistency', () => {
  it('a proof verifies with only the public key, from anywhere; a one-byte change fails at the audit path', async () => {
    const target = records[12];
    const proofFile = path.join(base, 'proof.json');
    const p = await warden(['ledger', 'prove', target.event.event_id, '--data-dir', dataDir, '--out', proofFile]);
    expect(p.code).toBe(0);
    expect(p.stdout).toMatch(/record seq 13 is leaf 12 of the checkpoint of size 30/);

    // An auditor's machine: the proof and the public key, nothing else (cwd without a data dir).
    const auditor = path.join(base, 'auditor');
    await fs.mkdir(auditor);
    await fs.copyFile(proofFile, path.join(auditor, 'proof.json'));
    await fs.copyFile(key.publicFile, path.join(auditor, 'ledger.pub.pem'));
    const doc = JSON.parse(await fs.readFile(proofFile, 'utf8'));
    doc.record = doc.record.replace('"job_name":"send-welcome"', '"job_name":"send-welcomf"');
    await fs.writeFile(path.join(auditor, 'bad.json'), JSON.stringify(doc));
    await fs.writeFile(path.join(auditor, 'junk.json'), '{not json');
    const [ok, bad, junk] = await Promise.all(['proof.json', 'bad.json', 'junk.json'].map((f) => warden(['ledger', 'verify-proof', f, '--public-key', 'ledger.pub.pem'], { cwd: auditor })));
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/signature ok: key [0-9a-f]{16} signed root/);
    expect(ok.stdout).toMatch(/inclusion ok: the record line is leaf 12/);
    expect(ok.stdout).toMatch(new RegExp(`proof valid: event ${target.event.event_id} \\(job.completed, .*\\) is record seq 13`));
    await expect(fs.stat(path.join(auditor, '.warden'))).rejects.toThrow(/ENOENT/);

    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/INVALID PROOF: step "inclusion" failed: .* the record \(or the path\) was altered/);

    expect(junk.code).toBe(1);
    expect(junk.stdout).toMatch(/INVALID PROOF: step "format"/);
  });

  it('consistency between the first and the last checkpoint, or any two sizes', async () => {
    const out = path.join(base, 'cons.json');
    const [r, s] = await Promise.all([
      warden(['ledger', 'consistency', '--data-dir', dataDir]),
      warden(['ledger', 'consistency', '--data-dir', dataDir, '--from', '7', '--to', '23', '--out', out]),
    ]);
    expect(r.code).toBe(0);
    const proof = JSON.parse(r.stdout);
    expect(proof).toMatchObject({ format: 'warden-consistency-proof-v1', from: { size: 10 }, to: { size: 30 } });
    expect(proof.proof.length).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/signature ok: size 10[\s\S]*consistent: size 10 .* is a prefix of size 30[\s\S]*the log only grew/);
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/seq 1\.\.7 are unchanged in the log of size 23/);
    expect(JSON.parse(await fs.readFile(out, 'utf8'))).toMatchObject({ from: { size: 7, checkpoint: null }, to: { size: 23 } });
  });
});

describe('warden start', () => {
  it('generates the key, checkpoints the records it finds in the spool and those it collects; verify covers them all', async () => {
    const redis = await startRedis();
    const d = path.join(base, 'agent');
    const spool = await Spool.open({ dir: d, fsync: false, groupCommitMs: 0 });
    await spool.append(events(25));
    await spool.close();
    const config = path.join(base, 'agent.yaml');
    await fs.writeFile(config, 'ledger:\n  checkpointIntervalMs: 100\n');
    const child = spawn(process.execPath, [CLI, 'start', '--config', config, '--data-dir', d], {
      env: { PATH: process.env.PATH, WARDEN_REDIS_URL: redis.url, WARDEN_QUEUES: 'emails', WARDEN_METRICS_ADDR: '127.0.0.1:0', WARDEN_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr.on('data', (b: Buffer) => { log += b.toString(); });
    const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
    const queue = new Queue('emails', { connection: { host: '127.0.0.1', port: Number(new URL(redis.url).port) } });
    const waitFor = async (what: string, ok: () => Promise<boolean>) => {
      const deadline = Date.now() + 15_000;
      while (!(await ok())) {
        if (Date.now() > deadline) throw new Error(`${what}; agent log:\n${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const sizes = async () => (await readCheckpointFile(path.join(d, 'checkpoints.jsonl'))).lines.map((l) => l.checkpoint!.size);
    try {
      await waitFor('no checkpoint of the 25 records found at start', async () => (await sizes()).includes(25));
      await waitFor('the collector did not start', async () => /collector started/.test(log));
      for (let i = 0; i < 10; i++) await queue.add('send', { i });
      // Ten job.added records reach the ledger through the pipeline, which tells the checkpointer
      // (Checkpointer.add): without that, no checkpoint beyond 25 would come before shutdown.
      await waitFor('no checkpoint of the collected records', async () => (await sizes()).some((n) => n >= 35));
    } finally {
      await queue.close();
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      await redis.dispose();
    }
    expect(log).toMatch(/generated the ledger signing key/);
    const logged = (msg: string) => log.split('\n').filter((l) => l.includes(msg)).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged('ledger checkpoints resumed')[0]).toMatchObject({ readBack: 25, lastCheckpoint: 0 });
    const cps = await sizes();
    expect(cps[0]).toBe(25);
    expect((await fs.stat(path.join(d, 'keys', 'ledger-ed25519.pem'))).mode & 0o777).toBe(0o600);
    const v = await warden(['ledger', 'verify', '--data-dir', d]);
    expect(v.code).toBe(0);
    const total = Number(/ledger intact: (\d+) records/.exec(v.stdout)?.[1]);
    expect(total).toBeGreaterThanOrEqual(35);
    expect(cps[cps.length - 1]).toBe(total);
    expect(logged('final ledger checkpoint')[0]).toMatchObject({ size: total });
    expect(v.stdout).toContain(`Merkle roots match the spool for seq 1..${total}`);
  });
});
