/** BullMQ load for the sidecar scenarios: a queue that keeps its whole event stream, and plain workers. */
import { Queue, Worker } from 'bullmq';

export const JOB_DATA = { docId: 'doc', prompt: 'Summarize the quarterly report for the board, in three bullet points.', user: 'someone@example.com' };

export interface Load {
  queue: Queue;
  connection: { host: string; port: number; maxRetriesPerRequest: null };
  /** Adds `n` jobs in bulk (1000 per call). */
  add(n: number): Promise<void>;
  /** Starts plain workers (concurrency 100) and resolves once `n` more jobs completed; returns ms. */
  drain(n: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * A queue whose event stream is not trimmed below `maxLen` entries (BullMQ keeps ~10 000 by default).
 * Finished jobs are kept (BullMQ's default), so the sidecar reads every job's hash as it would live.
 */
export async function openLoad(port: number, name: string, maxLen: number): Promise<Load> {
  const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
  const queue = new Queue(name, { connection, streams: { events: { maxLen } } });
  await queue.waitUntilReady();
  const workers: Worker[] = [];
  return {
    queue,
    connection,
    async add(n) {
      for (let i = 0; i < n; i += 1000) {
        await queue.addBulk(Array.from({ length: Math.min(1000, n - i) }, () => ({ name: 'summarize', data: JOB_DATA, })));
      }
    },
    async drain(n) {
      let done = 0;
      let resolve!: () => void;
      const finished = new Promise<void>((r) => { resolve = r; });
      const t = performance.now();
      const worker = new Worker(name, async () => ({ ok: true }), { connection, concurrency: 100 });
      workers.push(worker);
      worker.on('completed', () => { if (++done === n) resolve(); });
      await finished;
      const ms = performance.now() - t;
      await worker.close();
      return ms;
    },
    async close() {
      await Promise.all(workers.map((w) => w.close()));
      await queue.close();
    },
  };
}
