/**
 * The Python worker hook (hooks/celery, package warden-celery) under `npm test`: a pinned venv with
 * the package installed editable with its extras, then its pytest suite (real Redis, NATS JetStream,
 * Temporal dev server and prefork Celery workers, started by the tests themselves). Also holds the
 * Python side to the TypeScript contracts: the vectors its unit tests compare against are recomputed
 * here from core/*.ts, and the `warden` Temporal header a Celery task wrote is decoded by
 * hooks/temporal/headers.ts readStamp.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ensurePyVenv, PY_PINS } from '../../harness/index.js';
import { tempDir } from '../../harness/tmp.js';
import { Redactor } from '../../../core/redact.js';
import { canonicalJson } from '../../../core/canonical.js';
import { stableSpanId, traceIdForCorrelation } from '../../../core/ids.js';
import { breakerKey } from '../../../core/breakers.js';
import { readStamp } from '../../../hooks/temporal/headers.js';

const repo = path.resolve(import.meta.dirname, '../../..');
const pkg = path.join(repo, 'hooks/celery');

/** What hooks/celery/tests/vectors_ts.json must hold: computed from the TypeScript code now. */
function tsVectors(): unknown {
  const r = new Redactor({ paths: ['user.ssn_like', 'messages.*.content'], maxDepth: 32 });
  const texts = ['mail bob@example.com now', 'Authorization: Bearer abc.def-ghi', 'key sk-abcdefghijklmnop1234 end', 'password=hunter2; next', 'card 4111 1111 1111 1111 ok', 'card 4111 1111 1111 1112 no', 'AKIAABCDEFGHIJKLMNOP', 'plain text 123', 'token: "xyz"'];
  const value = { user: { ssn_like: 'x', name: 'Ann', password: 'p', api_key: 'k' }, messages: [{ content: 'hi', role: 'u' }], note: 'write to a@b.io', n: [1, 2.5, 1e21, 1e-7, 0.1, -0, 123456789012345680000], 'é': true, b: null };
  return JSON.parse(JSON.stringify({
    texts: texts.map((t) => [t, r.redactText(t)]),
    value: r.redactValue(value),
    canonical: canonicalJson({ b: [1, 2.5, 1e21, 1e-7, 0.1, 1.5e300, 5e-324, 100, -3], a: 'x"\n\u0001é😀', 'é': 1, z: { y: null, x: true } }),
    trace: traceIdForCorrelation('cid-1'), span: stableSpanId('celery', 'task', 'abc', 0),
    keys: [breakerKey({ system: 'celery', kind: 'task', name: 'tasks.add' }), breakerKey({ system: 'celery', kind: 'queue', name: 'a b..c/é😀*' })],
  }));
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: repo, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => { output += b.toString(); });
    child.stderr.on('data', (b: Buffer) => { output += b.toString(); });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

describe('warden_celery (Python)', () => {
  it('its contract vectors are what core/*.ts computes', () => {
    const stored = JSON.parse(fs.readFileSync(path.join(pkg, 'tests/vectors_ts.json'), 'utf8'));
    expect(stored).toEqual(tsVectors());
  });

  it('passes its pytest suite, and the Temporal header it writes is read by hooks/temporal', async () => {
    const venv = await ensurePyVenv('celery-hook', PY_PINS.celeryHook, [`${pkg}[nats,temporal,test]`]);
    const tmp = await tempDir('celery-py');
    const artifacts = path.join(tmp.path, 'artifacts');
    try {
      const { code, output } = await run(venv.python, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', 'hooks/celery/tests'], {
        ...process.env, WARDEN_TEST_ARTIFACTS: artifacts, PYTHONDONTWRITEBYTECODE: '1',
        WARDEN_NATS_URL: '', WARDEN_INGEST_URL: '', WARDEN_INGEST_TOKEN: '', WARDEN_ENFORCE_BREAKERS: '',
      });
      const summary = output.trim().split('\n').pop() ?? '';
      if (code !== 0 || !/^\d+ passed/.test(summary) || /failed|error/.test(summary)) console.log(output);
      expect(code).toBe(0);
      const passed = Number(/^(\d+) passed/.exec(summary)?.[1] ?? 0);
      expect(passed).toBeGreaterThan(0);
      expect(summary).not.toMatch(/failed|error|skipped/);

      const art = JSON.parse(fs.readFileSync(path.join(artifacts, 'temporal-warden-header.json'), 'utf8'));
      const payload = {
        metadata: Object.fromEntries(Object.entries(art.metadata as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
        data: Buffer.from(art.data, 'base64'),
      };
      expect(readStamp({ warden: payload })).toEqual({ cid: art.expect_cid, tp: art.expect_tp });
    } finally {
      await tmp.cleanup();
    }
  }, 20 * 60_000);
});
