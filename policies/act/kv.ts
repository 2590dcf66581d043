/**
 * Publishes breaker states to the NATS KV bucket BREAKER_BUCKET (core/breakers.ts), where the
 * Temporal activity interceptor watches them and fails fast. Never blocks the engine: `publish` only
 * records the newest status per key; a background loop connects, creates the bucket if missing and
 * puts every pending key, retrying with backoff while NATS is away (the newest status wins, and on
 * every reconnect all known statuses are put again, so a restarted NATS is brought up to date).
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { BREAKER_BUCKET, type BreakerStatus } from '../../core/breakers.js';

export interface BreakerPublisher {
  publish(status: BreakerStatus): void;
  stop(): Promise<void>;
}

export class KvBreakerPublisher implements BreakerPublisher {
  private readonly latest = new Map<string, BreakerStatus>();
  private readonly pending = new Set<string>();
  private nc: NatsConnection | null = null;
  private kv: KV | null = null;
  private stopped = false;
  private wake: (() => void) | null = null;
  private readonly loop: Promise<void>;
  /** Puts acknowledged (for tests and status). */
  published = 0;

  /** `replicas`: of the bucket if this publisher creates it (3 on a three-node cluster survives losing a node). */
  constructor(private readonly o: { url: string | string[]; bucket?: string; replicas?: number; timeoutMs?: number; onError?: (err: Error) => void }) {
    this.loop = this.run();
  }

  publish(status: BreakerStatus): void {
    this.latest.set(status.key, status);
    this.pending.add(status.key);
    this.wake?.();
  }

  private async run(): Promise<void> {
    let backoff = 200;
    while (!this.stopped) {
      if (this.pending.size === 0) {
        await new Promise<void>((r) => { this.wake = r; });
        this.wake = null;
        continue;
      }
      try {
        await this.ensure();
        for (const key of [...this.pending]) {
          const s = this.latest.get(key)!;
          await this.kv!.put(key, JSON.stringify(s));
          this.published++;
          if (this.latest.get(key) === s) this.pending.delete(key);
        }
        backoff = 200;
      } catch (err) {
        this.o.onError?.(err as Error);
        await new Promise<void>((r) => { this.wake = r; setTimeout(r, backoff); });
        this.wake = null;
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  private async ensure(): Promise<void> {
    if (this.nc && !this.nc.isClosed() && this.kv) return;
    const nc = await connect({ servers: this.o.url, name: 'warden-breakers', timeout: this.o.timeoutMs ?? 3000, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
    this.nc = nc;
    this.kv = await new Kvm(nc).create(this.o.bucket ?? BREAKER_BUCKET, { history: 5, replicas: this.o.replicas ?? 1 });
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'reconnect') { for (const k of this.latest.keys()) this.pending.add(k); this.wake?.(); }
      }
    })().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    await this.nc?.drain().catch(() => undefined);
  }
}
