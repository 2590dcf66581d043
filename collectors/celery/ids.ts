/** Deterministic event IDs: the same Celery event (redelivered, re-read, reconciled) gets the same ID. */
import { ulid } from 'ulid';
import { sha256Hex } from '../../core/hash.js';

/** A ULID: the event's own time, then 80 bits from sha256 of what names the event. */
export function celeryEventId(ts: number, ...parts: (string | number)[]): string {
  const hex = sha256Hex(`warden.celery\0${parts.join('\0')}`);
  let i = 0;
  return ulid(ts, () => parseInt(hex.slice(2 * (i % 32), 2 * (i++ % 32) + 2), 16) / 256);
}
