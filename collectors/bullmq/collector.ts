/**
 * The sidecar's BullMQ collector: reads every watched queue's event stream (no change to the
 * user's code), turns entries into WardenEvents, and hands each batch to a durable sink. A queue's
 * position advances only after the sink resolved, so a crash re-reads rather than loses.
 */
import { Redis } from 'ioredis';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import type { InputLimits } from '../../core/input.js';
import type { Redactor } from '../../core/redact.js';
import { instrumentedKey } from '../../core/bullmq-convention.js';
import { fetchSnapshots, snapshotKey, type SnapshotRequest } from './job-snapshot.js';
import { compareStreamIds, eventsKey, queueFromMetaKey, queueKey, streamIdMs } from './keys.js';
import type { MetadataPaths } from './metadata.js';
import { finishedInWindow } from './reconcile.js';
import { laterPosition, QueueLeases, type LeaseRound } from './lease.js';
import { readStreams, type StreamEntry, type StreamRead } from './stream-read.js';
import { QueueTranslator, type JobSeed } from './translate.js';

export interface CollectedBatch {
  queue: string;
  events: WardenEvent[];
  /** Stream position to persist once `events` are durable. */
  position: string;
  /** Every stream entry read, by BullMQ event name (including ones that map to no WardenEvent). */
  entryCounts: Record<string, number>;
  /** A wrapped (warden/bullmq) worker is processing this queue and makes its own spans. */
  instrumented: boolean;
}

export type QueueState = 'waiting' | 'active' | 'delayed' | 'completed' | 'failed' | 'waiting_children';

export interface CollectorObserver {
  onGap?(queue: string, event: WardenEvent): void;
  onError?(where: string, err: Error): void;
  onQueue?(queue: string): void;
  onCounts?(queue: string, counts: Record<QueueState, number>, paused: boolean): void;
  /** Fleet mode: a lease was taken (`takeover`: from another sidecar), lost (expired or fenced off) or given back. */
  onLease?(queue: string, what: 'acquired' | 'takeover' | 'lost' | 'released', info: { token?: string; from?: string; previousHolder?: string; members?: number }): void;
}

/** Fleet mode (lease.ts): queues are shared with other sidecars on the same Redis, one holder each. */
export interface FleetOptions {
  /** This sidecar's unique name in the fleet. */
  memberId: string;
  /** A queue whose holder stopped renewing for this long is taken over by another sidecar. */
  leaseMs: number;
  /**
   * The ledger is shipped to a shared store (ClickHouse): the fleet's position of a queue advances only
   * to batches whose records are shipped (see `shipped()`), not when they are durable in this spool, so
   * a survivor of this sidecar re-reads what only this spool holds. The sink must then resolve to the
   * spool seq covering the batch; a sink resolving to nothing advances on durability as without shipping.
   */
  advanceWhenShipped?: boolean;
}

/** Durable batches per queue kept waiting for shipping; above this the newest entry is moved forward instead (coarser, never ahead). */
const MAX_UNSHIPPED_PER_QUEUE = 1024;

export interface BullMQCollectorOptions {
  redisUrl: string;
  prefix: string;
  /** Empty: discover every queue under the prefix, and keep discovering. */
  queues: string[];
  discoverIntervalMs: number;
  countsIntervalMs: number;
  batchSize: number;
  blockMs: number;
  startFrom: 'earliest' | 'latest';
  metadata: MetadataPaths;
  queueMetadata: Record<string, MetadataPaths>;
  /** Numeric outputs read from completed jobs' return values: metric -> `returnvalue.<path>`. */
  outputs?: Record<string, string>;
  redactor: Redactor;
  inputLimits: InputLimits;
  /** Checkpoints restored from durable state; a queue found here can detect a gap. */
  positions: Map<string, string>;
  /** Must resolve only when the batch is durable; may resolve to the spool seq up to which its records are (fleet.advanceWhenShipped). */
  sink: (batches: CollectedBatch[]) => Promise<void | number>;
  /** What durable state says about an unfinished job (after a restart); see QueueTranslator. */
  seedJob?: (queue: string, jobId: string) => JobSeed | undefined;
  /** Whether a terminal record for this job is already durable (used when reconciling a gap). */
  hasTerminal: (queue: string, jobId: string) => boolean;
  observer?: CollectorObserver;
  /** Set: collect only the queues this sidecar holds a lease on (see lease.ts). */
  fleet?: FleetOptions;
}

interface QueueCursor {
  translator: QueueTranslator;
  /** Durable: everything up to here is in the sink. */
  position: string;
  /** Read: entries up to here are translated (and in the sink, or in the batch being written). */
  readPosition: string;
  /** True once the position means "everything up to here was seen": only then is a trim a gap. */
  known: boolean;
  instrumented: boolean;
}

const START = '0-0';

export class BullMQCollector {
  private readonly cmd: Redis;
  private readonly block: Redis;
  private readonly cursors = new Map<string, QueueCursor>();
  private running = false;
  private loop: Promise<void> | null = null;
  private timers: NodeJS.Timeout[] = [];
  private lastErrorAt = 0;
  /** The batch being made durable while the next one is read (at most one at a time). */
  private inflight: Promise<void> = Promise.resolve();
  private signalStop!: () => void;
  private readonly stopSignal = new Promise<void>((resolve) => { this.signalStop = resolve; });
  /** Fleet mode: the leases, the queues this sidecar could collect, and when the next lease round is due. */
  readonly leases: QueueLeases | null = null;
  private readonly candidates = new Set<string>();
  private nextLeaseAt = 0;
  /** Durable positions of queues no longer held (a later re-acquisition starts from the newer of these and the fleet's). */
  private readonly released = new Map<string, string>();
  /** Fleet with shipping: per queue, (spool seq, stream position) of each durable batch not yet known shipped, oldest first. */
  private readonly unshipped = new Map<string, { seq: number; position: string }[]>();
  /** The newest seq the shipper reported in the store. */
  private shippedSeq = 0;
  private advancing: Promise<void> | null = null;
  private advanceAgain = false;

  constructor(private readonly opts: BullMQCollectorOptions) {
    // Commands queue while Redis is away and run when it is back: the collector waits, never crashes.
    const common = { maxRetriesPerRequest: null, connectionName: 'warden-collector' } as const;
    this.cmd = new Redis(opts.redisUrl, common);
    this.block = new Redis(opts.redisUrl, { ...common, connectionName: 'warden-collector-block' });
    for (const c of [this.cmd, this.block]) c.on('error', (err) => this.report('redis', err));
    if (opts.fleet) this.leases = new QueueLeases(this.cmd, { prefix: opts.prefix, memberId: opts.fleet.memberId, leaseMs: opts.fleet.leaseMs });
  }

  get connected(): boolean { return this.cmd.status === 'ready'; }
  get queues(): string[] { return [...this.cursors.keys()]; }

  positions(): Map<string, string> {
    return new Map([...this.cursors].map(([q, c]) => [q, c.position]));
  }

  /** Resolves once Redis answered and the queues are known (waits, retrying, while Redis is down). */
  async start(): Promise<void> {
    this.running = true;
    // ioredis never settles commands queued while it reconnects if disconnect() is called then, so a
    // stop() during an outage at start must not wait on discovery.
    await Promise.race([this.discover(), this.stopSignal]);
    if (!this.running) return;
    if (this.leases) await Promise.race([this.leaseRound(), this.stopSignal]);
    if (!this.running) return;
    if (this.opts.queues.length === 0) {
      this.timers.push(setInterval(() => void this.discover().catch((e) => this.report('discover', e)), this.opts.discoverIntervalMs));
    }
    this.timers.push(setInterval(() => void this.pollCounts().catch((e) => this.report('counts', e)), this.opts.countsIntervalMs));
    void this.pollCounts().catch((e) => this.report('counts', e));
    this.loop = this.run();
  }

  /** Finishes the batch in flight (so its positions are durable), then disconnects. */
  async stop(): Promise<void> {
    this.running = false;
    this.signalStop();
    for (const t of this.timers) clearInterval(t);
    this.block.disconnect(); // interrupts a blocking XREAD
    await this.loop;
    await this.inflight.catch(() => undefined);
    await this.advancing;
    // Fleet: the batches are durable and the positions advanced (with shipping: as far as shipped; a
    // successor re-reads the rest, same event IDs); the other sidecars take over at once.
    if (this.leases && this.cmd.status === 'ready') await this.leases.leave().catch(() => undefined);
    this.cmd.disconnect();
  }

  private async discover(): Promise<void> {
    const names = new Set(this.opts.queues);
    if (names.size === 0) {
      let cursor = '0';
      do {
        const [next, keys] = await this.cmd.scan(cursor, 'MATCH', `${this.opts.prefix}:*:meta`, 'COUNT', 1000);
        cursor = next;
        for (const k of keys) {
          const q = queueFromMetaKey(this.opts.prefix, k);
          if (q) names.add(q);
        }
      } while (cursor !== '0');
    }
    if (this.leases) { for (const q of names) this.candidates.add(q); return; }
    for (const q of names) if (!this.cursors.has(q)) await this.addQueue(q);
  }

  /**
   * Fleet mode: heartbeat, renew, take free queues up to this sidecar's share, give back the surplus.
   * Runs in the read loop between rounds, so it never races a round over the cursors.
   */
  private async leaseRound(): Promise<void> {
    const leases = this.leases!;
    // A third of the lease (renewal), at most 5 s (so a newcomer gets its share soon even with a long lease).
    this.nextLeaseAt = performance.now() + Math.max(100, Math.min(5000, Math.floor(this.opts.fleet!.leaseMs / 3)));
    const r: LeaseRound = await leases.round([...this.candidates]);
    for (const q of r.lost) this.loseQueue(q, r.members);
    for (const a of r.acquired) {
      const from = laterPosition(a.position, this.released.get(a.queue) ?? this.opts.positions.get(a.queue));
      await this.addQueue(a.queue, from);
      this.opts.observer?.onLease?.(a.queue, a.takeover ? 'takeover' : 'acquired', { token: a.token, from: from ?? START, previousHolder: a.previousHolder || undefined, members: r.members });
    }
    if (r.surplus.length > 0) {
      for (const q of r.surplus) this.forget(q);
      // The batch in flight may hold their entries: durable (and the fleet position advanced) before the lease goes back.
      await this.inflight.catch(() => undefined);
      for (const q of r.surplus) {
        await leases.release(q);
        this.opts.observer?.onLease?.(q, 'released', { members: r.members });
      }
    }
  }

  /** Stops reading a queue now (its lease is gone); its last durable position is kept for a later re-acquisition. */
  private loseQueue(queue: string, members?: number): void {
    this.forget(queue);
    this.leases?.drop(queue);
    this.opts.observer?.onLease?.(queue, 'lost', { members });
  }

  private forget(queue: string): void {
    const c = this.cursors.get(queue);
    if (!c) return;
    this.cursors.delete(queue);
    this.unshipped.delete(queue);
    const prev = this.released.get(queue);
    this.released.set(queue, laterPosition(c.position === START ? undefined : c.position, prev) ?? START);
  }

  private async addQueue(queue: string, fleetPosition?: string): Promise<void> {
    const restored = this.leases ? fleetPosition : this.opts.positions.get(queue);
    let position = restored ?? START;
    if (!restored && this.opts.startFrom === 'latest') {
      const last = await this.cmd.xrevrange(eventsKey(this.opts.prefix, queue), '+', '-', 'COUNT', 1);
      position = last[0]?.[0] ?? START;
    }
    this.cursors.set(queue, {
      translator: this.newTranslator(queue),
      position,
      readPosition: position,
      known: restored !== undefined || position !== START,
      instrumented: false,
    });
    this.opts.observer?.onQueue?.(queue);
  }

  private newTranslator(queue: string): QueueTranslator {
    return new QueueTranslator({
      queue,
      prefix: this.opts.prefix,
      redactor: this.opts.redactor,
      inputLimits: this.opts.inputLimits,
      metadata: { ...this.opts.metadata, ...this.opts.queueMetadata[queue] },
      outputs: this.opts.outputs,
      seed: this.opts.seedJob ? (jobId) => this.opts.seedJob!(queue, jobId) : undefined,
    });
  }

  /**
   * The sink failed (e.g. the disk is full): nothing after the durable positions was written. Read it
   * again with fresh translators; per-job state is re-seeded as after a restart.
   */
  private rewind(): void {
    for (const [queue, c] of this.cursors) {
      c.readPosition = c.position;
      c.translator = this.newTranslator(queue);
    }
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        if (this.leases && performance.now() >= this.nextLeaseAt) await this.leaseRound();
        const moved = await this.round();
        if (!moved && this.running) await this.waitForEntries();
      } catch (err) {
        if (!this.running) break;
        this.report('read', err as Error);
        await sleep(Math.min(1000, this.opts.blockMs));
      }
    }
  }

  /** Waits for the batch in flight; if it failed, rewinds and rethrows. */
  private async settle(): Promise<void> {
    try {
      await this.inflight;
    } catch (err) {
      this.inflight = Promise.resolve();
      this.rewind();
      throw err;
    }
  }

  /**
   * One read of every queue, one snapshot pipeline, one sink call. The sink runs while the next round
   * reads and translates (a round trip and an fsync hidden behind each other); positions become
   * durable only when their sink resolves. Returns whether anything was read.
   */
  private async round(): Promise<boolean> {
    const cursors = [...this.cursors];
    if (cursors.length === 0) return false;
    const reads = await readStreams(this.cmd, cursors.map(([q, c]) => ({ key: eventsKey(this.opts.prefix, q), marker: instrumentedKey(this.opts.prefix, q), after: c.readPosition })), this.opts.batchSize);

    const work: { queue: string; cursor: QueueCursor; read: StreamRead }[] = [];
    const requests: SnapshotRequest[] = [];
    reads.forEach((r, i) => {
      const [queue, cursor] = cursors[i];
      if (r instanceof Error) { this.report(`read ${queue}`, r); return; }
      // Read with the entries: a worker wrapped since the last round already traced these attempts.
      cursor.instrumented = r.instrumented;
      if (r.entries.length === 0 && !this.isGap(cursor, r)) return;
      work.push({ queue, cursor, read: r });
      requests.push(...cursor.translator.snapshotRequests(r.entries));
    });
    if (work.length === 0) {
      await this.settle();
      return false;
    }
    const snapshots = await fetchSnapshots(this.cmd, this.opts.prefix, requests);

    const batches: CollectedBatch[] = [];
    for (const { queue, cursor, read } of work) {
      const events: WardenEvent[] = [];
      if (this.isGap(cursor, read)) {
        await this.settle(); // reconciliation asks what is durable: the batch in flight must be
        events.push(...(await this.reconcile(queue, cursor, read)));
      }
      const full = read.entries.length >= this.opts.batchSize;
      const { events: translated, consumed } = cursor.translator.translate(read.entries, snapshots, full);
      events.push(...translated);
      const entryCounts: Record<string, number> = {};
      for (const e of read.entries.slice(0, consumed)) entryCounts[e.fields.event ?? 'unknown'] = (entryCounts[e.fields.event ?? 'unknown'] ?? 0) + 1;
      const position = consumed > 0 ? read.entries[consumed - 1].id : cursor.readPosition;
      batches.push({ queue, events, position, entryCounts, instrumented: cursor.instrumented });
      cursor.readPosition = position;
      cursor.known = true;
    }
    await this.settle(); // keep batches in order: one in flight at a time
    const toAppend = this.leases ? await this.fence(batches) : batches;
    if (toAppend.length === 0) return true;
    this.inflight = this.opts.sink(toAppend).then(async (seq) => {
      for (const b of toAppend) {
        const c = this.cursors.get(b.queue);
        if (c) c.position = b.position;
      }
      if (!this.leases) return;
      if (this.opts.fleet?.advanceWhenShipped && typeof seq === 'number') this.holdUntilShipped(toAppend, seq);
      else await this.advanceFleet(toAppend.map((b) => ({ queue: b.queue, position: b.position })));
    });
    this.inflight.catch(() => undefined); // observed by settle(); not an unhandled rejection
    return true;
  }

  /**
   * The fence before an append: only batches of queues whose lease Redis confirms (this holder, this
   * token) and whose lease cannot have expired by the local clock are appended; a queue that fails
   * either is no longer collected here (its lease lapsed, e.g. this process was paused, or was taken).
   */
  private async fence(batches: CollectedBatch[]): Promise<CollectedBatch[]> {
    const leases = this.leases!;
    let ok: Set<string>;
    try {
      ok = await leases.confirm(batches.map((b) => b.queue));
    } catch (err) {
      this.report('lease', err as Error);
      ok = new Set();
    }
    const kept: CollectedBatch[] = [];
    for (const b of batches) {
      if (ok.has(b.queue) && leases.valid(b.queue) && this.cursors.has(b.queue)) kept.push(b);
      // Not appended: the cursor goes (its read position ran ahead); a re-acquisition starts from the durable position.
      else if (this.cursors.has(b.queue)) this.loseQueue(b.queue);
    }
    return kept;
  }

  /**
   * Fleet with shipping: the shipper has everything up to `seq` in the store. Each held queue's fleet
   * position advances (fenced) to its newest durable batch whose records are all at or below `seq`.
   */
  shipped(seq: number): void {
    if (!this.leases || !this.opts.fleet?.advanceWhenShipped) return;
    if (seq > this.shippedSeq) this.shippedSeq = seq;
    this.kickAdvance();
  }

  private holdUntilShipped(batches: CollectedBatch[], seq: number): void {
    for (const b of batches) {
      if (!this.cursors.has(b.queue)) continue; // lost or given back meanwhile: not ours to advance
      let list = this.unshipped.get(b.queue);
      if (!list) this.unshipped.set(b.queue, (list = []));
      if (list.length >= MAX_UNSHIPPED_PER_QUEUE) list[list.length - 1] = { seq, position: b.position };
      else list.push({ seq, position: b.position });
    }
    if (seq <= this.shippedSeq) this.kickAdvance(); // shipped before we got here
  }

  /** One advance at a time; reports arriving meanwhile are folded into one more pass. */
  private kickAdvance(): void {
    if (this.advancing) { this.advanceAgain = true; return; }
    this.advancing = (async () => {
      do {
        this.advanceAgain = false;
        const ready: { queue: string; position: string }[] = [];
        for (const [queue, list] of this.unshipped) {
          let n = 0;
          while (n < list.length && list[n].seq <= this.shippedSeq) n++;
          if (n === 0) continue;
          ready.push({ queue, position: list[n - 1].position });
          list.splice(0, n);
          if (list.length === 0) this.unshipped.delete(queue);
        }
        if (ready.length > 0) await this.advanceFleet(ready);
      } while (this.advanceAgain);
    })().finally(() => { this.advancing = null; });
  }

  /** Records positions as the fleet's (fenced); a queue whose advance is refused was lost. */
  private async advanceFleet(positions: { queue: string; position: string }[]): Promise<void> {
    try {
      const lost = await this.leases!.advance(positions);
      for (const q of lost) this.loseQueue(q);
    } catch (err) {
      // The records are durable here; the fleet's position lags until the next advance (a takeover would re-read, deduplicated by event ID).
      this.report('lease', err as Error);
    }
  }

  /**
   * Entries after our position were removed before we read them: deleted (XDEL, reported exactly by
   * Redis 7), or trimmed (MAXLEN): our checkpoint entry is gone and the oldest retained one is newer.
   * A trim that ended exactly at our checkpoint is indistinguishable and reported as a gap too; the
   * reconciliation it triggers is deduplicated, so it costs a record, never a duplicate outcome.
   */
  private isGap(cursor: QueueCursor, read: StreamRead): boolean {
    if (!cursor.known || cursor.readPosition === START) return false;
    if (read.maxDeletedId && compareStreamIds(read.maxDeletedId, cursor.readPosition) > 0) return true;
    return !read.checkpointExists && read.firstId !== null && compareStreamIds(read.firstId, cursor.readPosition) > 0;
  }

  private async reconcile(queue: string, cursor: QueueCursor, read: StreamRead): Promise<WardenEvent[]> {
    // The lost range ends before the oldest retained entry (or at the newest deleted one).
    const to = read.firstId ?? read.maxDeletedId ?? cursor.readPosition;
    const window = { fromMs: streamIdMs(cursor.readPosition), toMs: streamIdMs(to) };
    const retainedTerminals = new Set(read.entries.filter((e) => e.fields.event === 'completed' || e.fields.event === 'failed').map((e) => e.fields.jobId));
    const finished = (await finishedInWindow(this.cmd, this.opts.prefix, queue, window))
      .filter((j) => !retainedTerminals.has(j.jobId) && !this.opts.hasTerminal(queue, j.jobId));
    const snaps = await fetchSnapshots(this.cmd, this.opts.prefix, finished.map((j) => ({ queue, jobId: j.jobId, withData: true })));
    const gapInfo = { from: cursor.readPosition, to };
    const events: WardenEvent[] = [];
    for (const j of finished) {
      const snap = snaps.get(snapshotKey(queue, j.jobId));
      if (snap) events.push(cursor.translator.reconciled(j.jobId, j.state, snap, gapInfo));
    }
    const gap = makeEvent({
      kind: 'collector.gap',
      source: 'warden',
      queue,
      reason: `stream ${eventsKey(this.opts.prefix, queue)} was trimmed past the checkpoint: entries after ${gapInfo.from} up to ${to} were lost; ${events.length} finished job(s) reconciled from the completed/failed sets`,
      attrs: { gap_from: gapInfo.from, gap_to: to, reconciled: events.length },
    });
    this.opts.observer?.onGap?.(queue, gap);
    return [gap, ...events];
  }

  /** Sleeps until any watched stream has an entry past its position (or blockMs passes). */
  private async waitForEntries(): Promise<void> {
    const cursors = [...this.cursors];
    if (cursors.length === 0) { await sleep(this.opts.blockMs); return; }
    const keys = cursors.map(([q]) => eventsKey(this.opts.prefix, q));
    const ids = cursors.map(([, c]) => c.readPosition);
    try {
      await this.block.xread('COUNT', 1, 'BLOCK', this.opts.blockMs, 'STREAMS', ...keys, ...ids);
    } catch (err) {
      if (this.running) throw err;
    }
  }

  private async pollCounts(): Promise<void> {
    const queues = [...this.cursors.keys()];
    if (queues.length === 0) return;
    const k = (q: string, s: string) => queueKey(this.opts.prefix, q, s);
    const pipe = this.cmd.pipeline();
    for (const q of queues) {
      pipe.llen(k(q, 'wait')).zcard(k(q, 'prioritized')).llen(k(q, 'active')).zcard(k(q, 'delayed'))
        .zcard(k(q, 'completed')).zcard(k(q, 'failed')).zcard(k(q, 'waiting-children'))
        .hget(k(q, 'meta'), 'paused');
    }
    const res = (await pipe.exec()) ?? [];
    const per = 8;
    queues.forEach((q, i) => {
      const v = res.slice(i * per, (i + 1) * per).map(([err, val]) => (err ? 0 : val));
      const n = (x: unknown) => Number(x) || 0;
      this.opts.observer?.onCounts?.(q, {
        waiting: n(v[0]) + n(v[1]), active: n(v[2]), delayed: n(v[3]),
        completed: n(v[4]), failed: n(v[5]), waiting_children: n(v[6]),
      }, v[7] === '1');
    });
  }

  private report(where: string, err: Error): void {
    // Redis outages produce an error per retry; one report per second is enough to see it.
    const now = Date.now();
    if (now - this.lastErrorAt < 1000) return;
    this.lastErrorAt = now;
    this.opts.observer?.onError?.(where, err);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export type { StreamEntry };
