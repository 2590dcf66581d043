/**
 * Celery's events over an AMQP broker (RabbitMQ), the durable path. Workers publish events to the
 * `celeryev` topic exchange (routing key = event type with dots, `task.multi` for batches); Celery's
 * own receivers use an auto-delete queue, so events published while nobody listens are dropped.
 * This source declares its own durable queue bound to `celeryev` with `#`, so the broker keeps the
 * events while the sidecar is away (up to `x-max-length` messages and `x-message-ttl`), and acks a
 * message only after the handler resolved, i.e. after its events are durable in the ledger spool.
 * A crash between the append and the ack redelivers the message: event IDs are deterministic, the
 * sink drops what it already holds.
 *
 * What it does not keep: Celery publishes events transient (delivery_mode 1), so a broker restart
 * drops what the queue held; messages beyond the bounds are dropped oldest first. Both are reported
 * as gaps (after a reconnect; when the queue is found at its length bound) and reconciled.
 */
import amqp, { type Channel, type ChannelModel, type ConsumeMessage } from 'amqplib';
import { decodeBody } from './envelope.js';
import type { CeleryEventSource, SourceHandlers } from './source.js';

/** The events exchange exactly as Celery declares it (`celery/events/event.py`): else PRECONDITION_FAILED. */
export const CELERY_EVENT_EXCHANGE = { name: 'celeryev', type: 'topic', options: { durable: true, autoDelete: false } } as const;

export interface AmqpEventSourceOptions {
  /** Durable queue bound to `celeryev` (one consuming sidecar per queue). */
  queue: string;
  /** `x-max-length` (messages; the oldest are dropped beyond it). */
  maxLength: number;
  /** `x-message-ttl` (ms). */
  messageTtlMs: number;
  /** Unacked messages in flight. */
  prefetch: number;
  /** Reconnect backoff bounds (ms). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** amqplib's spelling of a Celery/kombu broker URL (`pyamqp://` is kombu's name for the same protocol). */
export function amqplibUrl(brokerUrl: string): string {
  return brokerUrl.replace(/^pyamqp:/, 'amqp:');
}

/** Where a URL is safe to log: no credentials. */
function where(brokerUrl: string): string {
  try {
    const u = new URL(amqplibUrl(brokerUrl));
    return `${u.protocol}//${u.host}`;
  } catch {
    return 'the broker';
  }
}

export class AmqpEventSource implements CeleryEventSource {
  readonly durable = true;
  private conn: ChannelModel | null = null;
  private channel: Channel | null = null;
  private handlers: SourceHandlers | null = null;
  private running = false;
  private connectedOnce = false;
  private backoffMs: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private connecting: Promise<void> | null = null;
  private consumerTag: string | null = null;
  /** Handler calls not yet settled (their acks wait on them). */
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly brokerUrl: string, private readonly o: AmqpEventSourceOptions) {
    this.backoffMs = o.minBackoffMs ?? 200;
  }

  get connected(): boolean { return this.channel !== null; }

  /** How long the broker keeps an event for an absent sidecar. */
  get retentionMs(): number { return this.o.messageTtlMs; }

  async backlog(): Promise<number | null> {
    const ch = this.channel;
    if (!ch) return null;
    try {
      return (await ch.checkQueue(this.o.queue)).messageCount;
    } catch {
      return null;
    }
  }

  async start(h: SourceHandlers): Promise<void> {
    this.handlers = h;
    this.running = true;
    // The first attempt is awaited (so a reachable broker is consumed from when start resolves); a
    // broker that is down is retried in the background: the sidecar starts anyway.
    await this.connect();
  }

  private connect(): Promise<void> {
    this.connecting ??= this.open().finally(() => { this.connecting = null; });
    return this.connecting;
  }

  private async open(): Promise<void> {
    const h = this.handlers!;
    let conn: ChannelModel | null = null;
    try {
      conn = await amqp.connect(amqplibUrl(this.brokerUrl), { timeout: 5000, clientProperties: { connection_name: 'warden-celery-events' } });
      if (!this.running) { await conn.close().catch(() => undefined); return; }
      conn.on('error', (err: Error) => h.error('amqp', err));
      conn.on('close', () => this.lost(conn!));
      const ch = await conn.createChannel();
      ch.on('error', (err: Error) => h.error('amqp channel', err));
      ch.on('close', () => { if (this.channel === ch) { this.channel = null; void conn!.close().catch(() => undefined); } });
      await ch.assertExchange(CELERY_EVENT_EXCHANGE.name, CELERY_EVENT_EXCHANGE.type, CELERY_EVENT_EXCHANGE.options);
      const q = await ch.assertQueue(this.o.queue, {
        durable: true, autoDelete: false, exclusive: false,
        arguments: { 'x-max-length': this.o.maxLength, 'x-message-ttl': this.o.messageTtlMs },
      });
      await ch.bindQueue(this.o.queue, CELERY_EVENT_EXCHANGE.name, '#');
      await ch.prefetch(this.o.prefetch);
      this.conn = conn;
      this.channel = ch;
      this.backoffMs = this.o.minBackoffMs ?? 200;
      if (q.messageCount >= this.o.maxLength) {
        h.gap(`the durable event queue ${this.o.queue} was at its bound (x-max-length ${this.o.maxLength}) when the sidecar connected; the oldest events beyond it were dropped by the broker`);
      }
      if (this.connectedOnce) {
        h.gap(`the connection to ${where(this.brokerUrl)} was re-established; events in the durable queue were kept, but if the broker restarted meanwhile its transient event messages are lost`);
      }
      this.connectedOnce = true;
      const { consumerTag } = await ch.consume(this.o.queue, (msg) => { if (msg) this.onMessage(ch, msg); }, { noAck: false });
      this.consumerTag = consumerTag;
    } catch (err) {
      h.error('amqp connect', err as Error);
      if (conn) await conn.close().catch(() => undefined);
      if (this.conn === conn) { this.conn = null; this.channel = null; }
      this.schedule();
    }
  }

  private lost(conn: ChannelModel): void {
    if (this.conn !== conn) return;
    this.conn = null;
    this.channel = null;
    if (this.running) this.schedule();
  }

  private schedule(): void {
    if (!this.running || this.retryTimer) return;
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.o.maxBackoffMs ?? 10_000);
    this.retryTimer = setTimeout(() => { this.retryTimer = null; void this.connect(); }, wait);
    this.retryTimer.unref();
  }

  private onMessage(ch: Channel, msg: ConsumeMessage): void {
    const h = this.handlers!;
    let events;
    try {
      events = decodeBody(msg.content, msg.properties.contentType ?? 'application/json');
    } catch (err) {
      // Never readable, however often redelivered: reported, then acked (dropped).
      h.error('decode', err as Error);
      this.settle(ch, msg, true);
      return;
    }
    if (events.length === 0) { this.settle(ch, msg, true); return; }
    const p = h.events(events).then(
      () => this.settle(ch, msg, true),
      (err: Error) => {
        // Not durable: back to the queue (redelivered, to this or the next run), after a pause so a failing spool is not hammered.
        h.error('sink', err);
        setTimeout(() => this.settle(ch, msg, false), 1000).unref();
      },
    );
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  /** Acks (or requeues) on the channel the message came on; a closed channel means the broker redelivers it. */
  private settle(ch: Channel, msg: ConsumeMessage, ok: boolean): void {
    if (this.channel !== ch) return;
    try {
      if (ok) ch.ack(msg);
      else ch.nack(msg, false, true);
    } catch {
      // The channel closed meanwhile: the message stays unacked and is redelivered.
    }
  }

  /** Stops consuming, lets what was delivered reach the ledger and acks it, then closes. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.retryTimer) { clearTimeout(this.retryTimer); this.retryTimer = null; }
    await this.connecting?.catch(() => undefined);
    const ch = this.channel;
    // No new deliveries; what was delivered is written and acked below.
    if (ch && this.consumerTag) await ch.cancel(this.consumerTag).catch(() => undefined);
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
    const conn = this.conn;
    this.channel = null;
    this.conn = null;
    if (conn) await conn.close().catch(() => undefined);
  }
}
