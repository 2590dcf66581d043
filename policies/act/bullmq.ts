/**
 * Breaker actions on a BullMQ queue, through BullMQ's own `Queue` API: pause / resume, global
 * concurrency, global rate limit. Every step is idempotent (setting what is already set is harmless),
 * and the queue's prior settings are read before the first change so closing restores them, not a
 * default; a queue someone else had paused stays paused.
 */
import { Queue } from 'bullmq';
import type { AppliedAction } from '../detect/breaker.js';
import type { BreakerConfig } from '../schema.js';
import { WardenError } from '../../core/errors.js';

export interface QueueState {
  paused: boolean;
  concurrency: number | null;
  rateLimit: { max: number; duration: number } | null;
}

/** What the engine needs from a job system's queues (BullMQ here; a test double never). */
export interface QueueActions {
  state(queue: string): Promise<QueueState>;
  /** Sets the queue up for the open phase; `prior` is what it was before Warden touched it. */
  open(queue: string, cfg: BreakerConfig, prior: QueueState): Promise<void>;
  /** Probe traffic only: resumed (unless paused by others) with the probe concurrency. */
  halfOpen(queue: string, cfg: BreakerConfig, applied: AppliedAction): Promise<void>;
  /** Puts back what Warden changed. */
  restore(queue: string, applied: AppliedAction): Promise<void>;
  close(): Promise<void>;
}

/** Redis did not answer in time; the engine records its decision anyway and retries the action later. */
export class QueueUnavailableError extends WardenError {
  override name = 'QueueUnavailableError';
  constructor(message: string) {
    super('WARDEN_UNAVAILABLE', message);
  }
}

export class BullMQQueueActions implements QueueActions {
  private readonly queues = new Map<string, Queue>();
  private readonly timeoutMs: number;

  constructor(private readonly o: { redisUrl: string; prefix: string; timeoutMs?: number }) {
    this.timeoutMs = o.timeoutMs ?? 3000;
  }

  /** BullMQ waits for its connection without limit; the engine's chain must not wait with it. */
  private timed<T>(queue: string, what: string, p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new QueueUnavailableError(`${what} on queue ${queue}: Redis did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
  }

  private queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      const u = new URL(this.o.redisUrl);
      q = new Queue(name, {
        prefix: this.o.prefix,
        connection: {
          host: u.hostname, port: Number(u.port || 6379), username: u.username || undefined, password: u.password ? decodeURIComponent(u.password) : undefined,
          db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined, tls: u.protocol === 'rediss:' ? {} : undefined,
          maxRetriesPerRequest: 3,
        },
      });
      q.on('error', () => undefined); // reported by the failing call itself
      this.queues.set(name, q);
    }
    return q;
  }

  async state(name: string): Promise<QueueState> {
    const q = this.queue(name);
    const [paused, concurrency, rl] = await this.timed(name, 'reading the state', Promise.all([q.isPaused(), q.getGlobalConcurrency(), q.getGlobalRateLimit()]));
    return { paused, concurrency, rateLimit: rl ? { max: Number(rl.max), duration: Number(rl.duration) } : null };
  }

  open(name: string, cfg: BreakerConfig, prior: QueueState): Promise<void> {
    return this.timed(name, 'opening', this.doOpen(name, cfg, prior));
  }

  halfOpen(name: string, cfg: BreakerConfig, a: AppliedAction): Promise<void> {
    return this.timed(name, 'half-opening', this.doHalfOpen(name, cfg, a));
  }

  restore(name: string, a: AppliedAction): Promise<void> {
    return this.timed(name, 'restoring', this.doRestore(name, a));
  }

  private async doOpen(name: string, cfg: BreakerConfig, prior: QueueState): Promise<void> {
    const q = this.queue(name);
    if (cfg.action === 'pause') await q.pause();
    else if (cfg.action === 'concurrency') await q.setGlobalConcurrency(Math.min(cfg.concurrency, prior.concurrency ?? Infinity));
    else if (cfg.action === 'rate_limit') await q.setGlobalRateLimit(cfg.rateLimit.max, cfg.rateLimit.durationMs);
  }

  private async doHalfOpen(name: string, cfg: BreakerConfig, a: AppliedAction): Promise<void> {
    const q = this.queue(name);
    await q.setGlobalConcurrency(Math.min(cfg.probeConcurrency, a.prevConcurrency ?? Infinity));
    if (a.kind === 'pause' && !a.wasPaused) await q.resume();
  }

  private async doRestore(name: string, a: AppliedAction): Promise<void> {
    const q = this.queue(name);
    if (a.prevConcurrency === null) await q.removeGlobalConcurrency();
    else await q.setGlobalConcurrency(a.prevConcurrency);
    if (a.kind === 'rate_limit') {
      if (a.prevRateLimit === null) await q.removeGlobalRateLimit();
      else await q.setGlobalRateLimit(a.prevRateLimit.max, a.prevRateLimit.duration);
    }
    if (a.kind === 'pause' && !a.wasPaused) await q.resume();
  }

  async close(): Promise<void> {
    // Closing waits for a connection that may never come (Redis down at shutdown): bounded.
    await Promise.allSettled([...this.queues.entries()].map(([name, q]) => this.timed(name, 'closing', q.close())));
    this.queues.clear();
  }
}
