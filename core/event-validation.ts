/**
 * Checks an event that arrived from outside the sidecar (NATS, HTTP ingest) against the one schema,
 * and says which field is wrong, so a bad producer can be told exactly what to fix.
 */
import { WardenEventSchema, type WardenEvent } from './event.js';

export type EventCheck = { ok: true; event: WardenEvent } | { ok: false; field: string; message: string };

export function checkEvent(value: unknown): EventCheck {
  const r = WardenEventSchema.safeParse(value);
  if (r.success) {
    // The sidecar's own records (policy decisions, breaker transitions, ledger reads) come only from
    // the sidecar: a hook or an ingest token must not be able to write one.
    // (A hook's own gap report, of events it had to drop from several sources, is the exception.)
    if (r.data.source === 'warden' && r.data.kind !== 'collector.gap') return { ok: false, field: 'source', message: 'source: "warden" is reserved for records the sidecar writes itself (policy decisions, breakers, ledger reads); hooks send "bullmq", "temporal" or "celery"' };
    return { ok: true, event: r.data as WardenEvent };
  }
  const issue = r.error.issues[0];
  const field = issue.path.map(String).join('.') || '(the event itself)';
  return { ok: false, field, message: `${field}: ${issue.message}` };
}
