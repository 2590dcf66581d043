/**
 * The wire contract for circuit-breaker state between the sidecar's policies (which decide and
 * publish) and in-process hooks (which enforce, e.g. the Temporal activity interceptor failing
 * fast). The sidecar writes one entry per scope into the NATS KV bucket BREAKER_BUCKET; hooks
 * watch the bucket and keep a local copy, so enforcing costs a map lookup, never a network call.
 */

export const BREAKER_BUCKET = 'WARDEN_BREAKERS';

export type BreakerPhase = 'closed' | 'half_open' | 'open';

/** What a breaker scope covers. Keys are built with `breakerKey`, so both sides agree. */
export type BreakerScope =
  | { system: 'temporal'; kind: 'activity'; name: string }
  | { system: 'temporal'; kind: 'task_queue'; name: string }
  | { system: 'bullmq'; kind: 'queue'; name: string }
  | { system: 'celery'; kind: 'queue'; name: string }
  | { system: 'any'; kind: 'model'; name: string };

export interface BreakerStatus {
  key: string;
  phase: BreakerPhase;
  /** The policy (and its version) whose decision set this state. */
  policy: string;
  policy_version: string;
  /** While open: how long until the breaker half-opens (hooks use it as the retry delay). */
  retry_after_ms: number;
  /** Open and the policy says retrying is pointless (fail non-retryably). */
  non_retryable: boolean;
  /** Half-open: the share of calls let through as probes (0..1). */
  probe_ratio: number;
  reason: string;
  /** Epoch ms of the transition that produced this state. */
  since: number;
  /** Set when an admin forced the state; null when the policy drives it. */
  forced_by: string | null;
}

const KV_SAFE = /[^-_=/.a-zA-Z0-9]/g;

/** NATS KV key of a scope: `temporal.activity.<name>`; characters KV keys refuse become `=XX`. */
export function breakerKey(scope: BreakerScope): string {
  const name = scope.name.replace(KV_SAFE, (c) => `=${c.charCodeAt(0).toString(16).padStart(2, '0')}`).replace(/\.\./g, '.=2e');
  return `${scope.system}.${scope.kind}.${name}`;
}

/** What an enforcing hook consults; implemented over a KV watch (collectors/transport) or statically in tests. */
export interface BreakerView {
  /** The most restrictive non-closed status among these keys, or undefined when all are closed/unknown. */
  status(keys: string[]): BreakerStatus | undefined;
}

const RANK: Record<BreakerPhase, number> = { closed: 0, half_open: 1, open: 2 };

/** A view over an in-memory map; the KV watcher keeps such a map current. */
export class MapBreakerView implements BreakerView {
  readonly states = new Map<string, BreakerStatus>();

  set(status: BreakerStatus): void {
    if (status.phase === 'closed') this.states.delete(status.key);
    else this.states.set(status.key, status);
  }

  delete(key: string): void {
    this.states.delete(key);
  }

  status(keys: string[]): BreakerStatus | undefined {
    let worst: BreakerStatus | undefined;
    for (const k of keys) {
      const s = this.states.get(k);
      if (s && (!worst || RANK[s.phase] > RANK[worst.phase])) worst = s;
    }
    return worst;
  }
}
