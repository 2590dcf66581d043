import { ManagedProcess } from './process.js';
import type { TempDir } from './tmp.js';

/** Lifecycle every started server exposes. */
export interface ServerControl {
  /** Throwaway data dir (logs are in it too). */
  readonly dir: string;
  /** PID of the running server, undefined while stopped. */
  readonly pid: number | undefined;
  readonly process: ManagedProcess;
  /** SIGTERM by PID, SIGKILL after a grace period; keeps the data dir so start() can resume. */
  stop(): Promise<void>;
  /** Starts a stopped server again on the same port(s) and data dir (for "outage then recovery"). */
  start(): Promise<void>;
  /** stop() then start(): same port(s), same data dir. */
  restart(): Promise<void>;
  /** SIGKILL by PID: a crash. */
  kill9(): Promise<void>;
  /** stop() and remove the data dir. (Dirs left over are removed when the process exits anyway.) */
  dispose(): Promise<void>;
}

export function serverControl(proc: ManagedProcess, tmp: TempDir): ServerControl {
  return {
    dir: tmp.path,
    get pid() {
      return proc.pid;
    },
    process: proc,
    stop: () => proc.stop(),
    start: () => proc.start(),
    restart: () => proc.restart(),
    kill9: () => proc.kill9(),
    dispose: async () => {
      await proc.stop();
      await tmp.cleanup();
    },
  };
}

/** Runs `fn` with a fresh temp dir; removes the dir if `fn` throws. */
export async function inTempDir<T>(tmp: TempDir, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    await tmp.cleanup().catch(() => undefined);
    throw err;
  }
}
