/**
 * Publishes every signed ledger checkpoint to a NATS JetStream stream (when `nats.url` is set), a
 * third copy outside ClickHouse beside `checkpoints.jsonl`.
 *
 * Never blocks or fails the ledger: the Checkpointer's listener only pushes onto a bounded in-memory
 * queue (oldest dropped when full, counted) and a background loop publishes with retry and backoff.
 * Each message carries the message ID `<key_id>:<size>`, so JetStream drops redeliveries. On every
 * (re)connect, after a failure and after a drop, the loop reads the stream's last checkpoint and
 * publishes the ones in `checkpoints.jsonl` newer than it: an outage or a full queue loses nothing.
 */
import type { Logger } from 'pino';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, StorageType, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { WakeableSleep } from '../core/wakeable-sleep.js';
import { checkpointsPath, readCheckpointFile, type Checkpoint, type Checkpointer } from '../ledger/checkpoints/checkpoint.js';
import { maskUrlUserinfo, natsServers, type WardenConfig } from './config.js';
import type { WardenMetrics } from './metrics.js';

export const CHECKPOINT_STREAM = 'WARDEN_CHECKPOINTS';

export interface CheckpointPublisherOptions {
  url: string | string[];
  subject: string;
  /** JetStream replicas of the checkpoint stream if this publisher creates it (default 1). */
  replicas?: number;
  /** The data directory holding `checkpoints.jsonl` (the catch-up source). */
  dataDir: string;
  stream?: string;
  /** Checkpoints kept in memory while NATS is unreachable (default 1000); the oldest is dropped beyond. */
  maxQueue?: number;
  /** Backoff between attempts while failing: from minBackoffMs doubling up to maxBackoffMs. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Timeout of one connect or publish (default 5000 ms). */
  timeoutMs?: number;
  /** A failed attempt ('connect', 'publish', 'catch-up') or a dropped checkpoint ('dropped'). */
  onError?: (where: string, err: Error) => void;
  onPublished?: (cp: Checkpoint) => void;
}

export interface PublisherStatus {
  connected: boolean;
  queued: number;
  dropped: number;
  published: number;
  /** The size of the newest checkpoint JetStream acknowledged (or found in the stream). */
  lastAckedSize: number;
  failing: { since: number; error: string } | null;
}

export const checkpointMsgId = (cp: Checkpoint): string => `${cp.key_id}:${cp.size}`;

export class CheckpointPublisher {
  private readonly stream: string;
  private readonly maxQueue: number;
  private readonly minBackoff: number;
  private readonly maxBackoff: number;
  private readonly timeoutMs: number;
  private readonly queue: Checkpoint[] = [];
  private nc: NatsConnection | null = null;
  private js: JetStreamClient | null = null;
  private jsm: JetStreamManager | null = null;
  private needSync = true;
  private stopped = false;
  private readonly nap = new WakeableSleep();
  private loop: Promise<void> | null = null;
  private drainUntil = 0;
  private readonly st: Omit<PublisherStatus, 'connected' | 'queued'> = { dropped: 0, published: 0, lastAckedSize: 0, failing: null };

  constructor(private readonly opts: CheckpointPublisherOptions) {
    this.stream = opts.stream ?? CHECKPOINT_STREAM;
    this.maxQueue = opts.maxQueue ?? 1000;
    this.minBackoff = opts.minBackoffMs ?? 200;
    this.maxBackoff = opts.maxBackoffMs ?? 10_000;
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  /** Queues a checkpoint for publishing. Synchronous, never throws, never waits for NATS. */
  enqueue(cp: Checkpoint): void {
    if (this.stopped && Date.now() > this.drainUntil) return;
    this.queue.push(cp);
    while (this.queue.length > this.maxQueue) {
      this.queue.shift();
      this.st.dropped++;
      this.needSync = true; // the dropped ones are in checkpoints.jsonl: the next catch-up publishes them
      this.report('dropped', new Error(`checkpoint queue full (${this.maxQueue}); dropped the oldest (it is re-read from the checkpoint file once NATS is reachable)`));
    }
    this.kick();
  }

  /** Subscribes to the Checkpointer and starts the background loop. */
  attach(checkpointer: Checkpointer): () => void {
    this.start();
    return checkpointer.onCheckpoint((cp) => this.enqueue(cp));
  }

  start(): void {
    if (!this.loop) this.loop = this.run();
  }

  status(): PublisherStatus {
    return { connected: this.nc !== null && !this.nc.isClosed(), queued: this.queue.length, ...this.st, failing: this.st.failing && { ...this.st.failing } };
  }

  /** Tries for up to drainMs to publish what is queued, then closes the connection. */
  async stop(opts: { drainMs?: number } = {}): Promise<void> {
    if (this.stopped) return;
    this.drainUntil = Date.now() + (opts.drainMs ?? 3000);
    this.stopped = true;
    this.kick();
    await this.loop;
    const nc = this.nc;
    this.nc = null;
    await nc?.close().catch(() => undefined);
  }

  private kick(): void {
    this.nap.wake();
  }

  private get draining(): boolean {
    return this.stopped && Date.now() < this.drainUntil;
  }

  private async run(): Promise<void> {
    let backoff = this.minBackoff;
    while (!this.stopped || (this.draining && (this.queue.length > 0 || this.needSync))) {
      if (this.queue.length === 0 && !this.needSync) {
        await this.nap.sleep(60_000);
        continue;
      }
      try {
        await this.ensureConnected();
        if (this.needSync) await this.catchUp();
        while (this.queue.length > 0) {
          const cp = this.queue[0];
          if (cp.size > this.st.lastAckedSize) await this.publish(cp);
          this.queue.shift();
        }
        backoff = this.minBackoff;
        this.st.failing = null;
      } catch (err) {
        this.needSync = true;
        if (!this.st.failing) this.st.failing = { since: Date.now(), error: (err as Error).message };
        else this.st.failing.error = (err as Error).message;
        this.report(this.nc ? 'publish' : 'connect', err as Error);
        const wait = this.stopped ? Math.min(backoff, Math.max(0, this.drainUntil - Date.now())) : backoff;
        backoff = Math.min(backoff * 2, this.maxBackoff);
        if (this.stopped) await new Promise((r) => setTimeout(r, wait));
        else await this.nap.sleep(wait).then(() => undefined);
      }
    }
  }

  private async ensureConnected(): Promise<void> {
    if (this.nc && !this.nc.isClosed()) return;
    const nc = await connect({
      servers: this.opts.url,
      name: 'warden-checkpoints',
      timeout: this.timeoutMs,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    this.nc = nc;
    this.js = jetstream(nc, { timeout: this.timeoutMs });
    this.jsm = await jetstreamManager(nc, { timeout: this.timeoutMs });
    this.needSync = true;
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'reconnect') { this.needSync = true; this.kick(); }
      }
    })().catch(() => undefined);
    void nc.closed().then(() => { if (this.nc === nc) this.nc = null; });
  }

  /** Creates the stream if missing, reads the last checkpoint in it, publishes the file's newer ones. */
  private async catchUp(): Promise<void> {
    const jsm = this.jsm!;
    const { subject } = this.opts;
    try {
      await jsm.streams.info(this.stream);
    } catch (err) {
      if (!/stream not found/i.test((err as Error).message)) throw err;
      await jsm.streams.add({ name: this.stream, subjects: [subject], storage: StorageType.File, num_replicas: this.opts.replicas ?? 1 });
    }
    const last = await jsm.streams.getMessage(this.stream, { last_by_subj: subject }).catch((err: Error) => {
      if (/no message found|not found/i.test(err.message)) return null;
      throw err;
    });
    if (last) {
      const cp = last.json<Checkpoint>();
      if (Number.isSafeInteger(cp.size) && cp.size > this.st.lastAckedSize) this.st.lastAckedSize = cp.size;
    }
    const file = await readCheckpointFile(checkpointsPath(this.opts.dataDir));
    for (const line of file.lines) {
      const cp = line.checkpoint;
      if (cp && cp.size > this.st.lastAckedSize) await this.publish(cp);
    }
    this.needSync = false;
  }

  private async publish(cp: Checkpoint): Promise<void> {
    await this.js!.publish(this.opts.subject, JSON.stringify(cp), { msgID: checkpointMsgId(cp), timeout: this.timeoutMs });
    if (cp.size > this.st.lastAckedSize) this.st.lastAckedSize = cp.size;
    this.st.published++;
    this.opts.onPublished?.(cp);
  }

  private report(where: string, err: Error): void {
    try {
      this.opts.onError?.(where, err);
    } catch {
      // a reporting hook must not stop the publisher
    }
  }
}

/** Wires the publisher into the sidecar when nats.url is configured; null otherwise. */
export function startCheckpointPublishing(config: WardenConfig, checkpointer: Checkpointer, metrics: WardenMetrics, logger: Logger): CheckpointPublisher | null {
  const n = config.nats;
  if (!n.url) return null;
  let lastLogged = 0;
  const publisher = new CheckpointPublisher({
    url: natsServers(n.url),
    replicas: n.replicas,
    subject: n.checkpointSubject,
    dataDir: config.dataDir,
    onError: (where, err) => {
      metrics.checkpointPublishErrors.inc({ reason: where });
      if (Date.now() - lastLogged > 5000) {
        lastLogged = Date.now();
        logger.warn({ where, err: err.message, queued: publisher.status().queued }, 'publishing ledger checkpoints to NATS failed (retrying; they stay in checkpoints.jsonl)');
      }
    },
  });
  publisher.attach(checkpointer);
  logger.info({ url: maskUrlUserinfo(n.url), subject: n.checkpointSubject, stream: CHECKPOINT_STREAM }, 'publishing ledger checkpoints to NATS JetStream');
  return publisher;
}
