/**
 * Reloads the policy file when its bytes change, without a restart. Polls the file's digest rather
 * than relying on inotify (misses editors' rename-over saves, absent on some mounts) or on stat
 * changes (two same-size writes within one timestamp tick look identical). The file is small.
 * A file that does not validate is reported (once per version) and the previous policies stay in force.
 * A poll can land inside a save (an in-place write truncates first): new bytes count only once a
 * second read `settleMs` later finds the same bytes, so a half-written file is never judged.
 */
import { readFile } from 'node:fs/promises';
import { sha256Hex } from '../core/hash.js';
import { parsePolicies, PolicyFileError, type LoadedPolicies } from './loader.js';

export interface ReloadHandlers {
  loaded(p: LoadedPolicies): void;
  rejected(file: string, problems: string[]): void;
}

export class PolicyFileWatcher {
  private digest: string;
  private busy = false;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly file: string, current: LoadedPolicies, private readonly h: ReloadHandlers, intervalMs = 1000, private readonly settleMs = Math.min(200, intervalMs)) {
    this.digest = current.digest;
    this.timer = setInterval(() => { void this.check(); }, intervalMs);
    this.timer.unref();
  }

  /** Reads the file and applies it if its bytes changed and held still (also called by the poller). */
  async check(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const first = await this.read();
      if (first.digest === this.digest) return;
      await new Promise((r) => setTimeout(r, this.settleMs));
      const now = await this.read();
      if (now.digest !== first.digest) return; // still being written: the next poll looks again
      this.digest = now.digest; // a bad version is reported once, not on every poll
      if ('error' in now) {
        this.h.rejected(this.file, [`cannot read the file: ${now.error}`]);
        return;
      }
      try {
        this.h.loaded(parsePolicies(now.bytes, this.file));
      } catch (err) {
        this.h.rejected(this.file, err instanceof PolicyFileError ? err.problems : [(err as Error).message]);
      }
    } finally {
      this.busy = false;
    }
  }

  /** The file's bytes and digest; an unreadable file gets a digest of its error (reported once while it lasts). */
  private async read(): Promise<{ digest: string; bytes: Buffer } | { digest: string; error: string }> {
    try {
      const bytes = await readFile(this.file);
      return { digest: sha256Hex(bytes), bytes };
    } catch (err) {
      const error = (err as Error).message;
      return { digest: `unreadable: ${error}`, error };
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
