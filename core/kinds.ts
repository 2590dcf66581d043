/**
 * Groups of event kinds, defined once. Metrics, spans, policies and the compliance SQL all ask the
 * same questions of a kind ("does this finish a run?", "did it succeed?"); each asks it here.
 */
import type { EventKind } from './event.js';

/** A typed, frozen list of kinds (for SQL `IN (...)` and docs) with a constant-time `has` for hot paths. */
export type KindSet<K extends EventKind = EventKind> = readonly K[] & { has(kind: string): kind is K };

function kindSet<const K extends EventKind>(...kinds: K[]): KindSet<K> {
  const set = new Set<string>(kinds);
  return Object.freeze(Object.assign([...kinds], { has: (kind: string): kind is K => set.has(kind) }));
}

/** A unit of work finished successfully (job, activity or workflow). */
export const COMPLETION_KINDS = kindSet('job.completed', 'activity.completed', 'workflow.completed');

/** A unit of work finished for good, either way: one per run in the ledger. */
export const RUN_KINDS = kindSet('job.completed', 'job.failed', 'activity.completed', 'activity.failed', 'workflow.completed', 'workflow.failed');

/** Finished attempts a retry window counts as successes (workflows are not retried attempts). */
export const ATTEMPT_SUCCESS_KINDS = kindSet('job.completed', 'activity.completed');

/** An attempt started (a retry window counts first attempts and retries by the attempt number). */
export const ATTEMPT_START_KINDS = kindSet('job.started', 'activity.started');

/** An attempt failed and may be retried. */
export const ATTEMPT_FAILED_KINDS = kindSet('job.attempt_failed', 'activity.attempt_failed');

/** Finished attempts a retry window counts as terminal failures (retries exhausted or not retryable). */
export const ATTEMPT_TERMINAL_FAILURE_KINDS = kindSet('job.failed', 'activity.failed');

/** A job's final outcome (one per job in the ledger). */
export const JOB_TERMINAL_KINDS = kindSet('job.completed', 'job.failed');

/** A job's records before its outcome: what a restarted collector continues a job's attempts from. */
export const JOB_PROGRESS_KINDS = kindSet('job.added', 'job.started', 'job.attempt_failed');

/** Human approvals and denials. */
export const APPROVAL_KINDS = kindSet('approval.granted', 'approval.denied');

/** Temporal activity kinds that end one attempt's span. */
export const ACTIVITY_ATTEMPT_END_KINDS = kindSet('activity.attempt_failed', 'activity.completed', 'activity.failed');

/** The outcome label `warden_jobs_total` gives each kind it counts; kinds absent here are not counted. */
export const OUTCOME_OF_KIND: Readonly<Partial<Record<EventKind, 'completed' | 'failed' | 'attempt_failed' | 'stalled'>>> = Object.freeze({
  'job.completed': 'completed',
  'job.failed': 'failed',
  'job.attempt_failed': 'attempt_failed',
  'job.stalled': 'stalled',
  'activity.completed': 'completed',
  'activity.failed': 'failed',
  'activity.attempt_failed': 'attempt_failed',
  'workflow.completed': 'completed',
  'workflow.failed': 'failed',
});

/** Kinds only the sidecar writes (its decisions, breakers and ledger audit); ingest refuses them. */
export const SIDECAR_KINDS = kindSet('policy.decision', 'breaker.opened', 'breaker.half_opened', 'breaker.closed', 'ledger.read', 'ledger.verified');

/** The attr the sidecar sets on every ingested record: the credential that sent it (`http:<token name>`, `nats:<stream>`). */
export const RECEIVED_VIA = 'received_via';
