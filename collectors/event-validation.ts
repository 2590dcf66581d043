/**
 * Checks an event that arrived from outside the sidecar (NATS, HTTP ingest) against the one schema,
 * and says which field is wrong, so a bad producer can be told exactly what to fix.
 */
import { WardenEventSchema, type WardenEvent } from './event.js';

export type EventCheck = { ok: true; event: WardenEvent } | { ok: false; field: string; message: string };

export function checkEvent(value: unknown): EventCheck {
  const r = WardenEventSchema.safeParse(value);
  if (r.success) return { ok: true, event: r.data as WardenEvent };
  const issue = r.error.issues[0];
  const field = issue.path.map(String).join('.') || '(the event itself)';
  return { ok: false, field, message: `${field}: ${issue.message}` };
}
