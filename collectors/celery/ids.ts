/** Deterministic event IDs: the same Celery event (redelivered, re-read, reconciled) gets the same ID. */
import { ulid } from 'ulid';
import { sha256Hex } from '../../core/hash.js';
import { stableSpanId } from '../../core/ids.js';

/** A ULID: the event's own time, then 80 bits from sha256 of what names the event. */
export function celeryEventId(ts: number, ...parts: (string | number)[]): string {
  const hex = sha256Hex(`warden.celery\0${parts.join('\0')}`);
  let i = 0;
  return ulid(ts, () => parseInt(hex.slice(2 * (i % 32), 2 * (i++ % 32) + 2), 16) / 256);
}

/**
 * The span of one execution of a Celery task (retries = Celery's count before it), as the Python
 * worker hook computes it (`warden_celery.task_span_id`): the sidecar rebuilds the same span.
 */
export function celeryTaskSpanId(taskId: string, retries: number): string {
  return stableSpanId('celery', 'task', taskId, retries);
}
