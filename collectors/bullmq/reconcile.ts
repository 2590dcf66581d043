/**
 * When a queue's stream was trimmed past the collector's checkpoint, the events in between are gone.
 * BullMQ still holds finished jobs in its `completed` and `failed` sets (scored by finishedOn), so the
 * terminal record of every job that finished in the gap can be rebuilt from there.
 */
import type { Redis } from 'ioredis';
import { queueKey } from './keys.js';

export interface GapWindow { fromMs: number; toMs: number }

/** Clock slack between the worker that stamped finishedOn and the Redis server that stamped the stream. */
export const RECONCILE_SLACK_MS = 2000;

export interface FinishedJob { jobId: string; state: 'completed' | 'failed'; finishedOn: number }

export async function finishedInWindow(redis: Redis, prefix: string, queue: string, w: GapWindow): Promise<FinishedJob[]> {
  const from = w.fromMs - RECONCILE_SLACK_MS;
  const to = w.toMs + RECONCILE_SLACK_MS;
  const pipe = redis.pipeline();
  pipe.zrangebyscore(queueKey(prefix, queue, 'completed'), from, to, 'WITHSCORES');
  pipe.zrangebyscore(queueKey(prefix, queue, 'failed'), from, to, 'WITHSCORES');
  const [[e1, completed], [e2, failed]] = (await pipe.exec())!;
  if (e1) throw e1;
  if (e2) throw e2;
  const out: FinishedJob[] = [];
  const add = (flat: string[], state: FinishedJob['state']) => {
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ jobId: flat[i], state, finishedOn: Number(flat[i + 1]) });
  };
  add(completed as string[], 'completed');
  add(failed as string[], 'failed');
  return out.sort((a, b) => a.finishedOn - b.finishedOn);
}
