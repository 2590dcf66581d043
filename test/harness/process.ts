import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { unwatchPid, watchPid } from './watchdog.js';

export interface ManagedProcessOptions {
  /** Short name, used for the log file (`<dir>/<name>.log`) and in error messages. */
  name: string;
  /** Absolute path of the executable. */
  command: string;
  args: readonly string[];
  /** Data dir; stdout and stderr are appended to `<dir>/<name>.log` (appended, so restarts keep history). */
  dir: string;
  /** Readiness probe, polled until it resolves true. A throw counts as "not yet". */
  ready: () => Promise<boolean>;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  readyTimeoutMs?: number;
  pollIntervalMs?: number;
  /** Time between SIGTERM and SIGKILL in stop(). */
  stopGraceMs?: number;
  /** Other log files the server writes itself, included in error messages. */
  extraLogFiles?: readonly string[];
  /**
   * Start the server in its own process group and signal the whole group (stop, kill9, orphan
   * protection): for servers started through a wrapper script that forks the real process
   * (rabbitmq-server runs the Erlang VM as a child of a shell).
   */
  processGroup?: boolean;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

/** The server exited or never became ready. `logTail` holds the end of its logs. */
export class ProcessStartError extends Error {
  override readonly name = 'ProcessStartError';
  constructor(
    message: string,
    readonly logTail: string,
    readonly exit?: ExitInfo,
  ) {
    super(`${message}\n--- log tail ---\n${logTail}`);
  }
}

/** waitFor() gave up. */
export class WaitTimeoutError extends Error {
  override readonly name = 'WaitTimeoutError';
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves to `value` after `ms` unless cancelled; cancelled timers do not hold the process open. */
function timer<T>(ms: number, value: T): { promise: Promise<T>; cancel: () => void } {
  let handle: NodeJS.Timeout | undefined;
  const promise = new Promise<T>((r) => {
    handle = setTimeout(() => r(value), ms);
  });
  return { promise, cancel: () => clearTimeout(handle) };
}

/** Polls `fn` until it returns a truthy value (returned) or the timeout passes. Throws are retried. */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string; retryErrors?: boolean } = {},
): Promise<NonNullable<T>> {
  const { timeoutMs = 10_000, intervalMs = 100, what = 'condition', retryErrors = true } = opts;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      if (!retryErrors) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new WaitTimeoutError(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(intervalMs);
  }
}

// ---- orphan protection -------------------------------------------------------------------------
// Every live child is killed when this process exits or gets SIGINT/SIGTERM; the watchdog covers
// the case where this process is SIGKILLed and no hook runs.

/** Live children by the PID to signal (negative: a process group). */
const live = new Map<number, ChildProcess>();
let hooksInstalled = false;

function killAllNow(): void {
  for (const [pid] of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = (): void => {
      killAllNow();
      // Having a listener suppresses Node's default "die on signal"; restore it if we are the only one.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

// -------------------------------------------------------------------------------------------------

/**
 * One server process: spawned with output to a log file in its data dir, polled until ready,
 * stopped by PID (SIGTERM, then SIGKILL after a grace period), restartable with the same arguments
 * (so the same port and data dir).
 */
export class ManagedProcess {
  readonly logFile: string;
  /** Milliseconds from spawn to ready, for the most recent start. */
  lastStartMs = 0;
  private child: ChildProcess | undefined;
  private exitPromise: Promise<ExitInfo> | undefined;
  private exitInfo: ExitInfo | undefined;

  constructor(readonly options: ManagedProcessOptions) {
    this.logFile = path.join(options.dir, `${options.name}.log`);
  }

  /** Spawns and waits until ready. */
  static async start(options: ManagedProcessOptions): Promise<ManagedProcess> {
    const p = new ManagedProcess(options);
    await p.start();
    return p;
  }

  /** PID of the running process, undefined once it has exited. */
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && this.exitInfo === undefined;
  }

  /** How the last run ended (undefined while running or before the first start). */
  get lastExit(): ExitInfo | undefined {
    return this.exitInfo;
  }

  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.options.name} is already running (PID ${this.child?.pid})`);
    installHooks();
    const { command, args, dir, env, cwd } = this.options;
    const started = Date.now();
    const fd = fs.openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(command, [...args], { cwd: cwd ?? dir, env: env ?? process.env, stdio: ['ignore', fd, fd], detached: this.options.processGroup === true });
    } finally {
      fs.closeSync(fd); // the child has its own copy
    }
    this.child = child;
    this.exitInfo = undefined;
    this.exitPromise = new Promise<ExitInfo>((resolve) => {
      const done = (info: ExitInfo): void => {
        if (child.pid !== undefined) {
          const target = this.target(child.pid);
          if (this.options.processGroup) signal(target, 'SIGKILL'); // what the group leader left behind
          live.delete(target);
          unwatchPid(target);
        }
        if (this.child === child) this.exitInfo = info;
        resolve(info);
      };
      child.once('exit', (code, signal) => done({ code, signal }));
      child.once('error', (error) => done({ code: null, signal: null, error }));
    });
    if (child.pid !== undefined) {
      live.set(this.target(child.pid), child);
      watchPid(this.target(child.pid));
    }
    await this.waitReady(started);
    this.lastStartMs = Date.now() - started;
  }

  /** What signals go to: the PID, or its process group (negative) with `processGroup`. */
  private target(pid: number): number {
    return this.options.processGroup ? -pid : pid;
  }

  private async waitReady(started: number): Promise<void> {
    const { name, ready, readyTimeoutMs = 30_000, pollIntervalMs = 50 } = this.options;
    const deadline = started + readyTimeoutMs;
    const exited = this.exitPromise!.then((e) => ({ exited: e }));
    for (;;) {
      const probe = ready().then(
        (ok) => ({ ok }),
        () => ({ ok: false }),
      );
      const probeTimeout = timer(5_000, { ok: false }); // a hung probe counts as "not yet"
      const r = await Promise.race([probe, exited, probeTimeout.promise]);
      probeTimeout.cancel();
      if ('exited' in r) {
        const e = r.exited;
        const how = e.error ? `failed to spawn: ${e.error.message}` : `exited (code ${e.code}, signal ${e.signal})`;
        throw new ProcessStartError(`${name} ${how} before it was ready; command: ${this.commandLine()}`, this.logTail(), e);
      }
      if (r.ok) return;
      if (Date.now() > deadline) {
        await this.kill9();
        throw new ProcessStartError(
          `${name} was not ready after ${readyTimeoutMs} ms; command: ${this.commandLine()}`,
          this.logTail(),
        );
      }
      await sleep(pollIntervalMs);
    }
  }

  /** SIGTERM by PID, SIGKILL after the grace period, then waits for the exit. No-op if not running. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running || child.pid === undefined) return;
    signal(this.target(child.pid), 'SIGTERM');
    const grace = timer(this.options.stopGraceMs ?? 10_000, undefined);
    const graceful = await Promise.race([this.exitPromise!, grace.promise]);
    grace.cancel();
    if (!graceful) {
      signal(this.target(child.pid), 'SIGKILL');
      await this.exitPromise;
    }
  }

  /** SIGKILL by PID (a crash, for tests of recovery), then waits for the exit. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child || !this.running || child.pid === undefined) return;
    signal(this.target(child.pid), 'SIGKILL');
    await this.exitPromise;
  }

  /** Stops (if running) and starts again with the same arguments: same ports, same data dir. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** The last `maxBytes` of the log file and of each extra log file. */
  logTail(maxBytes = 4000): string {
    return [this.logFile, ...(this.options.extraLogFiles ?? [])]
      .map((file) => `[${file}]\n${tailOf(file, maxBytes)}`)
      .join('\n');
  }

  private commandLine(): string {
    return [this.options.command, ...this.options.args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

function tailOf(file: string, maxBytes: number): string {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const len = Math.min(size, maxBytes);
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, size - len);
      return buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    return `(unreadable: ${(err as Error).message})`;
  }
}

/** True if a start failed because another process grabbed the port between freePort() and bind. */
export function isAddressInUse(err: unknown): boolean {
  return err instanceof ProcessStartError && /address already in use|EADDRINUSE|Cannot assign requested|bind.*in use/i.test(err.logTail);
}

/** Runs `attempt` (which picks fresh ports each time) up to `tries` times while it fails on a port clash. */
export async function retryOnPortClash<T>(attempt: () => Promise<T>, tries = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (i >= tries || !isAddressInUse(err)) throw err;
    }
  }
}

/** True if a process with this PID exists (signal 0 probe). */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
