/**
 * Acting on decisions (the exporter half; policies/detect/decider.ts decides). Takes the decider's
 * outputs and carries them out one after another on a promise chain, so the order of the ledger
 * records is the order of the decisions. For every breaker action the order is: state file (the
 * intent, with the queue's prior settings) -> ledger records -> NATS KV -> BullMQ -> state file
 * (done). A crash at any point leaves a record of what Warden meant to do, and the restart finishes
 * or undoes it. Owns what was done to each queue (`applied`), the state file, the reconciliation
 * with the real queues at start, and the retries of failed actions on `tick`.
 */
import type { BreakerStatus } from '../../core/breakers.js';
import { makeEvent, type EventKind, type WardenEvent } from '../../core/event.js';
import type { AppliedAction, BreakerState } from '../detect/breaker.js';
import { breakerId, type HeldOutput, type Output, type RestoredOutput, type RetireOutput, type TransitionOutput } from '../detect/decider.js';
import type { Evidence } from '../detect/retry-storm.js';
import type { Policy } from '../schema.js';
import { parseBreakerKey } from '../scope.js';
import type { QueueActions, QueueState } from './bullmq.js';
import type { BreakerPublisher } from './kv.js';
import { writeBreakerStates } from './state-file.js';

export interface ActuatorLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ActuatorOptions {
  dataDir: string;
  /** Appends Warden's own events to the ledger (the agent's pipeline.record). */
  record(events: WardenEvent[]): Promise<void>;
  /** BullMQ queue actions; null: BullMQ breakers decide and publish but do not touch queues. */
  queues: QueueActions | null;
  /** Celery queue actions (control commands to the workers); null or unset: Celery breakers decide but do not act. */
  celery?: QueueActions | null;
  /** NATS KV publication of breaker states (Temporal interceptors enforce them); null without nats.url. */
  kv: BreakerPublisher | null;
  /** The breaker gauge, set in chain order as states are saved, so it ends where the breakers are. */
  breakerState?(policy: string, scope: string, phase: BreakerState['phase']): void;
  logger?: ActuatorLogger;
  /** For `retry_after_ms` in the published status. */
  clock?: () => number;
}

/** One breaker as acted on: its state as of the last output carried out, with what was done to its queue. */
interface Entry {
  state: BreakerState;
  /** The policy whose decision it carries out (null for a state read back but not yet reconciled). */
  policy: Policy | null;
  dryRun: boolean;
  /** Set while a retirement is unfinished (the queue could not be restored yet). */
  retire: RetireOutput | null;
}

const NOOP_LOGGER: ActuatorLogger = { info: () => undefined, warn: () => undefined };

export class Actuator {
  private readonly entries = new Map<string, Entry>();
  private chain: Promise<void> = Promise.resolve();
  /** Outputs on the chain per breaker: tick leaves those breakers to them. */
  private readonly queued = new Map<string, number>();
  /** One retry in flight per breaker, so a long Redis outage does not pile up work on the chain. */
  private readonly retrying = new Set<string>();
  private readonly clock: () => number;
  private readonly log: ActuatorLogger;

  /** `saved`: the states read from the state file at start (restoring them is the decider's `restore` outputs). */
  constructor(private readonly o: ActuatorOptions, saved: readonly BreakerState[] = []) {
    this.clock = o.clock ?? Date.now;
    this.log = o.logger ?? NOOP_LOGGER;
    for (const b of saved) this.entries.set(breakerId(b.policy, b.key), { state: structuredClone(b), policy: null, dryRun: false, retire: null });
  }

  /** Carries out `outputs` in order, after everything before them. */
  apply(outputs: readonly Output[]): void {
    for (const out of outputs) {
      const k = 'state' in out ? breakerId(out.state.policy, out.state.key) : null;
      if (k) this.queued.set(k, (this.queued.get(k) ?? 0) + 1);
      this.enqueue(() => this.run(out).finally(() => {
        if (!k) return;
        const n = (this.queued.get(k) ?? 1) - 1;
        if (n > 0) this.queued.set(k, n);
        else this.queued.delete(k);
      }));
    }
  }

  /** Retries unfinished queue actions and retirements (one at a time per breaker). */
  tick(): void {
    for (const [k, e] of this.entries) {
      if (this.queued.has(k) || this.retrying.has(k)) continue;
      const retry = e.retire ? () => this.retire(k, e.retire!) : e.state.applied?.pending && e.policy ? () => this.act(e) : null;
      if (!retry) continue;
      this.retrying.add(k);
      this.enqueue(() => retry().finally(() => this.retrying.delete(k)));
    }
  }

  /** Resolves when every output so far is recorded and acted on. */
  idle(): Promise<void> {
    return this.chain;
  }

  /** What was done to this breaker's queue (a copy), or null. */
  applied(policy: string, key: string): AppliedAction | null {
    const a = this.entries.get(breakerId(policy, key))?.state.applied;
    return a ? structuredClone(a) : null;
  }

  /** Breakers as acted on (copies): includes retirements still under way. */
  list(): BreakerState[] {
    return [...this.entries.values()].map((e) => structuredClone(e.state));
  }

  status(p: Policy | null | undefined, b: BreakerState): BreakerStatus {
    return {
      key: b.key,
      phase: b.phase,
      policy: b.policy,
      policy_version: b.policy_version,
      retry_after_ms: b.phase === 'open' ? Math.max(0, b.since + b.resetTimeoutMs - this.clock()) : 0,
      non_retryable: b.phase === 'open' && !!p?.breaker.nonRetryable,
      probe_ratio: b.phase === 'half_open' ? p?.breaker.probeRatio ?? 0.1 : b.phase === 'open' ? 0 : 1,
      reason: b.reason,
      since: b.since,
      forced_by: b.forced_by,
    };
  }

  // ---- inside ----

  /** The queue actions of a breaker's job system (BullMQ queues, Celery control); null: nothing to act on. */
  private actionsFor(scope: BreakerState['scope']): QueueActions | null {
    if (scope.system === 'bullmq') return this.o.queues;
    if (scope.system === 'celery') return this.o.celery ?? null;
    return null;
  }

  private enqueue(fn: () => Promise<void>): void {
    this.chain = this.chain.then(fn).catch((err) => this.log.warn({ err: (err as Error).message }, 'policy action failed (will retry on the next tick)'));
  }

  private async run(out: Output): Promise<void> {
    switch (out.type) {
      case 'transition': return this.transition(out);
      case 'held': return this.held(out);
      case 'finding':
        return this.o.record([decisionEvent(out.policy, out.digest, out.dryRun, 'policy.decision', out.decision, out.reason, out.evidence, out.work)]);
      case 'restored': return this.restored(out);
      case 'retire': {
        const k = breakerId(out.state.policy, out.state.key);
        const e = this.entries.get(k);
        if (e) e.retire = out;
        else this.entries.set(k, { state: structuredClone(out.state), policy: null, dryRun: false, retire: out });
        return this.retire(k, out);
      }
      case 'reload':
        return this.o.record([makeEvent({
          kind: 'policy.decision', source: 'warden', policy: '(policy file)', policy_version: out.digest.slice(0, 16), decision: 'reload',
          reason: `loaded ${out.policies.length} policies from ${out.file}`, attrs: { policy_digest: out.digest, previous_digest: out.previousDigest, policies: out.policies.join(',') },
        })]);
      case 'reload_rejected':
        return this.o.record([makeEvent({
          kind: 'policy.decision', source: 'warden', policy: '(policy file)', policy_version: out.digest?.slice(0, 16) ?? null, decision: 'reload_rejected',
          reason: `kept the previous policies: ${out.problems.join('; ')}`.slice(0, 2000), attrs: { policy_file: out.file, policy_digest: out.digest },
        })]);
    }
  }

  /** The entry for an output's breaker, brought up to the output's state (keeping what was done to the queue). */
  private entry(out: TransitionOutput | HeldOutput | RestoredOutput): Entry {
    const k = breakerId(out.state.policy, out.state.key);
    const prev = this.entries.get(k);
    const e: Entry = { state: { ...structuredClone(out.state), applied: prev?.state.applied ?? null }, policy: out.policy, dryRun: out.dryRun, retire: null };
    this.entries.set(k, e);
    return e;
  }

  private async transition(out: TransitionOutput): Promise<void> {
    const e = this.entry(out);
    const { policy: p, transition: t, state: at } = out;
    const b = e.state;
    let evidence = out.evidence;
    const kind: EventKind = t.to === 'open' ? 'breaker.opened' : t.to === 'half_open' ? 'breaker.half_opened' : 'breaker.closed';
    const actions = this.actionsFor(b.scope);
    const queueOwned = actions !== null && p.breaker.action !== 'none' && !out.dryRun;
    // Intent first: the queue's prior settings are on disk before anything is changed.
    if (queueOwned && t.to !== 'closed') {
      if (!b.applied) {
        // Redis unreachable: still decide and record; the action is retried on the next tick.
        const prior = await actions!.state(b.scope.name).catch((err: Error) => {
          evidence = { ...evidence, queue_state_error: err.message.slice(0, 200) };
          return null;
        });
        b.applied = { kind: p.breaker.action as 'pause', wasPaused: prior?.paused ?? false, prevConcurrency: prior?.concurrency ?? null, prevRateLimit: prior?.rateLimit ?? null, stage: 'open', pending: true, ...(prior ? {} : { priorUnknown: true }) };
        if (prior) evidence = { ...evidence, queue_was_paused: prior.paused };
      }
      b.applied.stage = t.to === 'open' ? 'open' : 'half_open';
      b.applied.pending = true;
    }
    await this.persist();
    const detail: Evidence = { scope: b.key, from: t.from, to: t.to, reset_timeout_ms: at.resetTimeoutMs, opens: at.opens, ...prefixed(evidence) };
    // Stamped with the transition's time (not the time the record was written after reading the queue).
    await this.o.record([
      decisionEvent(p, out.digest, out.dryRun, kind, out.decision, t.reason, detail, null, t.actor, at.since),
      decisionEvent(p, out.digest, out.dryRun, 'policy.decision', t.actor ? `force_${t.to === 'half_open' ? 'half_open' : t.to}` : out.decision, t.reason, detail, null, t.actor, at.since),
    ]);
    this.publishKv(e);
    if (b.applied && (queueOwned || t.to === 'closed')) {
      b.applied.pending = true;
      try {
        await this.act(e);
      } catch (err) {
        this.log.warn({ scope: b.key, phase: b.phase, err: (err as Error).message }, 'breaker action failed (retrying on the next tick)');
        await this.persist();
      }
    }
  }

  private async held(out: HeldOutput): Promise<void> {
    const e = this.entry(out);
    await this.persist();
    await this.o.record([decisionEvent(out.policy, out.digest, out.dryRun, 'policy.decision', out.decision, out.reason, out.evidence, null, out.actor)]);
    this.publishKv(e);
  }

  /** Sets the queue up for the breaker's current stage (idempotent; re-run after a crash or a failure). */
  private async act(e: Entry): Promise<void> {
    const { state: b, policy: p } = e;
    const a = b.applied;
    const actions = this.actionsFor(b.scope);
    if (!a || !p || !actions) return;
    if (a.priorUnknown) {
      // Nothing was changed yet (the read failed before the first action): the queue's own settings
      // now are the ones to restore on close, so an operator's pause or limit is never undone.
      const prior = await actions.state(b.scope.name);
      Object.assign(a, { wasPaused: prior.paused, prevConcurrency: prior.concurrency ?? null, prevRateLimit: prior.rateLimit ?? null, priorUnknown: false });
      await this.persist();
    }
    if (b.phase === 'closed') {
      await actions.restore(b.scope.name, a);
      b.applied = null;
    } else if (b.phase === 'open') {
      await actions.open(b.scope.name, p.breaker, { paused: a.wasPaused, concurrency: a.prevConcurrency, rateLimit: a.prevRateLimit });
      a.pending = false;
    } else {
      await actions.halfOpen(b.scope.name, p.breaker, a);
      a.pending = false;
    }
    await this.persist();
  }

  private publishKv(e: Entry): void {
    if (!this.o.kv || e.dryRun) return;
    this.o.kv.publish(this.status(e.policy, e.state));
  }

  private async persist(): Promise<void> {
    // The gauges follow the states as persisted, in chain order, so they end where the breakers are.
    const states = [...this.entries.values()].map((e) => e.state);
    for (const b of states) this.o.breakerState?.(b.policy, b.key, b.phase);
    await writeBreakerStates(this.o.dataDir, states.filter((b) => b.phase !== 'closed' || b.applied || b.forced));
  }

  /** Closes a breaker no policy governs, restoring its queue. */
  private async retire(k: string, out: RetireOutput): Promise<void> {
    const e = this.entries.get(k);
    if (!e || e.retire !== out) return; // done already, or a newer decision took the breaker over
    const b = e.state;
    const wasApplied = b.applied;
    // Restore first: if Redis is down this throws, the breaker stays (and stays in the state file),
    // and the next tick tries again. Forgetting it first would leave the queue paused with no record.
    const actions = this.actionsFor(b.scope);
    if (wasApplied && actions && !wasApplied.priorUnknown) await actions.restore(b.scope.name, wasApplied);
    this.entries.delete(k);
    this.o.breakerState?.(b.policy, b.key, 'closed');
    await this.persist();
    const reason = out.notesRestore && wasApplied ? `${out.reason}, queue restored` : out.reason;
    await this.o.record([makeEvent({
      kind: 'breaker.closed', source: 'warden', policy: b.policy, policy_version: b.policy_version, decision: wasApplied ? 'restore' : 'close', actor: 'warden',
      reason, queue: b.scope.kind === 'queue' || b.scope.kind === 'task_queue' ? b.scope.name : null,
      attrs: { scope: b.key, restored_queue: !!wasApplied, policy_digest: out.digest },
    })]);
    this.o.kv?.publish({ ...this.status(undefined, b), phase: 'closed', reason });
  }

  /** At start: a breaker comes back as it was; its queue is made to agree with it, and the ledger says what was found. */
  private async restored(out: RestoredOutput): Promise<void> {
    const e = this.entry(out);
    const { state: b, policy: p } = e;
    try {
      this.o.breakerState?.(b.policy, b.key, b.phase);
      let found: QueueState | null = null;
      const actions = this.actionsFor(b.scope);
      if (actions && b.applied) found = await actions.state(b.scope.name).catch(() => null);
      const reason = b.phase === 'closed'
        ? `restart: breaker on ${b.key} is closed${b.forced ? ` (held closed by ${b.forced_by})` : ''}${b.applied ? '; finishing the queue restore that was under way at the crash' : ''}`
        : `restart: breaker on ${b.key} is still ${b.phase}${found ? ` (queue paused: ${found.paused}, global concurrency: ${found.concurrency ?? 'none'})` : ''}; queue set up for it again`;
      if (b.applied) b.applied.pending = true;
      await this.o.record([decisionEvent(p!, out.digest, out.dryRun, 'policy.decision', 'restore', reason, {
        scope: b.key, phase: b.phase, ...(found ? { queue_paused: found.paused, queue_concurrency: found.concurrency ?? -1 } : {}),
      }, null)]);
      this.publishKv(e);
      if (b.applied) await this.act(e).catch((err) => this.log.warn({ scope: b.key, err: (err as Error).message }, 'could not set the queue up after restart (retrying on the next tick)'));
    } catch (err) {
      // One breaker's queue unreachable must not leave the others unreconciled; tick retries this one.
      if (b.applied) b.applied.pending = true;
      this.log.warn({ scope: b.key, err: (err as Error).message }, 'could not reconcile a restored breaker (retrying on the next tick)');
    }
  }
}

/** A record of a decision, as a Warden event (scope fields from the evidence's `scope` when no piece of work is named). */
function decisionEvent(p: Policy, digest: string | null, dryRun: boolean, kind: EventKind, decision: string, reason: string, evidence: Evidence, work: WardenEvent | null, actor: string | null = null, ts?: number): WardenEvent {
  const scopeKey = typeof evidence.scope === 'string' ? evidence.scope : null;
  const scope = scopeKey ? parseBreakerKey(scopeKey) : null;
  return makeEvent({
    ts,
    kind,
    source: 'warden',
    policy: p.name,
    policy_version: p.version,
    decision,
    reason: reason.slice(0, 2000),
    actor: actor ?? 'warden',
    correlation_id: work?.correlation_id ?? null,
    trace_id: work?.trace_id ?? null,
    job_id: work?.job_id ?? null,
    job_name: work?.job_name ?? null,
    workflow_id: work?.workflow_id ?? null,
    run_id: work?.run_id ?? null,
    queue: work?.queue ?? (scope && (scope.kind === 'queue' || scope.kind === 'task_queue') ? scope.name : null),
    activity_type: work?.activity_type ?? (scope?.kind === 'activity' ? scope.name : null),
    model: work?.model ?? (scope?.kind === 'model' ? scope.name : null),
    model_version: work?.model_version ?? null,
    attrs: { ...evidence, policy_digest: digest, dry_run: dryRun },
  });
}

/** Evidence attrs, named `evidence.<key>` so they never collide with the event's own attrs. */
function prefixed(e: Evidence): Evidence {
  const out: Evidence = {};
  for (const [k, v] of Object.entries(e)) out[k === 'scope' || k === 'from' || k === 'to' ? k : `evidence.${k}`] = v;
  return out;
}
