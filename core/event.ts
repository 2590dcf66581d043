/**
 * The one normalized event type. Every collector turns its source signal into a WardenEvent;
 * the agent, ledger and policies consume nothing else. Its canonical serialization (RFC 8785
 * JSON canonicalization: sorted keys, no whitespace) is what the ledger hashes.
 */
import { z } from 'zod';
import { newEventId } from './ids.js';

export const EVENT_KINDS = [
  'job.added', 'job.started', 'job.attempt_failed', 'job.completed', 'job.failed', 'job.stalled',
  'job.removed', 'collector.gap',
  'workflow.started', 'workflow.completed', 'workflow.failed',
  'activity.started', 'activity.attempt_failed', 'activity.completed', 'activity.failed',
  'signal.received', 'approval.granted', 'approval.denied',
  'policy.decision', 'breaker.opened', 'breaker.half_opened', 'breaker.closed',
  // Compliance reads of the ledger are themselves recorded (who asked what).
  'ledger.read',
  // The sidecar's periodic self-verify of its own ledger (agent/self-verify.ts).
  'ledger.verified',
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

export const EVENT_SOURCES = ['bullmq', 'temporal', 'celery', 'warden'] as const;
export type EventSource = (typeof EVENT_SOURCES)[number];

const str = z.string().nullable();
const attrValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);

export const WardenEventSchema = z.object({
  event_id: z.string().regex(/^[0-9A-HJKMNP-TV-Z]{26}$/, 'must be a ULID'),
  ts: z.number().int().nonnegative(),
  kind: z.enum(EVENT_KINDS),
  source: z.enum(EVENT_SOURCES),
  correlation_id: str,
  trace_id: z.string().regex(/^[0-9a-f]{32}$/).nullable(),
  span_id: z.string().regex(/^[0-9a-f]{16}$/).nullable(),
  queue: str,
  job_id: str,
  job_name: str,
  workflow_id: str,
  run_id: str,
  activity_type: str,
  attempt: z.number().int().nonnegative().nullable(),
  duration_ms: z.number().nonnegative().nullable(),
  input_digest: z.string().regex(/^[0-9a-f]{64}$/).nullable(),
  /** Redacted and size-capped; see collectors/input.ts. */
  input: z.unknown().nullable(),
  model: str,
  model_version: str,
  policy: str,
  policy_version: str,
  actor: str,
  decision: str,
  reason: str,
  error: str,
  attrs: z.record(z.string(), attrValue),
});

export type WardenEvent = z.infer<typeof WardenEventSchema> & { input: unknown };
export type EventAttrs = WardenEvent['attrs'];

/** Every field of the event, in one list: used to fill defaults and by tabular output. */
export const EVENT_FIELDS = Object.keys(WardenEventSchema.shape) as (keyof WardenEvent)[];

/** Stable serialization used for hashing and for the spool (RFC 8785); see canonical.ts. */
export { canonicalJson, NotJsonError } from './canonical.js';

export type EventInit = Partial<Omit<WardenEvent, 'kind' | 'source'>> & { kind: EventKind; source: EventSource };

/** Builds a complete event: every field present (null when unknown), a fresh ULID unless given. */
export function makeEvent(init: EventInit): WardenEvent {
  const ts = init.ts ?? Date.now();
  const ev = {} as Record<string, unknown>;
  for (const f of EVENT_FIELDS) ev[f] = (init as Record<string, unknown>)[f] ?? null;
  ev.ts = ts;
  ev.event_id = init.event_id ?? newEventId(ts);
  ev.attrs = init.attrs ?? {};
  return ev as WardenEvent;
}
