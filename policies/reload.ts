/**
 * Reloads the policy file when its bytes change, without a restart. Polls (fs.watchFile) rather
 * than relying on inotify, which misses editors' rename-over saves and does not work on every mount.
 * A file that does not validate is reported and the previous policies stay in force.
 */
import { readFile } from 'node:fs/promises';
import { unwatchFile, watchFile } from 'node:fs';
import { createHash } from 'node:crypto';
import { parsePolicies, PolicyFileError, type LoadedPolicies } from './loader.js';

export interface ReloadHandlers {
  loaded(p: LoadedPolicies): void;
  rejected(file: string, problems: string[]): void;
}

export class PolicyFileWatcher {
  private digest: string;
  private busy = false;
  private readonly listener = () => { void this.check(); };

  constructor(private readonly file: string, current: LoadedPolicies, private readonly h: ReloadHandlers, intervalMs = 1000) {
    this.digest = current.digest;
    watchFile(file, { interval: intervalMs, persistent: false }, this.listener);
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
    unwatchFile(this.file, this.listener);
  }
}
