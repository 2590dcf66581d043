/**
 * The sidecar's Celery collector: reads Celery's own task events from the broker (no change to the
 * user's code), turns them into WardenEvents and hands them to a durable sink. Complete, not
 * best-effort: where the broker keeps nothing for an absent reader (Redis pub/sub), it reconciles
 * terminal states from the result backend (at start after a previous run, after a reconnect or a
 * dropped batch, and periodically for outcomes whose event never came), and records a
 * `collector.gap` saying what was missed and what was rebuilt.
 */
import { Redis } from 'ioredis';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import { JOB_TERMINAL_KINDS } from '../../core/kinds.js';
import type { InputLimits } from '../../core/input.js';
import type { Redactor } from '../../core/redact.js';
import type { CeleryEvent } from './envelope.js';
import type { CeleryMetadataPaths } from './metadata.js';
import { scanTerminal } from './result-backend.js';
import type { AmqpEventSourceOptions } from './amqp.js';
import { sourceFor, type CeleryEventSource } from './source.js';
import { celeryTaskSpanId } from './ids.js';
import { CeleryTranslator, TERMINAL_STATUSES, type PriorTask } from './translate.js';

export interface CeleryCollectorObserver {
  onGap?(event: WardenEvent): void;
  onError?(where: string, err: Error): void;
  onWorker?(hostname: string, state: { online: boolean; processed: number; active: number }): void;
}

export interface CeleryCollectorOptions {
  brokerUrl: string;
  /** Redis result backend URL; unset: nothing to reconcile from (gaps are recorded, not rebuilt). */
  resultBackend?: string;
  metadata: CeleryMetadataPaths;
  redactor: Redactor;
  inputLimits: InputLimits;
  /** How often the result backend is scanned for outcomes whose event never arrived. */
  reconcileIntervalMs: number;
  /** A task done less than this long ago is left to its live event. */
  reconcileGraceMs: number;
  /** Newest Celery event time (ms) the ledger holds from a previous run; null: first run. */
  lastSeenMs: number | null;
  /** Whether the ledger already holds this task's terminal record. */
  hasTerminal(taskId: string): boolean;
  /** What the ledger holds of a task not done yet (a previous run's records). */
  prior?: (taskId: string) => PriorTask | undefined;
  /** Must resolve only when the events are durable (and deduplicate by event ID and terminal task). */
  sink(events: WardenEvent[]): Promise<void>;
  observer?: CeleryCollectorObserver;
  /** The durable queue on an AMQP broker (defaults: `warden.celeryev`, 1 M messages, 24 h). */
  amqp?: AmqpEventSourceOptions;
  /** For tests: an event source other than the broker URL's. */
  source?: CeleryEventSource;
}

interface WorkerTrack { clock: number; processed: number; online: boolean }

/** How far before the last event seen a restart's reconciliation looks (events in flight at the crash). */
const RESTART_MARGIN_MS = 60_000;

export class CeleryCollector {
  readonly translator: CeleryTranslator;
  private readonly source: CeleryEventSource;
  private backend: Redis | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Serializes sink calls: live batches and reconciliations, in order. */
  private chain: Promise<void> = Promise.resolve();
  private readonly workers = new Map<string, WorkerTrack>();
  /** Outcomes done before this are not reconciled periodically (the previous run's, or before the first start). */
  private sinceMs: number;
  private running = false;
  private pendingGap: string | null = null;

  constructor(private readonly o: CeleryCollectorOptions) {
    this.source = o.source ?? sourceFor(o.brokerUrl, o.amqp);
    this.translator = new CeleryTranslator({ redactor: o.redactor, inputLimits: o.inputLimits, metadata: o.metadata, prior: o.prior, complete: this.source.durable });
    this.sinceMs = o.lastSeenMs !== null ? o.lastSeenMs - RESTART_MARGIN_MS : Date.now();
  }

  get durable(): boolean { return this.source.durable; }
  get connected(): boolean { return this.source.connected; }

  async start(): Promise<void> {
    this.running = true;
    if (this.o.resultBackend) {
      this.backend = new Redis(this.o.resultBackend, { maxRetriesPerRequest: null, connectionName: 'warden-celery-results', lazyConnect: true });
      this.backend.on('error', (err) => this.o.observer?.onError?.('result-backend', err));
    }
    await this.source.start({
      events: (events) => this.onEvents(events),
      gap: (reason) => this.gap(reason),
      error: (where, err) => this.o.observer?.onError?.(where, err),
    });
    // A previous run existed: what happened while no one listened is rebuilt now (subscribed first, so nothing falls between).
    if (this.o.lastSeenMs !== null && !this.source.durable) {
      this.gap(`the sidecar was not subscribed to Celery's events from ${new Date(this.o.lastSeenMs).toISOString()} until it restarted; Redis pub/sub keeps nothing for an absent subscriber`);
    }
    // Durable, but only for so long: events older than the queue's TTL were dropped unread.
    const keeps = this.source.retentionMs;
    if (this.o.lastSeenMs !== null && this.source.durable && keeps !== undefined && Date.now() - this.o.lastSeenMs > keeps) {
      this.gap(`the sidecar was away from ${new Date(this.o.lastSeenMs).toISOString()}, longer than the durable event queue keeps messages (${keeps} ms); older events were dropped by the broker`);
    }
    if (this.backend) {
      this.timer = setInterval(() => { if (this.running) void this.periodic(); }, this.o.reconcileIntervalMs);
      this.timer.unref();
    }
  }

  /**
   * The periodic scan for outcomes whose event never came. From a durable queue, events still
   * waiting in it are on their way: the scan waits until the queue is drained (every delivered
   * message is already queued ahead of the scan), else it would rebuild what the backlog holds.
   */
  private async periodic(): Promise<void> {
    if (this.source.durable && this.source.backlog) {
      const waiting = await this.source.backlog();
      if (waiting === null || waiting > 0) return;
    }
    if (this.running) await this.enqueue(() => this.reconcile(null));
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    await this.source.stop();
    await this.chain.catch(() => undefined);
    this.backend?.disconnect();
  }

  /** Resolves once every batch and reconciliation queued so far is durable. */
  idle(): Promise<void> { return this.chain.catch(() => undefined); }

  /** Runs one reconciliation now (tests, and `gap`). */
  reconcileNow(reason: string | null = null): Promise<void> { return this.enqueue(() => this.reconcile(reason)); }

  private enqueue(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn);
    this.chain = next.catch((err) => this.o.observer?.onError?.('celery', err as Error));
    return next;
  }

  private onEvents(events: CeleryEvent[]): Promise<void> {
    return this.enqueue(async () => {
      const out: WardenEvent[] = [];
      for (const ev of events) {
        if (ev.type.startsWith('worker-')) this.worker(ev);
        else out.push(...this.translator.translate(ev));
      }
      if (out.length > 0) await this.o.sink(await this.fixAttempts(out));
    });
  }

  /**
   * Events of a task whose task-received was missed (the sidecar restarted mid-task) carry a guessed
   * attempt number, and without its task-sent the queue is unknown; the result backend (written
   * before the event is sent, `result_extended`) knows both. A terminal record is corrected only from
   * a terminal state (final: Celery's own count); a start or a retry from whatever state is there.
   */
  private async fixAttempts(events: WardenEvent[]): Promise<WardenEvent[]> {
    const unsure = events.filter((e) => (e.attrs.attempt_inferred === true || e.queue === null) && e.job_id);
    if (unsure.length === 0 || !this.backend) return events;
    try {
      if (this.backend.status === 'wait') await this.backend.connect();
      const metas = await this.backend.mget(...unsure.map((e) => `celery-task-meta-${e.job_id}`));
      unsure.forEach((e, i) => {
        let m: { status?: string; retries?: number; queue?: string } | null = null;
        try { m = metas[i] ? JSON.parse(metas[i]!) : null; } catch { m = null; }
        if (e.queue === null && typeof m?.queue === 'string' && m.queue) {
          e.queue = m.queue;
          this.translator.setQueue(e.job_id!, m.queue);
        }
        if (e.attrs.attempt_inferred !== true) return;
        const r = typeof m?.retries === 'number' ? m.retries : null;
        let attempt: number | null = null;
        if (e.kind === 'job.started') attempt = m === null ? 1 : r === null ? null : m.status === 'RETRY' ? r + 2 : r + 1;
        else if (JOB_TERMINAL_KINDS.has(e.kind)) attempt = r !== null && TERMINAL_STATUSES.has(m!.status ?? '') ? r + 1 : null;
        else if (r !== null) attempt = r + 1;
        if (attempt === null) return;
        e.attempt = attempt;
        e.span_id = celeryTaskSpanId(e.job_id!, attempt - 1);
        e.attrs.retries = attempt - 1;
        e.attrs.attempt_source = 'result_backend';
        delete e.attrs.attempt_inferred;
      });
    } catch (err) {
      this.o.observer?.onError?.('result-backend', err as Error);
    }
    return events;
  }

  /** Worker clocks and heartbeats: a clock that went back means the worker restarted (its unsent events are gone). */
  private worker(ev: CeleryEvent): void {
    const host = typeof ev.hostname === 'string' ? ev.hostname : '';
    const prev = this.workers.get(host);
    const clock = typeof ev.clock === 'number' ? ev.clock : 0;
    const online = ev.type !== 'worker-offline';
    const processed = typeof ev.processed === 'number' ? ev.processed : prev?.processed ?? 0;
    if (prev && prev.online && ev.type === 'worker-online' && clock < prev.clock) {
      // A worker that came back without an offline event was killed: its buffered task events never left it.
      this.gap(`worker ${host} restarted without going offline (event clock ${prev.clock} -> ${clock}); task events it had not sent are lost`);
    }
    this.workers.set(host, { clock, processed, online });
    this.o.observer?.onWorker?.(host, { online, processed, active: typeof ev.active === 'number' ? ev.active : 0 });
  }

  private gap(reason: string): void {
    if (!this.running) return;
    this.translator.markUncertain();
    // One reconciliation per burst of reasons.
    if (this.pendingGap !== null) { this.pendingGap += `; ${reason}`; return; }
    this.pendingGap = reason;
    void this.enqueue(async () => {
      const r = this.pendingGap!;
      this.pendingGap = null;
      await this.reconcile(r);
    });
  }

  /**
   * Terminal states in the result backend that the ledger lacks become records (marked reconciled);
   * with a reason (a known gap) or when anything was rebuilt, a `collector.gap` says so.
   */
  private async reconcile(reason: string | null): Promise<void> {
    const rebuilt: WardenEvent[] = [];
    let scanError: string | null = null;
    const until = Date.now() - this.o.reconcileGraceMs;
    if (this.backend) {
      try {
        if (this.backend.status === 'wait') await this.backend.connect();
        const metas = await scanTerminal(this.backend, { sinceMs: this.sinceMs, untilMs: until }, (id) => this.o.hasTerminal(id));
        const why = reason ?? 'no terminal event arrived for this task';
        for (const m of metas) {
          if (this.o.hasTerminal(m.task_id)) continue;
          const ev = this.translator.reconciled(m, { reason: why.slice(0, 500) });
          if (ev) rebuilt.push(ev);
        }
      } catch (err) {
        scanError = (err as Error).message;
        this.o.observer?.onError?.('reconcile', err as Error);
      }
    }
    if (reason === null && rebuilt.length === 0) return;
    const what = !this.backend
      ? 'no result backend is configured (celery.resultBackend): outcomes of tasks in the window cannot be rebuilt'
      : scanError ? `reading the result backend failed (${scanError}); retried on the next reconciliation`
        : `${rebuilt.length} terminal state(s) rebuilt from the result backend; attempt failures and start times in the window cannot be rebuilt, and tasks with ignore_result or an expired result are not covered`;
    const gap = makeEvent({
      kind: 'collector.gap',
      source: 'warden',
      // Redacted here, not only in the pipeline: the reason (worker hostnames, backend errors) is logged before it is appended.
      reason: this.o.redactor.redactText(`celery: ${reason ?? 'terminal events missing from the event stream'}; ${what}`.slice(0, 2000)),
      attrs: { system: 'celery', reconciled: rebuilt.length, gap_until: new Date(until).toISOString(), broker_durable: this.source.durable },
    });
    this.o.observer?.onGap?.(gap);
    await this.o.sink([gap, ...rebuilt]);
  }
}
