/**
 * Reloads the policy file when its bytes change, without a restart. Polls the file's digest rather
 * than relying on inotify (misses editors' rename-over saves, absent on some mounts) or on stat
 * changes (two same-size writes within one timestamp tick look identical). The file is small.
 * A file that does not validate is reported and the previous policies stay in force.
 */
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { parsePolicies, PolicyFileError, type LoadedPolicies } from './loader.js';

export interface ReloadHandlers {
  loaded(p: LoadedPolicies): void;
  rejected(file: string, problems: string[]): void;
}

export class PolicyFileWatcher {
  private digest: string;
  private busy = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly file: string, current: LoadedPolicies, private readonly h: ReloadHandlers, intervalMs = 1000) {
    this.digest = current.digest;
    this.timer = setInterval(() => { void this.check(); }, intervalMs);
    this.timer.unref();
  }

  /** Reads the file and applies it if its bytes changed (also called by the poller). */
  async check(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      let bytes: Buffer;
      try {
        bytes = await readFile(this.file);
      } catch (err) {
        this.h.rejected(this.file, [`cannot read the file: ${(err as Error).message}`]);
        return;
      }
      const digest = createHash('sha256').update(bytes).digest('hex');
      if (digest === this.digest) return;
      this.digest = digest; // a bad version is reported once, not on every poll
      try {
        this.h.loaded(parsePolicies(bytes, this.file));
      } catch (err) {
        this.h.rejected(this.file, err instanceof PolicyFileError ? err.problems : [(err as Error).message]);
      }
    } finally {
      this.busy = false;
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
