/**
 * The sidecar's end of the NATS transport: a durable pull consumer on WARDEN_EVENTS. Messages are
 * taken in batches; each is parsed and checked against the event schema; the valid ones go to the
 * sink (the agent appends them durably and skips duplicates) and are acknowledged only once the sink
 * resolved. A malformed message is terminated (`term`, never redelivered) and reported with the field
 * that was wrong, so it cannot block the stream. A failed sink `nak`s the batch for redelivery.
 *
 * Several sidecars may share the durable consumer: JetStream hands each message to one of them.
 * The loop survives NATS restarts (the client reconnects; a consume that ends is started again).
 */
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import { checkEvent } from '../../core/event-validation.js';
import type { WardenEvent } from '../../core/event.js';
import { ensureEventStream, EVENT_STREAM, EVENT_SUBJECT_PREFIX } from '../../core/event-stream.js';

export interface NatsEventConsumerOptions {
  url: string | string[];
  stream?: string;
  subjectPrefix?: string;
  /** Durable consumer name, shared by every sidecar that should split the work (default warden-sidecar). */
  durable?: string;
  /** JetStream replicas of the stream if this consumer creates it (default 1). */
  replicas?: number;
  /** Messages per batch handed to the sink (default 256). */
  batchSize?: number;
  /** How long JetStream waits for an ack before redelivering (default 30 000 ms). */
  ackWaitMs?: number;
  /** Appends the events durably; acks follow its resolution. */
  sink(events: WardenEvent[]): Promise<void>;
  onInvalid?(info: { subject: string; streamSeq: number; field: string; message: string }): void;
  onError?(where: string, err: Error): void;
  onBatch?(n: number): void;
}

export const DEFAULT_DURABLE = 'warden-sidecar';

export class NatsEventConsumer {
  private nc: NatsConnection | null = null;
  private messages: ConsumerMessages | null = null;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  readonly counts = { received: 0, delivered: 0, invalid: 0, sinkErrors: 0 };

  constructor(private readonly o: NatsEventConsumerOptions) {}

  start(): void {
    this.loop ??= this.run();
  }

  get connected(): boolean {
    return this.nc !== null && !this.nc.isClosed();
  }

  /** Stops taking messages; the batch in hand is finished (sink + acks) before the connection closes. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const w = this.wake;
    this.wake = null;
    w?.();
    await withTimeout(this.messages?.close(), 2000);
    await this.loop;
    const nc = this.nc;
    this.nc = null;
    // Draining flushes the last acks; it cannot complete while NATS is unreachable, so it is bounded.
    if (nc && !(await withTimeout(nc.drain(), 3000))) await nc.close().catch(() => undefined);
  }

  private async run(): Promise<void> {
    let backoff = 250;
    while (!this.stopped) {
      try {
        await this.consumeOnce();
        backoff = 250;
      } catch (err) {
        this.report('consume', err as Error);
      }
      if (this.stopped) break;
      await this.sleep(backoff);
      backoff = Math.min(backoff * 2, 5000);
    }
  }

  /** One consume session: returns when it ends (stop, or the iterator closed); throws on setup errors. */
  private async consumeOnce(): Promise<void> {
    if (!this.nc || this.nc.isClosed()) {
      this.nc = await connect({ servers: this.o.url, name: 'warden-sidecar-ingest', reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    }
    const nc = this.nc;
    const stream = this.o.stream ?? EVENT_STREAM;
    const durable = this.o.durable ?? DEFAULT_DURABLE;
    const prefix = this.o.subjectPrefix ?? EVENT_SUBJECT_PREFIX;
    await ensureEventStream(nc, { stream, subjectPrefix: prefix, replicas: this.o.replicas });
    const jsm = await jetstreamManager(nc);
    const config = {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(this.o.ackWaitMs ?? 30_000),
      filter_subject: `${prefix}.>`,
      max_ack_pending: Math.max(1000, (this.o.batchSize ?? 256) * 4),
    };
    try {
      await jsm.consumers.info(stream, durable);
      await jsm.consumers.update(stream, durable, { ack_wait: config.ack_wait, max_ack_pending: config.max_ack_pending });
    } catch (err) {
      if (!/consumer not found/i.test((err as Error).message)) throw err;
      await jsm.consumers.add(stream, config).catch((e: Error) => { if (!/already in use|already exists/i.test(e.message)) throw e; });
    }
    const consumer = await jetstream(nc).consumers.get(stream, durable);
    const batchSize = this.o.batchSize ?? 256;
    const messages = await consumer.consume({ max_messages: batchSize });
    this.messages = messages;
    if (this.stopped) { await messages.close(); return; }
    // A stream or durable deleted (or lost by a server that restarted with an empty store): end this
    // session, so the next one creates them again instead of waiting for someone else to.
    void (async () => {
      for await (const st of messages.status()) {
        if (st.type === 'consumer_not_found' || st.type === 'stream_not_found' || st.type === 'consumer_deleted') {
          this.report('consume', new Error(`${st.type.replace(/_/g, ' ')}: recreating`));
          await messages.close();
          break;
        }
      }
    })().catch(() => undefined);
    // Receiving and appending overlap: messages that arrive while a batch is appended form the next
    // batch (up to batchSize), so a quiet stream never leaves a partial batch waiting. The buffer stays
    // bounded by the consumer's max_ack_pending.
    const pending: JsMsg[] = [];
    let working = false; // set and cleared synchronously around the loop, so no message is left behind
    let last: Promise<void> = Promise.resolve();
    const drain = async () => {
      working = true;
      try {
        while (pending.length > 0) {
          const batch = pending.splice(0, batchSize);
          // Unacknowledged on an unexpected error: JetStream redelivers after the ack wait.
          await this.handle(batch).catch((err: Error) => this.report('handle', err));
        }
      } finally {
        working = false;
      }
    };
    for await (const m of messages) {
      pending.push(m);
      if (!working) last = drain();
    }
    await last;
    if (pending.length > 0) await drain();
  }

  private async handle(msgs: JsMsg[]): Promise<void> {
    this.counts.received += msgs.length;
    const good: JsMsg[] = [];
    const events: WardenEvent[] = [];
    for (const m of msgs) {
      let value: unknown;
      try {
        value = m.json();
      } catch (err) {
        this.invalid(m, '(body)', `not JSON: ${(err as Error).message}`);
        continue;
      }
      const c = checkEvent(value);
      if (!c.ok) {
        this.invalid(m, c.field, c.message);
        continue;
      }
      good.push(m);
      events.push(c.event);
    }
    if (events.length === 0) return;
    try {
      await this.o.sink(events);
    } catch (err) {
      this.counts.sinkErrors++;
      this.report('sink', err as Error);
      for (const m of good) m.nak(1000); // redelivered; the sink skips what it already holds
      return;
    }
    for (const m of good) m.ack();
    this.counts.delivered += events.length;
    this.o.onBatch?.(events.length);
  }

  private invalid(m: JsMsg, field: string, message: string): void {
    this.counts.invalid++;
    m.term(); // no reason text: nats-server 2.9 ignores a '+TERM <reason>' it does not parse
    try { this.o.onInvalid?.({ subject: m.subject, streamSeq: m.seq, field, message }); } catch { /* reporting must not stop consuming */ }
  }

  private report(where: string, err: Error): void {
    try { this.o.onError?.(where, err); } catch { /* idem */ }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wake = null; resolve(); }, ms);
      this.wake = () => { clearTimeout(t); resolve(); };
    });
  }
}

/** True if the promise settled within ms (a rejection counts as settled). */
async function withTimeout(p: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  if (!p) return true;
  let t: NodeJS.Timeout | undefined;
  const settled = p.then(() => true, () => true);
  const late = new Promise<boolean>((r) => { t = setTimeout(() => r(false), ms); });
  const r = await Promise.race([settled, late]);
  clearTimeout(t);
  return r;
}
