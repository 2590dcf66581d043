/**
 * NATS JetStream transport: each event is published to `warden.events.<source>` on the stream
 * WARDEN_EVENTS with message ID = event_id, so JetStream drops a resend inside its duplicate window
 * (and the sidecar's own index catches one after it). The connection reconnects forever; a publish
 * that fails or times out makes the whole batch fail, and the outbox resends it.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import { TransportRejectedError, type OutboxItem, type Transport } from './outbox.js';
import { EVENT_STREAM, EVENT_SUBJECT_PREFIX, ensureEventStream } from '../../core/event-stream.js';

export { EVENT_STREAM, EVENT_SUBJECT_PREFIX, ensureEventStream };

export interface NatsTransportOptions {
  /** Server URL(s), e.g. nats://nats.internal:4222; or pass an open `connection` (not closed by us). */
  url?: string | string[];
  connection?: NatsConnection;
  stream?: string;
  subjectPrefix?: string;
  /** JetStream's dedupe window by message ID, set when this transport creates the stream (default 2 min). */
  duplicateWindowMs?: number;
  /** How long the stream keeps events when this transport creates it (default 7 days): the ledger, not the stream, is the record. */
  maxAgeMs?: number;
  /** JetStream replicas when this transport creates the stream (default 1; 3 on a three-node cluster). */
  replicas?: number;
  /** Timeout of one publish acknowledgement, and of connecting (default 5000 ms). */
  timeoutMs?: number;
}


export class NatsTransport implements Transport {
  readonly name = 'nats';
  private nc: NatsConnection | null;
  private js: JetStreamClient | null = null;
  private connecting: Promise<JetStreamClient> | null = null;
  private readonly prefix: string;
  private readonly timeoutMs: number;

  constructor(private readonly o: NatsTransportOptions) {
    if (!o.url && !o.connection) throw new TypeError('NatsTransport needs a url or a connection');
    this.nc = o.connection ?? null;
    this.prefix = o.subjectPrefix ?? EVENT_SUBJECT_PREFIX;
    this.timeoutMs = o.timeoutMs ?? 5000;
  }

  async send(items: OutboxItem[]): Promise<void> {
    const js = await this.ready();
    // An event over the server's max_payload is refused by the client every time: drop that one
    // event (counted and reported), rather than retrying the batch forever behind it.
    const max = this.nc?.info?.max_payload;
    if (max) {
      const i = items.findIndex((it) => Buffer.byteLength(it.json) > max - 512); // headers (Nats-Msg-Id) ride along
      if (i >= 0) throw new TransportRejectedError(`event ${items[i].id} is ${Buffer.byteLength(items[i].json)} bytes, over the NATS server's max_payload of ${max}`, i);
    }
    try {
      // A duplicate ack (already stored) is a success too.
      await Promise.all(items.map((it) => js.publish(`${this.prefix}.${it.source}`, it.json, { msgID: it.id, timeout: this.timeoutMs })));
    } catch (err) {
      // No stream answers (deleted, or a server restarted with an empty store): make sure it exists before the resend.
      if (/no responders|stream not found|503/i.test((err as Error).message)) this.js = null;
      throw err;
    }
  }

  async close(): Promise<void> {
    const nc = this.nc;
    this.nc = null;
    this.js = null;
    if (nc && !this.o.connection) await nc.close().catch(() => undefined);
  }

  /** Connects once (the client then reconnects by itself, forever) and makes sure the stream exists. */
  private ready(): Promise<JetStreamClient> {
    if (this.js && this.nc && !this.nc.isClosed()) return Promise.resolve(this.js);
    this.connecting ??= this.open().finally(() => { this.connecting = null; });
    return this.connecting;
  }

  private async open(): Promise<JetStreamClient> {
    let nc = this.nc;
    if (!nc || nc.isClosed()) {
      if (this.o.connection) throw new Error('the NATS connection given to warden was closed');
      nc = await connect({ servers: this.o.url!, name: 'warden-hooks', timeout: this.timeoutMs, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
      this.nc = nc;
    }
    await ensureEventStream(nc, { stream: this.o.stream, subjectPrefix: this.prefix, duplicateWindowMs: this.o.duplicateWindowMs, maxAgeMs: this.o.maxAgeMs, timeoutMs: this.timeoutMs, replicas: this.o.replicas });
    this.js = jetstream(nc, { timeout: this.timeoutMs });
    return this.js;
  }
}
