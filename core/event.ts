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
  // A hook's note about a job the sidecar observes itself (Celery): correlation/trace linkage,
  // model/policy metadata or a breaker fail-fast (attrs.note). Counted by no metric or policy.
  'job.annotated',
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/** The largest time a JavaScript Date holds (ECMA-262: 8.64e15 ms after the epoch). */
export const MAX_DATE_MS = 8_640_000_000_000_000;

export const EVENT_SOURCES = ['bullmq', 'temporal', 'celery', 'warden'] as const;
export type EventSource = (typeof EVENT_SOURCES)[number];

const str = z.string().nullable();
const attrValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);

export const WardenEventSchema = z.object({
  // A ULID's 48-bit time part ends at 7ZZZZZZZZZ: a first character above '7' is no ULID.
  event_id: z.string().regex(/^[0-7][0-9A-HJKMNP-TV-Z]{25}$/, 'must be a ULID (26 Crockford base32 characters, the first 0-7)'),
  // What a JavaScript Date can hold (|ms| <= 8.64e15): a larger ts would crash every reader that formats it.
  ts: z.number().int().nonnegative().max(MAX_DATE_MS, `must be epoch milliseconds a date can hold (0 to ${MAX_DATE_MS})`),
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
  /** Redacted and size-capped; see core/input.ts. */
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
  // One literal in EVENT_FIELDS order (hot path: a loop over the field names built a slow
  // dictionary-mode object); the type makes a field missing here a compile error.
  const ev: WardenEvent = {
    event_id: init.event_id ?? newEventId(ts), ts, kind: init.kind ?? null, source: init.source ?? null,
    correlation_id: init.correlation_id ?? null, trace_id: init.trace_id ?? null, span_id: init.span_id ?? null,
    queue: init.queue ?? null, job_id: init.job_id ?? null, job_name: init.job_name ?? null,
    workflow_id: init.workflow_id ?? null, run_id: init.run_id ?? null, activity_type: init.activity_type ?? null,
    attempt: init.attempt ?? null, duration_ms: init.duration_ms ?? null, input_digest: init.input_digest ?? null,
    input: init.input ?? null, model: init.model ?? null, model_version: init.model_version ?? null,
    policy: init.policy ?? null, policy_version: init.policy_version ?? null, actor: init.actor ?? null,
    decision: init.decision ?? null, reason: init.reason ?? null, error: init.error ?? null,
    attrs: init.attrs ?? {},
  };
  return ev;
}
