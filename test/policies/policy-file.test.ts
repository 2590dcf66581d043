/** The policy file: validation names the bad key, the digest is the file's sha256, the CLI check exits 0/1. */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPolicyFile, parsePolicies, PolicyFileError } from '../../policies/loader.js';
import { PolicyFileWatcher } from '../../policies/reload.js';
import { tempDir, type TempDir } from '../harness/index.js';
import { until } from '../harness/bullmq.js';

const run = promisify(execFile);
const CLI = resolve('dist/agent/cli.js');
const EXAMPLE = resolve('policies/examples/default.yaml');

let dir: TempDir;
beforeAll(async () => { dir = await tempDir('warden-policy-file'); });
afterAll(async () => dir?.cleanup());

function problems(text: string): string[] {
  try {
    parsePolicies(text, 'p.yaml');
  } catch (err) {
    expect(err).toBeInstanceOf(PolicyFileError);
    return (err as PolicyFileError).problems;
  }
  throw new Error('expected the file to be rejected');
}

const HEAD = 'apiVersion: warden/v1\npolicies:\n';

describe('policy file validation', () => {
  it('the example file is valid, with defaults filled in and the sha256 of its bytes as digest', () => {
    const p = loadPolicyFile(EXAMPLE);
    expect(p.digest).toBe(createHash('sha256').update(readFileSync(EXAMPLE)).digest('hex'));
    expect(p.policies.map((x) => `${x.name}@${x.version}`)).toEqual(['bullmq-retry-storm@1', 'llm-activity-storm@2024-11-01', 'model-governance@3']);
    expect(p.policies[1].retryStorm).toMatchObject({ windowMs: 60000, budgetRatio: 0.2, minRetries: 10, synchronized: { bucketMs: 50 } });
    expect(p.policies[2].drift!.metrics[0]).toMatchObject({ name: 'score', method: 'auto' });
  });

  it('names the bad key: wrong type, unknown key, out of range, duplicate name, nothing to decide', () => {
    expect(problems(`${HEAD}  - { name: a, version: 1, retryStorm: { budgetRatio: lots } }\n`)).toEqual(['policies[0].retryStorm.budgetRatio: expected number, received string']);
    expect(problems(`${HEAD}  - { name: a, version: 1, retryStorm: {}, breaker: { actoin: pause } }\n`)).toEqual(['policies[0].breaker: unknown key(s) actoin']);
    expect(problems(`${HEAD}  - { name: a, version: 1, retryStorm: {} }\n  - { name: b, version: 1, retryStorm: { stalls: { maxShare: 2 } } }\n`)[0]).toMatch(/^policies\[1\]\.retryStorm\.stalls\.maxShare: .*<=1/);
    expect(problems(`${HEAD}  - { name: a, version: 1, retryStorm: {} }\n  - { name: a, version: 2, drift: {} }\n`)).toEqual(['policies[1].name: duplicate policy name "a"']);
    expect(problems(`${HEAD}  - { name: a, version: 1 }\n`)).toEqual(['policies[0]: a policy needs retryStorm or drift (or both)']);
    expect(problems('apiVersion: v2\npolicies: []\n')[0]).toMatch(/^apiVersion: /);
    expect(problems('policies: [unclosed\n')[0]).toMatch(/^not valid YAML at line/);
  });

  it('warden policy check: exit 0 on the example, exit 1 naming the key on a bad file', async () => {
    const ok = await run(process.execPath, [CLI, 'policy', 'check', EXAMPLE]);
    expect(ok.stdout).toMatch(/policy file is valid: 3 policies, sha256 [0-9a-f]{64}/);
    const bad = join(dir.path, 'bad.yaml');
    writeFileSync(bad, `${HEAD}  - { name: a, version: 1, retryStorm: { windowMs: soon } }\n`);
    const err = (await run(process.execPath, [CLI, 'policy', 'check', bad]).catch((e: unknown) => e)) as { code: number; stderr: string };
    expect(err.code).toBe(1);
    expect(err.stderr).toContain('policies[0].retryStorm.windowMs: expected number, received string');
  });

  it('reloads on change; a bad change is rejected once and the previous policies stay', async () => {
    const file = join(dir.path, 'live.yaml');
    writeFileSync(file, `${HEAD}  - { name: a, version: 1, retryStorm: {} }\n`);
    const first = loadPolicyFile(file);
    const loaded: string[] = [];
    const rejected: string[][] = [];
    const w = new PolicyFileWatcher(file, first, { loaded: (p) => loaded.push(p.policies[0].version), rejected: (_f, p) => rejected.push(p) }, 50);
    writeFileSync(file, `${HEAD}  - { name: a, version: 2, retryStorm: {} }\n`);
    await until(() => loaded.length === 1, 5000, 'reload');
    writeFileSync(file, `${HEAD}  - { name: a, version: 3, retryStorm: { minRetries: 0 } }\n`);
    await until(() => rejected.length === 1, 5000, 'rejection');
    await w.check();
    expect(loaded).toEqual(['2']);
    expect(rejected).toHaveLength(1);
    expect(rejected[0][0]).toMatch(/^policies\[0\]\.retryStorm\.minRetries: /);
    w.stop();
  });

  // CI: a poll read the file between an in-place save's truncate and its write, and rejected the empty file.
  it('judges a file only once its bytes hold still: a poll inside a save rejects nothing', async () => {
    const file = join(dir.path, 'saving.yaml');
    writeFileSync(file, `${HEAD}  - { name: a, version: 1, retryStorm: {} }\n`);
    const first = loadPolicyFile(file);
    const loaded: string[] = [];
    const rejected: string[][] = [];
    const w = new PolicyFileWatcher(file, first, { loaded: (p) => loaded.push(p.policies[0].version), rejected: (_f, p) => rejected.push(p) }, 60_000, 100);
    writeFileSync(file, ''); // the save has truncated the file ...
    const polled = w.check();
    await new Promise((r) => setTimeout(r, 30));
    writeFileSync(file, `${HEAD}  - { name: a, version: 2, retryStorm: {} }\n`); // ... and writes it within the settle time
    await polled;
    expect(rejected).toEqual([]);
    expect(loaded).toEqual([]);
    await w.check(); // the next poll sees the finished file
    expect(loaded).toEqual(['2']);
    // A file that stays unreadable is reported once, not on every poll.
    rmSync(file);
    await w.check();
    await w.check();
    expect(rejected).toHaveLength(1);
    expect(rejected[0][0]).toMatch(/^cannot read the file: /);
    w.stop();
  });
});
