/**
 * Breaker actions on a BullMQ queue, through BullMQ's own `Queue` API: pause / resume, global
 * concurrency, global rate limit. Every step is idempotent (setting what is already set is harmless),
 * and the queue's prior settings are read before the first change so closing restores them, not a
 * default; a queue someone else had paused stays paused.
 */
import { Queue } from 'bullmq';
import type { AppliedAction } from '../breaker.js';
import type { BreakerConfig } from '../schema.js';

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

export class BullMQQueueActions implements QueueActions {
  private readonly queues = new Map<string, Queue>();

  constructor(private readonly o: { redisUrl: string; prefix: string }) {}

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
    const [paused, concurrency, rl] = await Promise.all([q.isPaused(), q.getGlobalConcurrency(), q.getGlobalRateLimit()]);
    return { paused, concurrency, rateLimit: rl ? { max: Number(rl.max), duration: Number(rl.duration) } : null };
  }

  async open(name: string, cfg: BreakerConfig, prior: QueueState): Promise<void> {
    const q = this.queue(name);
    if (cfg.action === 'pause') await q.pause();
    else if (cfg.action === 'concurrency') await q.setGlobalConcurrency(Math.min(cfg.concurrency, prior.concurrency ?? Infinity));
    else if (cfg.action === 'rate_limit') await q.setGlobalRateLimit(cfg.rateLimit.max, cfg.rateLimit.durationMs);
  }

  async halfOpen(name: string, cfg: BreakerConfig, a: AppliedAction): Promise<void> {
    const q = this.queue(name);
    await q.setGlobalConcurrency(Math.min(cfg.probeConcurrency, a.prevConcurrency ?? Infinity));
    if (a.kind === 'pause' && !a.wasPaused) await q.resume();
  }

  async restore(name: string, a: AppliedAction): Promise<void> {
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
    await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}
