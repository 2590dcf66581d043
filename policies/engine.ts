/**
 * The policy engine: the decider (policies/detect/decider.ts: events and time in, decisions and
 * breaker transitions out, no I/O) composed with the actuator (policies/act/actuator.ts: records
 * them, acts on BullMQ and NATS KV, keeps the state file), as OpenTelemetry composes a processor
 * with an exporter. This file only wires the two to the clock, the timer and the agent's callbacks.
 *
 * `observe` is synchronous and cheap (the decider); the slow parts run one after another on the
 * actuator's promise chain, so the order of the ledger records is the order of the decisions.
 */
import type { BreakerPhase, BreakerScope } from '../core/breakers.js';
import type { WardenEvent } from '../core/event.js';
import { Actuator } from './act/actuator.js';
import type { QueueActions } from './act/bullmq.js';
import type { BreakerPublisher } from './act/kv.js';
import { readBreakerStates } from './act/state-file.js';
import type { BreakerState } from './detect/breaker.js';
import { Decider, type ForceMode, type Output, type ScopeExplanation } from './detect/decider.js';
import type { LoadedPolicies } from './loader.js';
import type { Policy } from './schema.js';
import type { BreakerStatus } from '../core/breakers.js';

export { BreakerRequestError, type ForceMode, type ScopeExplanation } from './detect/decider.js';

/** Gauges the agent keeps (the engine does not know prom-client). */
export interface PolicyObserver {
  breakerState?(policy: string, scope: string, phase: BreakerPhase): void;
  retryRatio?(policy: string, scope: string, ratio: number, budgetRatio: number): void;
  driftScore?(model: string, metric: string, method: string, score: number): void;
}

export interface EngineLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface EngineOptions {
  dataDir: string;
  policies: LoadedPolicies | null;
  /** Appends Warden's own events to the ledger (the agent's pipeline.record). */
  record(events: WardenEvent[]): Promise<void>;
  /** BullMQ queue actions; null: BullMQ breakers decide and publish but do not touch queues. */
  queues: QueueActions | null;
  /** Celery queue actions (control commands); null or unset: Celery breakers decide but do not act. */
  celery?: QueueActions | null;
  /** NATS KV publication of breaker states (Temporal interceptors enforce them); null without nats.url. */
  kv: BreakerPublisher | null;
  observer?: PolicyObserver;
  logger?: EngineLogger;
  /** Every policy in dry-run, whatever the file says. */
  dryRun?: boolean;
  /** Scopes the sidecar collects itself: ingest claims about them never move their breakers (DeciderOptions.collected). */
  collected?: (scope: BreakerScope) => boolean;
  clock?: () => number;
}

const NOOP_LOGGER: EngineLogger = { info: () => undefined, warn: () => undefined };

export class PolicyEngine {
  private timer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly decider: Decider,
    private readonly actuator: Actuator,
    private readonly clock: () => number,
    private readonly log: EngineLogger,
  ) {}

  /** Restores breaker states from the data dir and reconciles the queues with them. */
  static async open(o: EngineOptions): Promise<PolicyEngine> {
    const clock = o.clock ?? Date.now;
    const log = o.logger ?? NOOP_LOGGER;
    const saved = await readBreakerStates(o.dataDir);
    const decider = new Decider({ policies: o.policies, dryRun: o.dryRun, gauges: o.observer, collected: o.collected });
    const actuator = new Actuator({
      dataDir: o.dataDir, record: o.record, queues: o.queues, celery: o.celery ?? null, kv: o.kv, logger: log, clock,
      breakerState: o.observer?.breakerState?.bind(o.observer),
    }, saved);
    const e = new PolicyEngine(decider, actuator, clock, log);
    // Reconciling the queues needs Redis, which may be down at start: it runs first on the chain, not in the way of starting.
    e.apply(decider.restore(saved, clock()));
    if (saved.length > 0) log.info({ breakers: saved.map((b) => `${b.policy}:${b.key}=${b.phase}`) }, 'breaker states restored');
    return e;
  }

  get loaded(): LoadedPolicies | null { return this.decider.loaded; }

  /** Evaluates timers (open -> half-open) and retries unfinished actions every `intervalMs`. */
  start(intervalMs: number): void {
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.idle();
  }

  /** Resolves when every decision so far is recorded and acted on. */
  idle(): Promise<void> {
    return this.actuator.idle();
  }

  /** Breakers as decided, with what was done to their queues; and retirements still under way. */
  list(): BreakerState[] {
    const decided = this.decider.snapshot().map((b) => ({ ...b, applied: this.actuator.applied(b.policy, b.key) }));
    const known = new Set(decided.map((b) => `${b.policy}|${b.key}`));
    return [...decided, ...this.actuator.list().filter((b) => !known.has(`${b.policy}|${b.key}`))];
  }

  /** What the policies covering `key` see now (throws BreakerRequestError for a bad or uncovered scope). */
  explain(key: string): ScopeExplanation[] {
    return this.decider.explain(key);
  }

  observe(events: WardenEvent[]): void {
    this.apply(this.decider.observe(events, this.clock()));
  }

  tick(): void {
    this.apply(this.decider.tick(this.clock()));
    this.actuator.tick();
  }

  /** `via`: the API token that asked (the actor is the person it names), kept beside the actor. */
  async force(key: string, mode: ForceMode, actor: string, policy?: string, via?: string, note?: string): Promise<BreakerState[]> {
    const outs = this.decider.force(key, mode, actor, this.clock(), { policy, via, note });
    this.apply(outs);
    await this.idle();
    const names = [...new Set(outs.flatMap((o) => ('state' in o ? [o.state.policy] : [])))];
    const all = this.list();
    return names.map((n) => all.find((b) => b.policy === n && b.key === key)!);
  }

  /** New policies from a reloaded file; breakers of policies that are gone are closed and their queues restored. */
  setPolicies(next: LoadedPolicies): void {
    this.apply(this.decider.setPolicies(next));
  }

  /** A changed file that does not validate: the old policies stay, and the ledger says why. */
  reloadRejected(file: string, problems: string[]): void {
    this.log.warn({ file, problems }, 'policy file change rejected: keeping the previous policies');
    this.apply(this.decider.rejectReload(file, problems));
  }

  /** The status the NATS KV bucket carries for a breaker. */
  status(p: Policy | undefined, b: BreakerState): BreakerStatus {
    return this.actuator.status(p, b);
  }

  private apply(outputs: Output[]): void {
    if (outputs.length > 0) this.actuator.apply(outputs);
  }
}
