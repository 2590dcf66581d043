import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { unwatchDir, watchDir } from './watchdog.js';

export interface TempDir {
  readonly path: string;
  /** Removes the directory and everything in it. Safe to call twice. */
  cleanup(): Promise<void>;
}

// Dirs still present when the process exits are removed then, so a crashed run leaves no litter.
// Set WARDEN_KEEP_TMP=1 to keep them for post-mortems (server logs live in them).
const live = new Set<string>();
let hooked = false;

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    if (process.env.WARDEN_KEEP_TMP === '1') return;
    for (const dir of live) {
      try {
        fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
      } catch {
        // best effort: a server killed a moment ago may still be writing
      }
    }
  });
}

/** Creates a fresh directory under os.tmpdir(), named `warden-<prefix>-XXXXXX`. */
export async function tempDir(prefix: string): Promise<TempDir> {
  hookExit();
  const safe = prefix.replace(/[^A-Za-z0-9_.-]/g, '_');
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), `warden-${safe}-`));
  live.add(dir);
  watchDir(dir);
  return {
    path: dir,
    async cleanup() {
      live.delete(dir);
      unwatchDir(dir);
      if (process.env.WARDEN_KEEP_TMP === '1') return;
      await fs.promises.rm(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
    },
  };
}
