/**
 * One writer per spool. Two processes appending to the same segment would interleave lines and fork
 * the chain, so the spool holds `<dir>/ledger/LOCK` (containing its pid) while open. A lock whose
 * process is gone (a crash, kill -9) is stale and taken over.
 */
import fs from 'node:fs/promises';
import { SpoolLockedError } from '../errors.js';

const heldHere = new Set<string>();

export async function acquireLock(lockPath: string): Promise<void> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fs.writeFile(lockPath, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      heldHere.add(lockPath);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number.parseInt(await fs.readFile(lockPath, 'utf8').catch(() => ''), 10);
    // Our own pid counts as live only if this process really holds it: after a container restart the
    // new agent often gets the dead one's pid (pid 1).
    const live = pid === process.pid ? heldHere.has(lockPath) : isAlive(pid);
    if (live) throw new SpoolLockedError(lockPath, pid);
    await fs.rm(lockPath, { force: true });
  }
  throw new SpoolLockedError(lockPath, Number.NaN);
}

export async function releaseLock(lockPath: string): Promise<void> {
  if (!heldHere.delete(lockPath)) return;
  await fs.rm(lockPath, { force: true });
}

function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of a live process holding the lock, or null (no lock, or a stale one). */
export async function liveHolder(lockPath: string): Promise<number | null> {
  const pid = Number.parseInt(await fs.readFile(lockPath, 'utf8').catch(() => ''), 10);
  return isAlive(pid) ? pid : null;
}
