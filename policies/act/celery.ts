/**
 * Breaker actions on a Celery queue, through Celery's own remote control (no code change in the
 * workers): `cancel_consumer` / `add_consumer` broadcast to every worker pause and resume consumption
 * of a queue; `rate_limit` throttles the task names seen on the queue. Commands travel over the
 * broker's `celery.pidbox` fanout exchange, cast without a reply, as kombu/pidbox.py `Mailbox._publish`
 * sends them: on Redis a kombu envelope PUBLISHed on `/{db}.celery.pidbox` (kombu/transport/redis.py
 * `_put_fanout`); on AMQP the JSON body itself, published to the `celery.pidbox` fanout exchange
 * (declared as kombu declares it: fanout, not durable, not auto-delete) with headers `clock` and
 * `expires`, transient.
 *
 * Broadcasts reach only workers running at the time, so while a breaker holds a queue paused the
 * command is re-sent every `reassertMs`: a worker started (or restarted) meanwhile stops consuming too.
 * Every command is idempotent. Celery has no global concurrency: the `concurrency` action pauses.
 * Celery does not say whether a queue was paused before (that needs an inspect round trip with
 * replies): `state` reports it as consumed, so closing resumes it.
 */
import { randomUUID } from 'node:crypto';
import amqp, { type ChannelModel, type ConfirmChannel } from 'amqplib';
import { Redis } from 'ioredis';
import type { AppliedAction } from '../detect/breaker.js';
import type { BreakerConfig } from '../schema.js';
import { QueueUnavailableError, type QueueActions, type QueueState } from './bullmq.js';

/** Publishes one control command to every worker (broker-specific). */
export interface ControlChannel {
  broadcast(method: string, args: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

/** The body of a pidbox cast to every worker (`Mailbox._publish`: no destination, no reply ticket). */
export function pidboxBody(method: string, args: Record<string, unknown>): Record<string, unknown> {
  return { method, arguments: args, destination: null, pattern: null, matcher: null };
}

/** kombu's JSON envelope of a pidbox cast, as `Mailbox._publish` sends it. */
export function pidboxEnvelope(method: string, args: Record<string, unknown>, clock: number, expiresInS = 30): string {
  const body = pidboxBody(method, args);
  return JSON.stringify({
    body: Buffer.from(JSON.stringify(body)).toString('base64'),
    'content-encoding': 'utf-8',
    'content-type': 'application/json',
    headers: { clock, expires: Date.now() / 1000 + expiresInS },
    properties: { delivery_mode: 2, delivery_info: { exchange: 'celery.pidbox', routing_key: '' }, priority: 0, body_encoding: 'base64', delivery_tag: randomUUID() },
  });
}

/** The pidbox fanout on a Redis broker: PUBLISH on `/{db}.celery.pidbox`. */
export class RedisControlChannel implements ControlChannel {
  private readonly redis: Redis;
  private clock = 0;
  readonly channel: string;

  constructor(brokerUrl: string, private readonly timeoutMs = 3000) {
    const db = Number(new URL(brokerUrl).pathname.replace(/^\//, '') || 0) || 0;
    this.channel = `/${db}.celery.pidbox`;
    this.redis = new Redis(brokerUrl, { maxRetriesPerRequest: 1, connectionName: 'warden-celery-control', lazyConnect: true });
    this.redis.on('error', () => undefined); // reported by the failing call
  }

  async broadcast(method: string, args: Record<string, unknown>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new QueueUnavailableError(`celery control ${method}: the broker did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      if (this.redis.status === 'wait') await Promise.race([this.redis.connect(), timeout]);
      await Promise.race([this.redis.publish(this.channel, pidboxEnvelope(method, args, ++this.clock)), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

/** The pidbox exchange as kombu declares it (`Mailbox._get_exchange`): a different declaration fails with PRECONDITION_FAILED. */
export const PIDBOX_EXCHANGE = { name: 'celery.pidbox', type: 'fanout', options: { durable: false, autoDelete: false } } as const;

/**
 * The pidbox fanout on an AMQP broker (RabbitMQ): one connection opened on first use and reopened
 * after a failure; each command is published on a confirm channel and resolves when the broker
 * has taken it (a command that could not be sent rejects and is re-sent on the next re-assert).
 */
export class AmqpControlChannel implements ControlChannel {
  private conn: ChannelModel | null = null;
  private channel: ConfirmChannel | null = null;
  private opening: Promise<ConfirmChannel> | null = null;
  private clock = 0;

  constructor(private readonly brokerUrl: string, private readonly timeoutMs = 3000) {}

  private open(): Promise<ConfirmChannel> {
    if (this.channel) return Promise.resolve(this.channel);
    this.opening ??= (async () => {
      const conn = await amqp.connect(this.brokerUrl.replace(/^pyamqp:/, 'amqp:'), { timeout: this.timeoutMs, clientProperties: { connection_name: 'warden-celery-control' } });
      conn.on('error', () => undefined); // reported by the failing call
      conn.on('close', () => { if (this.conn === conn) { this.conn = null; this.channel = null; } });
      try {
        const ch = await conn.createConfirmChannel();
        ch.on('error', () => undefined);
        ch.on('close', () => { if (this.channel === ch) { this.channel = null; void conn.close().catch(() => undefined); } });
        await ch.assertExchange(PIDBOX_EXCHANGE.name, PIDBOX_EXCHANGE.type, PIDBOX_EXCHANGE.options);
        this.conn = conn;
        this.channel = ch;
        return ch;
      } catch (err) {
        await conn.close().catch(() => undefined);
        throw err;
      }
    })().finally(() => { this.opening = null; });
    return this.opening;
  }

  async broadcast(method: string, args: Record<string, unknown>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new QueueUnavailableError(`celery control ${method}: the broker did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      const ch = await Promise.race([this.open(), timeout]);
      const body = Buffer.from(JSON.stringify(pidboxBody(method, args)));
      await Promise.race([
        new Promise<void>((resolve, reject) => {
          ch.publish(PIDBOX_EXCHANGE.name, '', body, {
            contentType: 'application/json', contentEncoding: 'utf-8', deliveryMode: 1,
            headers: { clock: ++this.clock, expires: Date.now() / 1000 + 30 },
          }, (err: unknown) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve()));
        }),
        timeout,
      ]);
    } catch (err) {
      if (err instanceof QueueUnavailableError) throw err;
      throw new QueueUnavailableError(`celery control ${method}: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.opening?.catch(() => undefined);
    const conn = this.conn;
    this.conn = null;
    this.channel = null;
    if (conn) await conn.close().catch(() => undefined);
  }
}

/** The control channel for a Celery broker URL (Redis or AMQP). */
export function controlChannelFor(brokerUrl: string): ControlChannel {
  return /^(amqps?|pyamqp):/.test(brokerUrl) ? new AmqpControlChannel(brokerUrl) : new RedisControlChannel(brokerUrl);
}

export interface CeleryQueueActionsOptions {
  control: ControlChannel;
  /** Task names seen on a queue (rate limits are per task name in Celery). */
  tasksOf?: (queue: string) => string[];
  /** How often a held pause or rate limit is re-sent (workers started since get it too). */
  reassertMs?: number;
  onError?: (err: Error) => void;
}

export class CeleryQueueActions implements QueueActions {
  /** What Warden currently holds on each queue, re-asserted on a timer. */
  private readonly held = new Map<string, { pause: boolean; rate: string | null; tasks: string[] }>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly o: CeleryQueueActionsOptions) {
    this.timer = setInterval(() => void this.reassert(), o.reassertMs ?? 5000);
    this.timer.unref();
  }

  async state(_queue: string): Promise<QueueState> {
    return { paused: false, concurrency: null, rateLimit: null };
  }

  async open(queue: string, cfg: BreakerConfig, _prior: QueueState): Promise<void> {
    if (cfg.action === 'rate_limit') {
      const rate = celeryRate(cfg.rateLimit.max, cfg.rateLimit.durationMs);
      const tasks = this.o.tasksOf?.(queue) ?? [];
      this.held.set(queue, { pause: false, rate, tasks });
      for (const t of tasks) await this.o.control.broadcast('rate_limit', { task_name: t, rate_limit: rate });
      return;
    }
    if (cfg.action === 'none') return;
    this.held.set(queue, { pause: true, rate: null, tasks: [] });
    await this.o.control.broadcast('cancel_consumer', { queue });
  }

  /** Probes: consumption resumes (Celery has no global concurrency to hold it to a few). */
  async halfOpen(queue: string, _cfg: BreakerConfig, a: AppliedAction): Promise<void> {
    const h = this.held.get(queue);
    this.held.delete(queue);
    if (a.kind === 'rate_limit') {
      for (const t of h?.tasks ?? this.o.tasksOf?.(queue) ?? []) await this.o.control.broadcast('rate_limit', { task_name: t, rate_limit: null });
      return;
    }
    if (!a.wasPaused) await this.o.control.broadcast('add_consumer', { queue });
  }

  async restore(queue: string, a: AppliedAction): Promise<void> {
    const h = this.held.get(queue);
    this.held.delete(queue);
    if (a.kind === 'rate_limit') {
      for (const t of h?.tasks ?? this.o.tasksOf?.(queue) ?? []) await this.o.control.broadcast('rate_limit', { task_name: t, rate_limit: null });
      return;
    }
    if (!a.wasPaused) await this.o.control.broadcast('add_consumer', { queue });
  }

  private async reassert(): Promise<void> {
    for (const [queue, h] of this.held) {
      try {
        if (h.pause) await this.o.control.broadcast('cancel_consumer', { queue });
        else for (const t of h.tasks) await this.o.control.broadcast('rate_limit', { task_name: t, rate_limit: h.rate });
      } catch (err) {
        this.o.onError?.(err as Error);
      }
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.o.control.close();
  }
}

/** Celery's rate string for `max` per `durationMs` (`/s`, `/m`, `/h`; per second rounded up). */
export function celeryRate(max: number, durationMs: number): string {
  if (durationMs === 1000) return `${max}/s`;
  if (durationMs === 60_000) return `${max}/m`;
  if (durationMs === 3_600_000) return `${max}/h`;
  return `${Math.max(1, Math.round((max * 60_000) / durationMs))}/m`;
}
