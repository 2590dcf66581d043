/**
 * Checks an event that arrived from outside the sidecar (NATS, HTTP ingest) against the one schema,
 * and says which field is wrong, so a bad producer can be told exactly what to fix. Beyond the schema:
 * the sidecar's own kinds are refused (a worker's claim never becomes a sidecar record), and attrs and
 * string fields are bounded (core/input.ts EVENT_BOUNDS).
 */
import { WardenEventSchema, type WardenEvent } from './event.js';
import { EVENT_BOUNDS } from './input.js';
import { SIDECAR_KINDS } from './kinds.js';

export type EventCheck = { ok: true; event: WardenEvent } | { ok: false; field: string; message: string };

const TEXT_FIELDS = new Set(['reason', 'error']);

export function checkEvent(value: unknown): EventCheck {
  const r = WardenEventSchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue.path.map(String).join('.') || '(the event itself)';
    return { ok: false, field, message: `${field}: ${issue.message}` };
  }
  const ev = r.data as WardenEvent;
  // The sidecar's own records (policy decisions, breaker transitions, ledger reads and verifies, its
  // collector's gap reports) come only from the sidecar: a hook or an ingest token must not write one.
  if (SIDECAR_KINDS.has(ev.kind)) {
    return { ok: false, field: 'kind', message: `kind: "${ev.kind}" is written only by the sidecar itself (policy decisions, breakers, ledger reads and verifies); ingest refuses it` };
  }
  if (ev.source === 'warden') {
    return { ok: false, field: 'source', message: `source: "warden" is reserved for records the sidecar writes itself (its collector's "${ev.kind}" included); hooks send "bullmq", "temporal" or "celery"` };
  }
  return checkBounds(ev) ?? { ok: true, event: ev };
}

function checkBounds(ev: WardenEvent): EventCheck | null {
  const b = EVENT_BOUNDS;
  for (const [k, v] of Object.entries(ev)) {
    if (typeof v !== 'string') continue;
    const max = TEXT_FIELDS.has(k) ? b.maxTextChars : b.maxFieldChars;
    if (v.length > max) return { ok: false, field: k, message: `${k}: ${v.length} characters, over the limit of ${max}` };
  }
  const keys = Object.keys(ev.attrs);
  if (keys.length > b.maxAttrs) return { ok: false, field: 'attrs', message: `attrs: ${keys.length} keys, over the limit of ${b.maxAttrs}` };
  for (const k of keys) {
    if (k.length > b.maxAttrKeyChars) return { ok: false, field: 'attrs', message: `attrs: a key of ${k.length} characters, over the limit of ${b.maxAttrKeyChars}` };
    const v = ev.attrs[k];
    if (typeof v === 'string' && v.length > b.maxAttrValueChars) return { ok: false, field: `attrs.${k}`, message: `attrs.${k}: ${v.length} characters, over the limit of ${b.maxAttrValueChars}` };
  }
  const bytes = Buffer.byteLength(JSON.stringify(ev.attrs));
  if (bytes > b.maxAttrsBytes) return { ok: false, field: 'attrs', message: `attrs: ${bytes} bytes of JSON, over the limit of ${b.maxAttrsBytes}` };
  return null;
}
