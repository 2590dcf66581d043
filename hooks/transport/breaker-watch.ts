/**
 * A BreakerView kept current from a watch on the NATS KV bucket BREAKER_BUCKET, so an enforcing hook
 * (e.g. the Temporal activity interceptor) pays a local map lookup per call, never a network call.
 *
 * Each (re)watch delivers every key's last value first (PUT, or a DEL/PURGE marker) and then updates.
 * The initial values are collected into a fresh map and swapped in whole once the last one arrived
 * (`delta === 0`), so keys removed while we were disconnected disappear too. The watch is restarted
 * after a reconnect (a NATS restart) and whenever it ends; until the bucket exists it is retried.
 * A malformed value is skipped (reported through onError), never thrown into the host.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import { BREAKER_BUCKET, MapBreakerView, type BreakerPhase, type BreakerStatus } from '../../core/breakers.js';

export interface WatchBreakersOptions {
  url?: string | string[];
  /** An open connection to reuse (left open by close()). */
  connection?: NatsConnection;
  bucket?: string;
  /** Delay before retrying a failed watch (default 1000 ms, doubling up to 10 s). */
  retryMs?: number;
  onError?: (err: Error) => void;
}

const PHASES: ReadonlySet<BreakerPhase> = new Set(['closed', 'half_open', 'open']);

function parseStatus(e: KvWatchEntry): BreakerStatus {
  const s = e.json<BreakerStatus>();
  if (!s || typeof s !== 'object' || !PHASES.has(s.phase)) throw new Error(`breaker entry ${e.key}: not a BreakerStatus (phase must be closed, half_open or open)`);
  // Defaults for fields an enforcing hook reads, so a sparse or foreign entry still enforces sanely.
  const num = (v: unknown, d: number) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : d);
  const str = (v: unknown, d: string) => (typeof v === 'string' ? v : d);
  return {
    ...s,
    key: e.key,
    policy: str(s.policy, '(unknown)'),
    policy_version: str(s.policy_version, ''),
    reason: str(s.reason, 'breaker entry without a reason'),
    retry_after_ms: num(s.retry_after_ms, 30_000),
    probe_ratio: Math.min(1, num(s.probe_ratio, 0)),
    non_retryable: s.non_retryable === true,
    since: num(s.since, 0),
    forced_by: typeof s.forced_by === 'string' ? s.forced_by : null,
  };
}

export class BreakerWatch extends MapBreakerView {
  private nc: NatsConnection | null = null;
  private iter: { stop(): void } | null = null;
  private closed = false;
  private generation = 0;
  private readonly loaded: Promise<void>;
  private markLoaded!: () => void;
  private retry: NodeJS.Timeout | null = null;
  /** Updates applied (initial values included) and watches started; for tests and diagnostics. */
  readonly counts = { applied: 0, watches: 0, errors: 0 };

  constructor(private readonly o: WatchBreakersOptions) {
    super();
    if (!o.url && !o.connection) throw new TypeError('watchBreakers needs a url or a connection');
    this.loaded = new Promise((r) => { this.markLoaded = r; });
  }

  /** Resolves once the bucket's current values are loaded the first time (false at the timeout). */
  ready(timeoutMs = 10_000): Promise<boolean> {
    return Promise.race([
      this.loaded.then(() => true),
      new Promise<boolean>((r) => { const t = setTimeout(() => r(false), timeoutMs); t.unref?.(); }),
    ]);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.iter?.stop();
    const nc = this.nc;
    this.nc = null;
    if (nc && !this.o.connection) await nc.close().catch(() => undefined);
  }

  /** @internal started by watchBreakers() */
  start(): void {
    void this.connectAndWatch(this.o.retryMs ?? 1000);
  }

  private async connectAndWatch(backoff: number): Promise<void> {
    if (this.closed) return;
    try {
      if (!this.nc) {
        this.nc = this.o.connection ?? await connect({ servers: this.o.url!, name: 'warden-breakers', reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 250 });
        this.followStatus(this.nc);
      }
      await this.watch(this.nc);
    } catch (err) {
      this.report(err as Error);
      if (this.nc && !this.o.connection && this.nc.isClosed()) this.nc = null;
      this.later(() => this.connectAndWatch(Math.min(backoff * 2, 10_000)), backoff);
    }
  }

  private followStatus(nc: NatsConnection): void {
    void (async () => {
      for await (const s of nc.status()) {
        if (this.closed) break;
        // A restarted server may have lost or replaced consumers: start over with a fresh watch.
        if (s.type === 'reconnect') this.rewatch();
      }
    })().catch(() => undefined);
  }

  private rewatch(): void {
    this.iter?.stop();
    this.iter = null;
    this.later(() => this.connectAndWatch(this.o.retryMs ?? 1000), 0);
  }

  private async watch(nc: NatsConnection): Promise<void> {
    const gen = ++this.generation;
    this.iter?.stop();
    const kv: KV = await new Kvm(nc).open(this.o.bucket ?? BREAKER_BUCKET);
    const total = (await kv.status()).values; // throws while the bucket does not exist
    const iter = await kv.watch();
    if (gen !== this.generation || this.closed) { iter.stop(); return; }
    this.iter = iter;
    this.counts.watches++;
    const fresh = new Map<string, BreakerStatus>();
    let initial = total > 0;
    if (!initial) this.swap(fresh);
    void (async () => {
      for await (const e of iter) {
        if (gen !== this.generation) break;
        this.apply(initial ? fresh : this.states, e);
        if (initial && (e.delta === 0 || e.isUpdate)) { initial = false; this.swap(fresh); }
      }
    })().catch((err) => this.report(err as Error)).finally(() => {
      // The watch ended without close() or a newer watch replacing it: start another.
      if (gen === this.generation && !this.closed) this.later(() => this.connectAndWatch(this.o.retryMs ?? 1000), this.o.retryMs ?? 1000);
    });
  }

  private apply(target: Map<string, BreakerStatus>, e: KvWatchEntry): void {
    this.counts.applied++;
    if (e.operation !== 'PUT') { target.delete(e.key); return; }
    try {
      const s = parseStatus(e);
      if (s.phase === 'closed') target.delete(e.key);
      else target.set(e.key, s);
    } catch (err) {
      target.delete(e.key);
      this.report(err as Error);
    }
  }

  private swap(fresh: Map<string, BreakerStatus>): void {
    this.states.clear();
    for (const [k, v] of fresh) this.states.set(k, v);
    this.markLoaded();
  }

  private later(fn: () => void, ms: number): void {
    if (this.closed) return;
    if (this.retry) clearTimeout(this.retry);
    this.retry = setTimeout(() => { this.retry = null; fn(); }, ms);
    this.retry.unref?.();
  }

  private report(err: Error): void {
    this.counts.errors++;
    try { this.o.onError?.(err); } catch { /* never into the host */ }
  }
}

/** Starts watching the breaker bucket; returns the view at once (empty until loaded; see ready()). */
export function watchBreakers(opts: WatchBreakersOptions): BreakerWatch {
  const w = new BreakerWatch(opts);
  w.start();
  return w;
}
