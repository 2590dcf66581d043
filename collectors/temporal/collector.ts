/**
 * The sidecar-side Temporal collector: lists closed runs through the server's visibility API (paged,
 * checkpointed by close time), reads each run's history and hands the records it proves (see
 * history.ts) to a sink that appends the ones the ledger lacks. It works with no interceptor in the
 * workers at all, and it completes the ledger when a worker's hook events were lost (outbox overflow,
 * transport down).
 *
 * Visibility cannot order a query (SQL visibility refuses ORDER BY; results come newest first), so a
 * scan takes a window of close times [checkpoint, now - settle], narrowed until it holds at most
 * `maxRunsPerScan` runs, lists all of it, and reads the runs oldest first. The checkpoint moves after
 * each batch of runs is durable. `settleMs` leaves a run's hook events time to arrive before the
 * collector decides they are missing.
 */
import { Connection } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import type { InputLimits } from '../../core/input.js';
import type { Redactor } from '../../core/redact.js';
import { TemporalCheckpoint, type NamespacePosition } from './checkpoint.js';
import { eventsFromHistory, historyEventId, timestampMs, type RunIdentity } from './history.js';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

export interface ClosedRun extends RunIdentity {
  closeMs: number;
  workflowType: string | null;
  taskQueue: string | null;
}

export interface TemporalCollectorObserver {
  onError?(where: string, err: Error): void;
  onGap?(ev: WardenEvent): void;
  /** After each batch of runs is durable and checkpointed. */
  onBatch?(namespace: string, runs: number, events: number): void;
}

export interface TemporalCollectorOptions {
  /** `host:port` of the Temporal frontend. */
  address: string;
  namespaces: string[];
  dataDir: string;
  pollIntervalMs: number;
  /** Visibility and history page size; also the number of runs appended (and checkpointed) together. */
  pageSize: number;
  /** Runs closed less than this long ago wait for the next scan (their hook events may be in flight). */
  settleMs: number;
  /** Upper bound on the runs one scan lists (the window of close times is narrowed to fit). */
  maxRunsPerScan?: number;
  /** Deadline of each call to the server, so a hung server cannot hold up a stop for long. */
  rpcTimeoutMs?: number;
  redactor: Redactor;
  inputLimits: InputLimits;
  /**
   * Appends the records the ledger does not hold yet and resolves once they are durable. Called with
   * every record a batch of runs proves; deduplication is the sink's (ledger index and event IDs).
   */
  sink(events: WardenEvent[]): Promise<void>;
  observer?: TemporalCollectorObserver;
  /** Called with each run after it was listed and before its history is read (tests use it to delete a run). */
  beforeHistory?(run: ClosedRun): Promise<void>;
}

const GRPC_NOT_FOUND = 5;
const iso = (ms: number) => new Date(ms).toISOString();

export class TemporalCollector {
  private conn: Connection | null = null;
  private readonly checkpoint: TemporalCheckpoint;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private scans = 0;
  /** Retention gaps already recorded (namespace and position), so a stuck position reports once. */
  private readonly retentionReported = new Set<string>();

  constructor(private readonly o: TemporalCollectorOptions) {
    this.checkpoint = new TemporalCheckpoint(o.dataDir);
  }

  /** Completed scans (all namespaces read up to their window). */
  get scanCount(): number { return this.scans; }

  /** Starts polling in the background; the server may be down (retried every poll interval). */
  async start(): Promise<void> {
    await this.checkpoint.load();
    this.loop = this.run();
  }

  /** Finishes the batch in hand (durable and checkpointed), then stops. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.loop;
    this.loop = null;
    await this.conn?.close().catch(() => undefined);
    this.conn = null;
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        await this.scanOnce();
      } catch (err) {
        this.o.observer?.onError?.('temporal scan', err as Error);
        await this.conn?.close().catch(() => undefined);
        this.conn = null;
      }
      if (this.stopping) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.o.pollIntervalMs);
        this.wake = () => { clearTimeout(t); resolve(); };
      });
      this.wake = null;
    }
  }

  /** One pass over every namespace. */
  async scanOnce(): Promise<void> {
    if (!this.conn) this.conn = await Connection.connect({ address: this.o.address, connectTimeout: this.o.rpcTimeoutMs ?? 10_000 });
    for (const ns of this.o.namespaces) {
      if (this.stopping) return;
      await this.scanNamespace(this.conn, ns);
    }
    this.scans++;
  }

  private call<T>(conn: Connection, fn: () => Promise<T>): Promise<T> {
    return conn.withDeadline(Date.now() + (this.o.rpcTimeoutMs ?? 10_000), fn);
  }

  private async scanNamespace(conn: Connection, namespace: string): Promise<void> {
    const saved = this.checkpoint.get(namespace);
    let pos: NamespacePosition = saved ?? { closeMs: 0, runIds: [] };
    const now = Date.now();
    if (saved) await this.retentionGap(conn, namespace, saved, now);

    const lower = pos.closeMs;
    let upper = now - this.o.settleMs;
    if (upper <= lower) return;
    const max = this.o.maxRunsPerScan ?? 10_000;
    const query = (hi: number) => `ExecutionStatus != 'Running' AND CloseTime >= '${iso(lower)}' AND CloseTime < '${iso(hi)}'`;
    for (let i = 0; i < 40 && upper - lower > 1000; i++) {
      const { count } = await this.call(conn, () => conn.workflowService.countWorkflowExecutions({ namespace, query: query(upper) }));
      if (Number(count ?? 0) <= max) break;
      upper = lower + Math.floor((upper - lower) / 2);
    }

    const runs: ClosedRun[] = [];
    let token: Uint8Array | undefined;
    do {
      const page = await this.call(conn, () => conn.workflowService.listWorkflowExecutions({ namespace, query: query(upper), pageSize: this.o.pageSize, nextPageToken: token }));
      for (const e of page.executions ?? []) {
        const closeMs = timestampMs(e.closeTime);
        if (!e.execution?.workflowId || !e.execution.runId || closeMs === null) continue;
        if (closeMs === pos.closeMs && pos.runIds.includes(e.execution.runId)) continue;
        runs.push({ namespace, workflowId: e.execution.workflowId, runId: e.execution.runId, closeMs, workflowType: e.type?.name ?? null, taskQueue: e.taskQueue ?? null });
      }
      token = page.nextPageToken && page.nextPageToken.length > 0 ? page.nextPageToken : undefined;
    } while (token && !this.stopping);
    if (this.stopping) return;
    runs.sort((a, b) => a.closeMs - b.closeMs || (a.runId < b.runId ? -1 : a.runId > b.runId ? 1 : 0));

    for (let i = 0; i < runs.length && !this.stopping; i += this.o.pageSize) {
      const batch = runs.slice(i, i + this.o.pageSize);
      const events: WardenEvent[] = [];
      for (const run of batch) events.push(...await this.recordsOf(conn, run));
      if (events.length > 0) await this.o.sink(events);
      for (const ev of events) if (ev.kind === 'collector.gap') this.o.observer?.onGap?.(ev);
      const last = batch[batch.length - 1].closeMs;
      const sameMs = batch.filter((r) => r.closeMs === last).map((r) => r.runId);
      pos = { closeMs: last, runIds: last === pos.closeMs ? [...pos.runIds, ...sameMs] : sameMs };
      await this.checkpoint.save(namespace, pos);
      this.o.observer?.onBatch?.(namespace, batch.length, events.length);
    }
  }

  /** A run's records, or a `collector.gap` when its history is gone (deleted by retention or by hand). */
  private async recordsOf(conn: Connection, run: ClosedRun): Promise<WardenEvent[]> {
    await this.o.beforeHistory?.(run);
    const history: HistoryEvent[] = [];
    let token: Uint8Array | undefined;
    try {
      do {
        const page = await this.call(conn, () => conn.workflowService.getWorkflowExecutionHistory({
          namespace: run.namespace, execution: { workflowId: run.workflowId, runId: run.runId }, maximumPageSize: Math.max(this.o.pageSize, 100), nextPageToken: token,
        }));
        history.push(...(page.history?.events ?? []));
        token = page.nextPageToken && page.nextPageToken.length > 0 ? page.nextPageToken : undefined;
      } while (token);
    } catch (err) {
      if ((err as { code?: number }).code !== GRPC_NOT_FOUND) throw err;
      return [this.gapFor(run)];
    }
    const events = eventsFromHistory(run, history, { redactor: this.o.redactor, inputLimits: this.o.inputLimits });
    return events.length > 0 ? events : [this.gapFor(run)];
  }

  private gapFor(run: ClosedRun): WardenEvent {
    return makeEvent({
      kind: 'collector.gap', source: 'temporal', ts: run.closeMs, event_id: historyEventId(run, 0, 'collector.gap', run.closeMs),
      queue: run.taskQueue, job_name: run.workflowType, workflow_id: run.workflowId, run_id: run.runId, correlation_id: `temporal:${run.workflowId}`,
      reason: 'the run\'s history was deleted (retention or by hand) before the collector read it: its records could not be rebuilt',
      attrs: { from_history: true, namespace: run.namespace, gap: 'history_deleted', close_time: iso(run.closeMs), ...(run.workflowType ? { workflow_type: run.workflowType } : {}) },
    });
  }

  /**
   * Runs that closed before now - retention may have been deleted before they were read (the sidecar
   * was down, or behind, for longer than the namespace keeps history): one gap record for that window.
   */
  private async retentionGap(conn: Connection, namespace: string, pos: NamespacePosition, now: number): Promise<void> {
    const ns = await this.call(conn, () => conn.workflowService.describeNamespace({ namespace }));
    const retentionMs = timestampMs(ns.config?.workflowExecutionRetentionTtl as { seconds?: unknown; nanos?: number } | undefined);
    if (!retentionMs || now - retentionMs <= pos.closeMs || this.retentionReported.has(`${namespace}\0${pos.closeMs}`)) return;
    const gapTo = now - retentionMs;
    const ev = makeEvent({
      kind: 'collector.gap', source: 'temporal', ts: pos.closeMs,
      event_id: historyEventId({ namespace, workflowId: '', runId: '' }, pos.closeMs, 'retention-gap', pos.closeMs),
      reason: `runs of namespace ${namespace} that closed between ${iso(pos.closeMs)} and ${iso(gapTo)} may have been deleted by retention before the collector read them`,
      attrs: { from_history: true, namespace, gap: 'retention', gap_from: iso(pos.closeMs), gap_to: iso(gapTo), retention_ms: retentionMs },
    });
    await this.o.sink([ev]);
    this.retentionReported.add(`${namespace}\0${pos.closeMs}`);
    this.o.observer?.onGap?.(ev);
  }
}
