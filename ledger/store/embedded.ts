/**
 * The embedded store: ClickHouse in-process through chdb (engine 26.x), on a worker thread
 * (embedded-worker.ts) so the agent's event loop never waits on the engine.
 *
 * Two facts of chdb shape this file:
 * - libchdb is process-wide and binds one data directory per process. A second store on the same
 *   directory shares it; one on a different directory is refused (StoreUnavailableError).
 * - When a worker that loaded chdb exits, Node unloads the addon, and the thread's exit handlers then
 *   call into the unmapped library: the process dies with SIGSEGV (measured on Node 20 with chdb 3.4,
 *   whether or not the session was closed first). Loading chdb once on the main thread as well keeps
 *   the library mapped for the life of the process, which makes worker exit safe. Loading costs
 *   60-130 ms once, on the first open.
 */
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { SqlStore, type SendMode } from './base.js';
import { StoreQueryError, StoreUnavailableError, clickHouseCode, sqlHead } from './errors.js';
import { COMMON_SETTINGS } from './store.js';
import { WORKER_SOURCE, type WorkerData, type WorkerFailure, type WorkerMessage, type WorkerRequest } from './embedded-worker.js';

export interface EmbeddedStoreOptions {
  /** The chdb data directory (created if missing). */
  path: string;
}

const require = createRequire(import.meta.url);
let chdbPath: string | null = null;

/** Resolves chdb and loads it on the main thread once (see the module comment). */
function loadChdb(target: string): string {
  if (chdbPath) return chdbPath;
  try {
    const resolved = require.resolve('chdb');
    require(resolved);
    chdbPath = resolved;
    return resolved;
  } catch (err) {
    throw new StoreUnavailableError(
      target,
      `the chdb package cannot be loaded (${(err as Error).message.split('\n')[0]}). chdb ships engines for ` +
        `Linux x64/arm64 (glibc) and macOS only; on other platforms configure a ClickHouse server URL instead.`,
      false,
      { cause: err },
    );
  }
}

const CONNECTION_ARGS = Object.entries(COMMON_SETTINGS).map(([k, v]) => `--${k}=${v}`);

interface Pending {
  resolve: (bytes: Uint8Array | null) => void;
  reject: (err: Error) => void;
  text: string;
}

/**
 * The one chdb worker of this process, shared by every EmbeddedStore open on its directory (two chdb
 * sessions on one directory in one process are allowed by chdb, but closing one of them disturbed the
 * other in our measurements, so the stores share one session instead).
 */
class EmbeddedEngine {
  readonly target: string;
  private worker: Worker | null = null;
  private starting: Promise<Worker> | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  refs = 0;

  constructor(readonly path: string) {
    this.target = `embedded ClickHouse (chdb) at ${path}`;
  }

  /** Starts the worker if there is none (first use, or after it died). */
  ensureWorker(): Promise<Worker> {
    if (this.worker) return Promise.resolve(this.worker);
    if (!this.starting) {
      this.starting = this.startWorker().finally(() => {
        this.starting = null;
      });
    }
    return this.starting;
  }

  private async startWorker(): Promise<Worker> {
    const resolved = loadChdb(this.target);
    await mkdir(this.path, { recursive: true });
    const workerData: WorkerData = { chdbUrl: pathToFileURL(resolved).href, path: this.path, args: CONNECTION_ARGS };
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData });
    const ready = await new Promise<WorkerFailure | undefined>((resolve, reject) => {
      const onMessage = (m: WorkerMessage) => {
        if (m.type !== 'ready') return;
        cleanup();
        resolve(m.error);
      };
      const onError = (err: Error) => {
        cleanup();
        reject(new StoreUnavailableError(this.target, `the chdb worker failed to start (${err.message})`, false, { cause: err }));
      };
      const onExit = (code: number) => {
        cleanup();
        reject(new StoreUnavailableError(this.target, `the chdb worker exited with code ${code} while starting`));
      };
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    });
    if (ready) {
      await worker.terminate();
      throw new StoreUnavailableError(this.target, openFailureHint(ready));
    }
    worker.on('message', (m: WorkerMessage) => this.onReply(m));
    worker.on('error', (err) => this.onWorkerGone(worker, `the chdb worker failed (${err.message})`));
    worker.on('exit', (code) => this.onWorkerGone(worker, `the chdb worker exited (code ${code})`));
    // The worker does not keep the process alive by itself; pending requests do (see refWorker()).
    worker.unref();
    this.worker = worker;
    return worker;
  }

  private onReply(m: WorkerMessage): void {
    if (m.type !== 'reply') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    this.refWorker();
    if (m.ok) p.resolve(m.bytes ? new Uint8Array(m.bytes) : null);
    else p.reject(mapFailure(m.error, p.text, this.target));
  }

  private onWorkerGone(worker: Worker, why: string): void {
    if (this.worker !== worker) return;
    this.worker = null;
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new StoreUnavailableError(this.target, `${why}; the next call starts a new one`, true));
    }
  }

  /** Keeps the process alive while requests are outstanding, and only then. */
  private refWorker(): void {
    if (!this.worker) return;
    if (this.pending.size > 0) this.worker.ref();
    else this.worker.unref();
  }

  async send(text: string, mode: SendMode): Promise<Uint8Array | null> {
    const worker = await this.ensureWorker();
    const id = this.nextId++;
    return new Promise<Uint8Array | null>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, text });
      this.refWorker();
      const req: WorkerRequest = { id, op: mode === 'rows' ? 'query' : 'exec', sql: text };
      worker.postMessage(req);
    });
  }

  /** Closes the chdb session after every request already sent, and waits for the thread to end. */
  async shutdown(): Promise<void> {
    const worker = this.worker ?? (this.starting ? await this.starting.catch(() => null) : null);
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    const id = this.nextId++;
    const closed = new Promise<void>((resolve) => {
      this.pending.set(id, { resolve: () => resolve(), reject: () => resolve(), text: 'close' });
    });
    this.refWorker();
    worker.postMessage({ id, op: 'close' } satisfies WorkerRequest);
    await closed;
    const timer = setTimeout(() => void worker.terminate(), 10_000);
    await exited;
    clearTimeout(timer);
    this.worker = null;
  }
}

/** This process's engine; chdb binds one data directory per process. */
let engine: EmbeddedEngine | null = null;
let engineClosing: Promise<void> | null = null;

export class EmbeddedStore extends SqlStore {
  readonly kind = 'embedded' as const;
  readonly target: string;
  readonly path: string;

  private constructor(private readonly engine: EmbeddedEngine) {
    super();
    this.path = engine.path;
    this.target = engine.target;
  }

  /**
   * Opens (and creates) the data directory and starts the worker, or shares the worker of a store
   * already open on the same directory. Another directory while one is open: StoreUnavailableError.
   */
  static async open(options: EmbeddedStoreOptions): Promise<EmbeddedStore> {
    const dir = path.resolve(options.path);
    if (engineClosing) await engineClosing;
    if (engine && engine.path !== dir) {
      throw new StoreUnavailableError(
        `embedded ClickHouse (chdb) at ${dir}`,
        `this process already has chdb open at ${engine.path}, and chdb allows one active data directory per process: ` +
          `close the stores on that directory first, or configure a ClickHouse server URL`,
      );
    }
    const e = engine ?? new EmbeddedEngine(dir);
    engine = e;
    e.refs++;
    try {
      await e.ensureWorker();
    } catch (err) {
      e.refs--;
      if (e.refs === 0 && engine === e) engine = null;
      throw err;
    }
    return new EmbeddedStore(e);
  }

  protected send(text: string, mode: SendMode): Promise<Uint8Array | null> {
    return this.engine.send(text, mode);
  }

  protected async shutdown(): Promise<void> {
    const e = this.engine;
    e.refs--;
    if (e.refs > 0) return;
    if (engine === e) {
      engineClosing = e.shutdown().finally(() => {
        if (engine === e) engine = null;
        engineClosing = null;
      });
      await engineClosing;
    }
  }
}

function mapFailure(f: WorkerFailure, text: string, target: string): Error {
  const code = f.clickhouseCode ?? clickHouseCode(f.message);
  if (f.name === 'ChdbConnectionError' || f.name === 'ChdbClosedError') {
    return new StoreUnavailableError(target, f.message);
  }
  const detail = f.message.replace(/^Query failed:\s*/, '').split('\n')[0];
  return new StoreQueryError(sqlHead(text), code, detail);
}

function openFailureHint(f: WorkerFailure): string {
  if (/only one active data directory per process/.test(f.message)) {
    return `${f.message}. One process holds one chdb data directory: close the other embedded store first, or configure a ClickHouse server URL.`;
  }
  if (/lock|already running|in use/i.test(f.message)) {
    return `${f.message}. Another process (another Warden agent?) holds this data directory: stop it, or give this agent its own data directory.`;
  }
  return (
    `chdb could not open its data directory (${f.message}). The usual cause is another process using it ` +
    `(chdb locks the directory's status file; another Warden agent with the same data directory?); otherwise check ` +
    `that the directory is writable.`
  );
}
