/**
 * Where Celery's events come from. Two brokers, two guarantees:
 * - Redis: pub/sub on `/{db}.celeryev/*`. Nothing is kept for an absent (or disconnected, or too slow)
 *   subscriber; the source reports each (re)subscription so the collector can reconcile what it missed.
 * - AMQP (RabbitMQ): a durable queue bound to the `celeryev` topic exchange keeps events while the
 *   sidecar is down; a message is acked only after its events are durable in the ledger (amqp.ts).
 */
import { Redis } from 'ioredis';
import { AmqpEventSource, type AmqpEventSourceOptions } from './amqp.js';
import { decodeEnvelope, type CeleryEvent } from './envelope.js';

export interface SourceHandlers {
  /** Events of one message, in order; resolves when they are durable (an AMQP source acks then). */
  events(events: CeleryEvent[]): Promise<void>;
  /** Events may have been missed (not subscribed for a while, or dropped): the collector reconciles. */
  gap(reason: string): void;
  error(where: string, err: Error): void;
}

export interface CeleryEventSource {
  /** True when the broker keeps events for the sidecar while it is away (AMQP durable queue). */
  readonly durable: boolean;
  readonly connected: boolean;
  /** How long the broker keeps an event for an absent sidecar (durable sources), in ms. */
  readonly retentionMs?: number;
  /** Messages waiting in the broker for this source (durable sources); null when not known (not connected). */
  backlog?(): Promise<number | null>;
  start(h: SourceHandlers): Promise<void>;
  stop(): Promise<void>;
}

export class UnsupportedBrokerError extends Error {
  override readonly name = 'UnsupportedBrokerError';
}

/** Redis database of a redis:// URL (kombu's `/{db}.` fanout prefix). */
export function redisDb(url: string): number {
  const p = new URL(url).pathname.replace(/^\//, '');
  return p ? Number(p) || 0 : 0;
}

/** Largest number of messages held in memory before the collector falls behind by design (then: gap). */
const MAX_PENDING = 50_000;

export class RedisEventSource implements CeleryEventSource {
  readonly durable = false;
  private sub: Redis | null = null;
  private pending: CeleryEvent[][] = [];
  private draining: Promise<void> | null = null;
  private dropped = 0;
  private subscribedOnce = false;
  private handlers: SourceHandlers | null = null;

  constructor(private readonly brokerUrl: string) {}

  get connected(): boolean { return this.sub?.status === 'ready'; }

  get channelPattern(): string { return `/${redisDb(this.brokerUrl)}.celeryev/*`; }

  async start(h: SourceHandlers): Promise<void> {
    this.handlers = h;
    const sub = new Redis(this.brokerUrl, { maxRetriesPerRequest: null, connectionName: 'warden-celery-events', autoResubscribe: true, lazyConnect: true });
    this.sub = sub;
    sub.on('error', (err) => h.error('redis', err));
    sub.on('pmessageBuffer', (_p: Buffer, _c: Buffer, msg: Buffer) => this.onMessage(msg));
    // Every subscription after the first is a reconnect: events published in between are gone.
    sub.on('ready', () => {
      if (this.subscribedOnce) h.gap('the event subscription was re-established after a Redis disconnect; events published while it was down are lost');
    });
    await sub.connect();
    await sub.psubscribe(this.channelPattern);
    this.subscribedOnce = true;
  }

  private onMessage(msg: Buffer): void {
    let events: CeleryEvent[];
    try {
      events = decodeEnvelope(msg);
    } catch (err) {
      this.handlers?.error('decode', err as Error);
      return;
    }
    if (events.length === 0) return;
    if (this.pending.length >= MAX_PENDING) {
      this.dropped++;
      if (this.dropped === 1) this.handlers?.gap(`more than ${MAX_PENDING} event messages waited for the ledger; newer ones were dropped`);
      return;
    }
    this.pending.push(events);
    this.draining ??= this.drain();
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, 256).flat();
        this.dropped = 0;
        try {
          await this.handlers!.events(batch);
        } catch (err) {
          // Pub/sub cannot redeliver: what could not be written is a gap, reconciled from the result backend.
          this.handlers!.error('sink', err as Error);
          this.handlers!.gap(`writing ${batch.length} events to the ledger failed (${(err as Error).message}); they are reconciled from the result backend`);
        }
      }
    } finally {
      this.draining = null;
    }
  }

  /** Stops listening and writes what was received. */
  async stop(): Promise<void> {
    const sub = this.sub;
    this.sub = null;
    if (sub) {
      sub.removeAllListeners('ready');
      await sub.punsubscribe().catch(() => undefined);
      sub.disconnect();
    }
    while (this.draining) await this.draining;
  }
}

export const DEFAULT_AMQP_SOURCE: AmqpEventSourceOptions = { queue: 'warden.celeryev', maxLength: 1_000_000, messageTtlMs: 86_400_000, prefetch: 256 };

/** The event source for a broker URL: Redis pub/sub, or the durable AMQP queue. */
export function sourceFor(brokerUrl: string, amqpOptions: AmqpEventSourceOptions = DEFAULT_AMQP_SOURCE): CeleryEventSource {
  if (/^rediss?:/.test(brokerUrl)) return new RedisEventSource(brokerUrl);
  if (/^(amqp|amqps|pyamqp):/.test(brokerUrl)) return new AmqpEventSource(brokerUrl, amqpOptions);
  throw new UnsupportedBrokerError(`celery.brokerUrl: unsupported broker scheme ${brokerUrl.split(':')[0]} (expected redis://, rediss:// or amqp://)`);
}
