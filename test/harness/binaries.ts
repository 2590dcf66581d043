import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Which Debian package (space-separated if several) provides each server binary the tests use. */
export const DEBIAN_PACKAGES: Readonly<Record<string, string>> = {
  'redis-server': 'redis-server',
  'redis-cli': 'redis-tools',
  'nats-server': 'nats-server',
  'clickhouse-server': 'clickhouse-server clickhouse-client',
  'clickhouse-client': 'clickhouse-server clickhouse-client',
  prometheus: 'prometheus',
  promtool: 'prometheus',
  alertmanager: 'prometheus-alertmanager',
  'prometheus-alertmanager': 'prometheus-alertmanager',
  amtool: 'prometheus-alertmanager',
  // The console's browser tests (playwright-core drives Debian's Chromium; no browser download).
  chromium: 'chromium',
};

// Debian renames some upstream binaries; look for these too.
const ALIASES: Readonly<Record<string, readonly string[]>> = {
  alertmanager: ['prometheus-alertmanager'],
};

/** Thrown when a binary is missing and we may not install it (not root). The message is the command to run. */
export class MissingBinaryError extends Error {
  override readonly name = 'MissingBinaryError';
  readonly command: string;
  constructor(
    readonly binary: string,
    readonly debianPackage: string,
  ) {
    const command = `sudo apt-get update && sudo apt-get install -y ${debianPackage}`;
    super(command);
    this.command = command;
  }
}

/** Thrown when we were root and ran apt-get, but the install failed or did not provide the binary. */
export class BinaryInstallError extends Error {
  override readonly name = 'BinaryInstallError';
  constructor(
    readonly binary: string,
    readonly debianPackage: string,
    detail: string,
  ) {
    super(
      `installing Debian package "${debianPackage}" for ${binary} failed; try by hand: ` +
        `apt-get update && apt-get install -y ${debianPackage}\n${detail}`,
    );
  }
}

const EXTRA_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Absolute path of `binary` (or a Debian alias of it) on PATH or the usual system dirs, else undefined. */
export function findBinary(binary: string): string | undefined {
  if (path.isAbsolute(binary)) return isExecutable(binary) ? binary : undefined;
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...EXTRA_DIRS];
  for (const name of [binary, ...(ALIASES[binary] ?? [])]) {
    for (const dir of dirs) {
      const candidate = path.join(dir, name);
      if (isExecutable(candidate)) return candidate;
    }
  }
  return undefined;
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

function run(cmd: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const keep = (b: Buffer): void => {
      output = (output + b.toString()).slice(-8000); // only the tail matters for an error message
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

// apt-get update is slow and the lists do not change within a test run: once per process.
let aptUpdated: Promise<void> | undefined;
// dpkg waits up to this long for its own lock if something outside the harness holds it.
const APT_LOCK_OPTS = ['-o', 'DPkg::Lock::Timeout=600'];

function aptUpdateOnce(binary: string, pkg: string): Promise<void> {
  aptUpdated ??= run('apt-get', [...APT_LOCK_OPTS, 'update']).then(({ code, output }) => {
    if (code !== 0) {
      aptUpdated = undefined;
      throw new BinaryInstallError(binary, pkg, `apt-get update exited ${code}:\n${output}`);
    }
  });
  return aptUpdated;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const LOCK_FILE = path.join(os.tmpdir(), 'warden-harness-apt.lock');

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Cross-process lock (O_EXCL lock file holding our PID): vitest runs test files in several worker
 * processes, and two concurrent apt-get runs would collide on dpkg's lock. A lock left by a dead
 * process is taken over.
 */
export async function withInstallLock<T>(fn: () => Promise<T>, timeoutMs = 15 * 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fh = await fs.promises.open(LOCK_FILE, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = Number.parseInt(await fs.promises.readFile(LOCK_FILE, 'utf8').catch(() => ''), 10);
      // An empty file may be a holder between open and write: only a known-dead PID is stale.
      if (Number.isInteger(holder) && holder > 0 && !pidAlive(holder)) {
        await fs.promises.unlink(LOCK_FILE).catch(() => undefined);
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for the install lock ${LOCK_FILE} (held by PID ${holder || '?'})`);
      }
      await sleep(250);
    }
  }
  try {
    return await fn();
  } finally {
    await fs.promises.unlink(LOCK_FILE).catch(() => undefined);
  }
}

// Within one process, installs also queue behind each other (the file lock is not re-entrant).
let installQueue: Promise<unknown> = Promise.resolve();

/**
 * Absolute path of `binary`. When it is missing: as root, installs `debianPackage` (space-separated
 * list allowed) with apt-get, one install at a time across processes; otherwise throws
 * MissingBinaryError whose message is the exact command to run.
 */
export async function ensureBinary(binary: string, debianPackage: string): Promise<string> {
  const found = findBinary(binary);
  if (found) return found;
  if (!isRoot()) throw new MissingBinaryError(binary, debianPackage);

  const install = installQueue.then(() =>
    withInstallLock(async () => {
      const already = findBinary(binary); // another process may have installed it while we waited
      if (already) return already;
      await aptUpdateOnce(binary, debianPackage);
      const pkgs = debianPackage.split(/\s+/).filter(Boolean);
      const { code, output } = await run('apt-get', [...APT_LOCK_OPTS, 'install', '-y', ...pkgs]);
      if (code !== 0) throw new BinaryInstallError(binary, debianPackage, `apt-get install exited ${code}:\n${output}`);
      const installed = findBinary(binary);
      if (!installed) {
        throw new BinaryInstallError(binary, debianPackage, `package installed but no "${binary}" on PATH or in /usr/sbin, /usr/bin`);
      }
      return installed;
    }),
  );
  installQueue = install.catch(() => undefined);
  return install;
}
