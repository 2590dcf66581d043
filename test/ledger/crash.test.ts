/**
 * Real process failures, in child processes running the compiled ledger: SIGKILL in the middle of
 * continuous appends, and a write that fails because the file-size limit (ulimit -f) is reached.
 *
 * The ledger is compiled into a private temp directory rather than into dist/: other suites build
 * dist/ concurrently, and a type error elsewhere in the project must not stop this test.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Spool, verifyLedger } from '../../ledger/index.js';
import { event, readAll, removeDir, segmentFiles, tempDir } from '../harness/ledger.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let build: string;
const dirs: string[] = [];

beforeAll(async () => {
  build = await tempDir();
  await promisify(execFile)(process.execPath, [
    path.join(ROOT, 'node_modules/typescript/bin/tsc'),
    '--outDir', path.join(build, 'out'), '--rootDir', ROOT, '--module', 'NodeNext', '--moduleResolution', 'NodeNext',
    '--target', 'ES2022', '--strict', '--skipLibCheck', '--esModuleInterop', '--types', 'node',
    path.join(ROOT, 'ledger/index.ts'),
  ], { cwd: ROOT });
  await fs.writeFile(path.join(build, 'package.json'), '{"type":"module"}\n');
  await fs.symlink(path.join(ROOT, 'node_modules'), path.join(build, 'node_modules'), 'dir');
  await fs.writeFile(path.join(build, 'events.mjs'), `
import { makeEvent } from './out/core/event.js';
let n = 0;
export function make(count) {
  return Array.from({ length: count }, () => makeEvent({
    kind: 'job.completed', source: 'bullmq', correlation_id: 'wc_crash_' + (n % 13), queue: 'emails',
    job_id: 'job-' + n++, job_name: 'send', attempt: 1, duration_ms: 3.5, model: 'gpt-4o',
    input: { to: 'user@example.com', body: 'x'.repeat(120) }, attrs: { tenant: 'acme' },
  }));
}
`);
}, 120_000);

afterAll(async () => {
  for (const d of [build, ...dirs]) if (d) await removeDir(d);
});

async function dataDir(): Promise<string> {
  const d = await tempDir();
  dirs.push(d);
  return d;
}

/** Appends from 8 concurrent producers forever, printing `seq hash` for every acknowledged record. */
const APPENDER = `
import { Spool } from './out/ledger/index.js';
import { make } from './events.mjs';
const spool = await Spool.open({ dir: process.argv[2], segmentBytes: 128 * 1024, groupCommitMs: 1 });
process.stdout.write('ready ' + spool.lastSeq + '\\n');
let k = 0;
async function producer() {
  for (;;) {
    const records = await spool.append(make(1 + (k++ % 7)));
    process.stdout.write(records.map((r) => r.seq + ' ' + r.hash).join('\\n') + '\\n');
  }
}
for (let p = 0; p < 8; p++) producer();
`;

/** Runs the appender, SIGKILLs it after `acks` acknowledged records, returns what it acknowledged. */
async function appendUntilKilled(dir: string, acks: number): Promise<{ acked: Map<number, string>; startSeq: number }> {
  await fs.writeFile(path.join(build, 'appender.mjs'), APPENDER);
  const child = spawn(process.execPath, [path.join(build, 'appender.mjs'), dir], { cwd: build, stdio: ['ignore', 'pipe', 'pipe'] });
  const acked = new Map<number, string>();
  let startSeq = -1;
  let buffered = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() as string; // a line cut by the kill is not an acknowledgement
      for (const line of lines) {
        if (line.startsWith('ready ')) startSeq = Number(line.slice(6));
        else {
          const [seq, hash] = line.split(' ');
          acked.set(Number(seq), hash);
        }
      }
      if (acked.size >= acks) resolve();
    });
    child.on('exit', () => reject(new Error(`appender exited early: ${stderr}`)));
  });
  // Kill at an arbitrary point of the write/fsync cycle.
  await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 30)));
  child.kill('SIGKILL');
  expect(await exited).toBe('SIGKILL');
  return { acked, startSeq };
}

describe('crash safety', () => {
  it('keeps every acknowledged record through kill -9, and the chain continues', async () => {
    const dir = await dataDir();
    let expectedStart = 0;
    for (let round = 0; round < 3; round++) {
      const { acked, startSeq } = await appendUntilKilled(dir, 3000);
      expect(startSeq).toBe(expectedStart);
      const maxAcked = Math.max(...acked.keys());

      const spool = await Spool.open({ dir, segmentBytes: 128 * 1024 }); // the dead child's lock is stale
      expect(spool.lastSeq).toBeGreaterThanOrEqual(maxAcked);
      expect(spool.recovery.lastSeq).toBe(spool.lastSeq);
      const onDisk = new Map((await readAll(dir)).map((r) => [r.seq, r.hash]));
      for (const [seq, hash] of acked) expect(onDisk.get(seq), `acknowledged seq ${seq}`).toBe(hash);
      expect(onDisk.size).toBe(spool.lastSeq);

      const [next] = await spool.append([event()]);
      expect(next.seq).toBe(spool.lastSeq);
      expect(next.seq).toBe(onDisk.size + 1);
      expectedStart = spool.lastSeq;
      await spool.close();
      const verified = await verifyLedger(dir);
      expect(verified, verified.problem?.message).toMatchObject({ ok: true, lastSeq: expectedStart });
    }
    expect((await segmentFiles(dir)).length).toBeGreaterThan(3);
  }, 120_000);

  it('rolls a failed write back and keeps appending (file-size limit reached)', async () => {
    const dir = await dataDir();
    const script = `
import fs from 'node:fs';
import { Spool } from './out/ledger/index.js';
import { make } from './events.mjs';
const spool = await Spool.open({ dir: process.argv[2], groupCommitMs: 0 });
const seg = process.argv[2] + '/ledger/seg-0000000000000001.jsonl';
const a = await spool.append(make(20));
const sizeA = fs.statSync(seg).size;
// Two appends in one batch that together pass the 64 KiB limit: the write is cut short, then fails.
const failed = await Promise.allSettled([spool.append(make(60)), spool.append(make(60))]);
const sizeAfter = fs.statSync(seg).size;
const lastSeqAfter = spool.lastSeq;
const headAfter = spool.headHash;
const c = await spool.append(make(5));
await spool.close();
console.log(JSON.stringify({
  aLast: a.at(-1).seq, aHash: a.at(-1).hash, sizeA, sizeAfter, lastSeqAfter, headAfter,
  failed: failed.map((f) => f.status === 'rejected' ? f.reason.name + ': ' + f.reason.message : 'fulfilled'),
  c: c.map((r) => r.seq), cPrev: c[0].prev,
}));
`;
    await fs.writeFile(path.join(build, 'efbig.mjs'), script);
    const { stdout } = await promisify(execFile)('bash', ['-c', `ulimit -f 64 && exec "${process.execPath}" efbig.mjs "${dir}"`], { cwd: build });
    const out = JSON.parse(stdout);
    expect(out.failed).toHaveLength(2);
    for (const f of out.failed) expect(f).toMatch(/^SpoolWriteError: writing 120 record\(s\).*EFBIG/);
    expect(out.sizeAfter).toBe(out.sizeA);
    expect(out.lastSeqAfter).toBe(20);
    expect(out.headAfter).toBe(out.aHash);
    expect(out.c).toEqual([21, 22, 23, 24, 25]);
    expect(out.cPrev).toBe(out.aHash);
    expect(await verifyLedger(dir)).toMatchObject({ ok: true, records: 25 });
  }, 60_000);
});
