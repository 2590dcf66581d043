/**
 * Final task states from Celery's Redis result backend: `celery-task-meta-<id>` keys, read with SCAN
 * + MGET only (never a pop, never a write: reading must not change what Celery sees). Idempotent, so
 * a rescan after a restart or a reconnect rebuilds the same terminal records.
 */
import type { Redis } from 'ioredis';
import { TERMINAL_STATUSES, type TaskMetaRecord } from './translate.js';

export const META_PREFIX = 'celery-task-meta-';

export interface ScanWindow {
  /** Only tasks done at or after this time (ms). */
  sinceMs: number;
  /** Only tasks done at or before this time (ms): the live event for a task just done is still on its way. */
  untilMs: number;
}

/** Parses Celery's `date_done` (ISO 8601, with or without an offset; naive means UTC). */
export function dateDoneMs(v: string | null | undefined): number | null {
  if (!v) return null;
  const ms = Date.parse(/(Z|[+-]\d\d:\d\d)$/.test(v) ? v : `${v}Z`);
  return Number.isFinite(ms) ? ms : null;
}

/** Terminal task states done inside the window, oldest first; `skip` filters task ids already recorded. */
export async function scanTerminal(redis: Redis, w: ScanWindow, skip: (taskId: string) => boolean, count = 500): Promise<TaskMetaRecord[]> {
  const out: TaskMetaRecord[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${META_PREFIX}*`, 'COUNT', count);
    cursor = next;
    const wanted = keys.filter((k) => !skip(k.slice(META_PREFIX.length)));
    if (wanted.length === 0) continue;
    const values = await redis.mget(...wanted);
    values.forEach((v, i) => {
      if (!v) return;
      let m: TaskMetaRecord;
      try { m = JSON.parse(v) as TaskMetaRecord; } catch { return; }
      if (!m || typeof m !== 'object' || !TERMINAL_STATUSES.has(m.status)) return;
      m.task_id ??= wanted[i].slice(META_PREFIX.length);
      const done = dateDoneMs(m.date_done);
      if (done === null || done < w.sinceMs || done > w.untilMs) return;
      out.push(m);
    });
  } while (cursor !== '0');
  return out.sort((a, b) => (dateDoneMs(a.date_done) ?? 0) - (dateDoneMs(b.date_done) ?? 0));
}
