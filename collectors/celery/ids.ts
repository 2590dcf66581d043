/** Deterministic event IDs: the same Celery event (redelivered, re-read, reconciled) gets the same ID. */
import { derivedEventId, stableSpanId } from '../../core/ids.js';

/** A ULID: the event's own time, then 80 bits from sha256 of what names the event (core/ids.ts). */
export function celeryEventId(ts: number, ...parts: (string | number)[]): string {
  return derivedEventId(ts, 'warden.celery', ...parts);
}

/**
 * The span of one execution of a Celery task (retries = Celery's count before it), as the Python
 * worker hook computes it (`warden_celery.task_span_id`): the sidecar rebuilds the same span.
 */
export function celeryTaskSpanId(taskId: string, retries: number): string {
  return stableSpanId('celery', 'task', taskId, retries);
}
