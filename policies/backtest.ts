/**
 * A backtest: the pure decider (policies/detect/decider.ts) run over recorded events, offline. The
 * events come in the order they were recorded (ledger seq order); each is judged at its own time, so
 * the decisions are the ones the live engine took on the same events with the same policy file
 * (the decider judges in event time; batching and timer ticks do not change decisions). Nothing is
 * acted on, recorded or written: the caller only reads.
 *
 * What a backtest cannot replay: admin forces (the sidecar's own records are skipped: a backtest shows
 * what the policies decide on their own), and windows lost when the live sidecar restarted (the live
 * engine starts its windows over; the backtest's run on). Event times more than a minute ahead of
 * the live sidecar's clock were clamped live; the ledger does not say when they arrived.
 */
import type { BreakerScope } from '../core/breakers.js';
import type { WardenEvent } from '../core/event.js';
import { Decider, type Output } from './detect/decider.js';
import type { Evidence } from './detect/retry-storm.js';
import type { LoadedPolicies } from './loader.js';

/** One decision the policies would have taken. */
export interface BacktestDecision {
  /** Epoch ms the decision is stamped with (the breaker transition's time, or the work's event time). */
  ts: number;
  policy: string;
  policy_version: string;
  /** Breaker scope key (bullmq.queue.x, any.model.m, ...), or for a decision on one piece of work its queue / activity. */
  scope: string;
  /** What it does: pause, probe, restore, fail_fast, require_approval, drift, ... (dry_run:<x> for dry-run policies). */
  decision: string;
  /** Breaker decisions: the transition (closed->open, ...). */
  transition: string | null;
  reason: string;
  evidence: Evidence;
  /** The event the decision is about, for decisions on one piece of work. */
  correlation_id: string | null;
  job_id: string | null;
}

export interface BacktestOptions {
  /** The time the replay runs up to (timers due by then fire): default the newest record seen. */
  endMs?: number;
  /** Scopes the sidecar collected itself, as the live engine was told (claims about them are not counted). */
  collected?: (scope: BreakerScope) => boolean;
}

export interface BacktestResult {
  decisions: BacktestDecision[];
  /** Events judged (the sidecar's own records are not). */
  events: number;
  /** Records skipped as the sidecar's own (decisions, breaker transitions, audit). */
  skipped: number;
  firstTs: number | null;
  lastTs: number | null;
}

function decisionsOf(outs: readonly Output[]): BacktestDecision[] {
  const out: BacktestDecision[] = [];
  for (const o of outs) {
    if (o.type === 'transition') {
      out.push({
        ts: o.state.since, policy: o.policy.name, policy_version: o.policy.version, scope: o.state.key, decision: o.decision,
        transition: `${o.transition.from}->${o.transition.to}`, reason: o.transition.reason, evidence: o.evidence, correlation_id: null, job_id: null,
      });
    } else if (o.type === 'finding') {
      const w = o.work;
      out.push({
        ts: w.ts, policy: o.policy.name, policy_version: o.policy.version, scope: w.queue ?? w.activity_type ?? w.model ?? '', decision: o.decision,
        transition: null, reason: o.reason, evidence: o.evidence, correlation_id: w.correlation_id, job_id: w.job_id,
      });
    }
  }
  return out;
}

/** Replays `records` (ledger order) through a fresh decider with `policies`. */
export async function backtest(policies: LoadedPolicies, records: AsyncIterable<WardenEvent> | Iterable<WardenEvent>, o: BacktestOptions = {}): Promise<BacktestResult> {
  const d = new Decider({ policies, collected: o.collected });
  const decisions: BacktestDecision[] = [];
  let events = 0;
  let skipped = 0;
  let firstTs: number | null = null;
  let lastTs: number | null = null;
  for await (const ev of records) {
    // The newest record of any kind says how long the live sidecar ran (its own records carry its clock).
    if (lastTs === null || ev.ts > lastTs) lastTs = ev.ts;
    if (ev.source === 'warden') { skipped++; continue; }
    if (firstTs === null || ev.ts < firstTs) firstTs = ev.ts;
    events++;
    // No receipt clock is recorded: the event's own time stands in for it.
    decisions.push(...decisionsOf(d.observe([ev], ev.ts)));
  }
  const end = o.endMs ?? lastTs;
  if (end !== null) decisions.push(...decisionsOf(d.tick(end)));
  return { decisions, events, skipped, firstTs, lastTs };
}
