/**
 * The worker thread that owns chdb for the embedded store. Its source is evaluated by
 * `new Worker(WORKER_SOURCE, { eval: true })` rather than loaded from a file, so it is the same code
 * whether Warden runs from TypeScript sources (tests) or from dist/, and it needs no build step of its
 * own. It imports only worker_threads and chdb (whose resolved URL comes in workerData), dynamically.
 *
 * Protocol: the worker posts `{type: 'ready'}` or `{type: 'ready', error}` once, then answers each
 * request `{id, op: 'query' | 'exec', sql}` in order with `{id, ok: true, bytes?}` or
 * `{id, ok: false, error}`; `{id, op: 'close'}` closes the session and ends the thread.
 *
 * Requests run one at a time through chdb's `queryAsync`, which returns raw bytes (the synchronous
 * `query` returns a JS string, which would hide invalid UTF-8 and cut at NUL). So at most one libuv
 * pool thread is busy with chdb at any moment, and the agent's event loop never runs engine work.
 * Result bytes are transferred, not copied, to the main thread.
 */

export interface WorkerData {
  /** file: URL of chdb's entry point, resolved by the main thread. */
  chdbUrl: string;
  path: string;
  args: string[];
}

export type WorkerRequest = { id: number; op: 'query' | 'exec'; sql: string } | { id: number; op: 'close' };

export interface WorkerFailure {
  name: string;
  message: string;
  code?: string;
  clickhouseCode?: number;
}

export type WorkerMessage =
  | { type: 'ready'; error?: WorkerFailure }
  | { type: 'reply'; id: number; ok: true; bytes?: ArrayBuffer }
  | { type: 'reply'; id: number; ok: false; error: WorkerFailure };

export const WORKER_SOURCE = String.raw`
(async () => {
  // Dynamic imports only: the same text runs whether Node evaluates it as CommonJS or as an ES module
  // (a worker inherits --input-type=module from its parent, and then has no require()).
  const { parentPort, workerData } = await import('node:worker_threads');

  function failure(e) {
    return {
      name: String((e && e.name) || 'Error'),
      message: String((e && e.message) || e),
      code: e && typeof e.code === 'string' ? e.code : undefined,
      clickhouseCode: e && typeof e.clickhouseCode === 'number' ? e.clickhouseCode : undefined,
    };
  }

  let session = null;
  try {
    const mod = await import(workerData.chdbUrl);
    const chdb = mod.default || mod;
    session = new chdb.Session(workerData.path, { connectionArgs: workerData.args });
    parentPort.postMessage({ type: 'ready' });
  } catch (e) {
    parentPort.postMessage({ type: 'ready', error: failure(e) });
  }

  async function handle(req) {
    if (req.op === 'close') {
      try { if (session) session.close(); } catch (e) { /* close never throws, per chdb */ }
      session = null;
      parentPort.postMessage({ type: 'reply', id: req.id, ok: true });
      parentPort.close();
      return;
    }
    if (!session) {
      parentPort.postMessage({ type: 'reply', id: req.id, ok: false, error: { name: 'ChdbClosedError', message: 'the chdb session is not open' } });
      return;
    }
    try {
      const result = await session.queryAsync(req.sql, { format: req.op === 'query' ? 'JSONEachRow' : 'TabSeparated' });
      if (req.op === 'query') {
        const view = result.bytes();
        const copy = new Uint8Array(view.byteLength);
        copy.set(view);
        parentPort.postMessage({ type: 'reply', id: req.id, ok: true, bytes: copy.buffer }, [copy.buffer]);
      } else {
        parentPort.postMessage({ type: 'reply', id: req.id, ok: true });
      }
    } catch (e) {
      parentPort.postMessage({ type: 'reply', id: req.id, ok: false, error: failure(e) });
    }
  }

  let chain = Promise.resolve();
  parentPort.on('message', (req) => {
    chain = chain.then(() => handle(req));
  });
})();
`;
