/**
 * Celery task events become WardenEvents (one event type, `source: 'celery'`):
 *
 *   task-sent (retries 0)  -> job.added     (input: args/kwargs, redacted)
 *   task-started           -> job.started   (attempt = retries + 1 of the task-received before it)
 *   task-retried           -> job.attempt_failed (error = the exception)
 *   task-succeeded         -> job.completed (duration = runtime)
 *   task-failed            -> job.failed
 *   task-rejected (no requeue), task-revoked -> job.failed (attrs.revoked / attrs.rejected)
 *
 * queue = the routing queue (from task-sent, which alone names it; or the result backend), job_id =
 * task id, job_name = task name, correlation_id = root_id (or a configured path), parent_id in attrs.
 * Worker events (online/heartbeat/offline) make no ledger records; the collector uses them to find
 * what it missed. Event IDs are deterministic (task id, event, and the Celery event's own timestamp
 * and sender, never a number the translator inferred: a message redelivered after a restart, when
 * the task's earlier events are no longer tracked, gets the same IDs), and a task's terminal record
 * is named by the task alone, so a redelivered event or a reconciled outcome is recognised downstream.
 *
 * Ordering: the next attempt's task-received can arrive before the previous attempt's task-retried
 * (seen with Celery 5.2 and 5.7), so a task-retried ends the lowest attempt still open, not the
 * newest retries count; a success or failure is final and ends the highest (on a loaded pool it can
 * overtake the previous attempt's task-retried, which then still ends its own attempt). That pairing is only as good as the events seen: a task tracked from the
 * middle, resumed after a restart on a source that keeps nothing, or present at a gap is `uncertain`,
 * and its terminal record is marked `attempt_inferred` for the collector to take Celery's own count
 * from the result backend's terminal state.
 */
import { makeEvent, type EventKind, type WardenEvent } from '../../core/event.js';
import { traceIdForCorrelation, stableSpanId } from '../../core/ids.js';
import { JOB_TERMINAL_KINDS } from '../../core/kinds.js';
import { normalizeInput, type InputLimits } from '../../core/input.js';
import type { Redactor } from '../../core/redact.js';
import type { CeleryEvent } from './envelope.js';
import { celeryEventId, celeryTaskSpanId } from './ids.js';
import { at, type CeleryMetadataPaths } from './metadata.js';
import { reprValue } from './pyrepr.js';

interface TaskTrack {
  queue: string | null;
  name: string | null;
  root: string | null;
  parent: string | null;
  /** `retries` of the newest task-received (or task-sent). */
  retries: number;
  /** A task-received was seen (else the attempt number is a guess: the collector asks the result backend). */
  retriesKnown: boolean;
  /**
   * Some of the task's events may have been lost (tracked from the middle, resumed after a restart on
   * a source that keeps nothing, or present at a gap): the pairing of receipts and starts can be off,
   * so its terminal record's attempt is checked against the result backend, which holds Celery's own count.
   */
  uncertain: boolean;
  /** `retries` of task-received events not yet paired with their task-started. */
  pending: Set<number>;
  /** Open attempts: attempt number -> start time (ms). */
  open: Map<number, number>;
  meta: TaskMeta;
  added: boolean;
  /** Args/kwargs, kept until the first event that carries input is made. */
  input: { args: unknown; kwargs: unknown } | null;
  /** Highest attempt started (this run, or the ledger's records of a previous one). */
  highest: number | null;
  /** Seeded: attempt of each job.started / job.attempt_failed the ledger holds, by event ID (a redelivered event keeps its number). */
  recorded: Map<string, number> | null;
}

/**
 * What the ledger already holds for a task without a terminal record (written by a previous run):
 * after a restart the translator continues the task's attempts from there instead of guessing.
 */
export interface PriorTask {
  queue: string | null;
  name: string | null;
  added: boolean;
  /** Attempt -> start time (ms) of the job.started records. */
  started: Map<number, number>;
  /** Attempts with a job.attempt_failed record. */
  failed: Set<number>;
  /** Attempt of each job.started / job.attempt_failed record, by event ID. */
  recorded: Map<string, number>;
}

interface TaskMeta { correlation_id: string | null; model: string | null; model_version: string | null; policy: string | null; policy_version: string | null }

export interface CeleryTranslateOptions {
  redactor: Redactor;
  inputLimits: InputLimits;
  metadata: CeleryMetadataPaths;
  /** Tasks tracked at once; the oldest are forgotten first. */
  maxTrackedTasks?: number;
  /** The ledger's records of a task not tracked yet (a previous run's), if any. */
  prior?: (taskId: string) => PriorTask | undefined;
  /**
   * The event stream resumes where the ledger ends (a durable queue: what the previous run did not
   * ack is redelivered, nothing is lost while the sidecar is away). Then a task-received(N) after a
   * restart proves the receipts of the attempts between the highest one started and N: the previous
   * run saw them, and its unpaired receipts are the one state the ledger does not hold.
   */
  complete?: boolean;
}

/** A task's final state as the result backend holds it (`celery-task-meta-<id>`, result_extended). */
export interface TaskMetaRecord {
  task_id: string;
  status: string;
  result?: unknown;
  traceback?: string | null;
  date_done?: string | null;
  name?: string | null;
  args?: unknown;
  kwargs?: unknown;
  worker?: string | null;
  retries?: number | null;
  queue?: string | null;
  parent_id?: string | null;
}

/** What names one Celery event independently of translator state: its sender, timestamp (full precision) and clock. */
function eventKey(ev: CeleryEvent): string {
  return `${ev.hostname ?? ''}\0${ev.timestamp ?? ''}\0${ev.clock ?? ''}`;
}

export const TERMINAL_STATUSES = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);
const MAX_TEXT = 2000;
/** Finished tasks kept for a late task-retried (a few seconds' worth of outcomes at a high rate). */
const FINISHED_KEPT = 10_000;

export class CeleryTranslator {
  private readonly tasks = new Map<string, TaskTrack>();
  /**
   * Finished tasks with an attempt still open: the terminal event overtook an earlier attempt's
   * task-retried (both are sent when the pool reports a result, and a loaded pool can report the
   * quick last attempt first). That late task-retried still ends its own attempt. Bounded.
   */
  private readonly finished = new Map<string, TaskTrack>();
  private readonly max: number;

  constructor(private readonly o: CeleryTranslateOptions) {
    this.max = o.maxTrackedTasks ?? 200_000;
  }

  /** The queue a task was routed to, if known. */
  queueOf(taskId: string): string | null { return this.tasks.get(taskId)?.queue ?? null; }
  /** The queue of a task learnt elsewhere (the result backend). */
  setQueue(taskId: string, queue: string): void {
    const t = this.tasks.get(taskId);
    if (t && !t.queue) { t.queue = queue; this.noteName(t); }
  }

  /** Task names seen per queue (for rate-limit breakers, which act per task name). */
  readonly namesByQueue = new Map<string, Set<string>>();

  translate(ev: CeleryEvent): WardenEvent[] {
    const id = typeof ev.uuid === 'string' ? ev.uuid : null;
    if (!id || !ev.type.startsWith('task-')) return [];
    const ts = Math.round((typeof ev.timestamp === 'number' ? ev.timestamp : Date.now() / 1000) * 1000);
    // A task-retried for a task that already finished still ends its own attempt (see `finished`).
    const late = ev.type === 'task-retried' && !this.tasks.has(id) ? this.finished.get(id) : undefined;
    const t = late ?? this.track(id, ev);
    switch (ev.type) {
      case 'task-sent': {
        if (typeof ev.queue === 'string' && ev.queue) t.queue = ev.queue;
        else if (!t.queue && typeof ev.routing_key === 'string' && ev.routing_key) t.queue = ev.routing_key;
        this.noteName(t);
        if ((ev.retries ?? 0) > 0 || t.added) return [];
        t.added = true;
        return [this.event(id, t, ts, 'job.added', null, celeryEventId(ts, id, 'added'), { input: true, hostname: ev.hostname })];
      }
      case 'task-received': {
        const r = ev.retries ?? 0;
        t.retries = Math.max(t.retries, r);
        t.retriesKnown = true;
        // Paired with the next task-started, unless that attempt already started (a redelivered event).
        if (t.highest === null || r + 1 > t.highest) {
          t.pending.add(r);
          // Resumed from the ledger on a complete stream: the receipts between the highest attempt started
          // and this one were handled by the previous run (received(N) can come before attempt N's
          // task-started, and a kill between the two loses the earlier receipt): still unpaired.
          const from = t.highest ?? (t.recorded ? 0 : null);
          if (this.o.complete && t.recorded && from !== null) for (let k = from; k < r; k++) t.pending.add(k);
        }
        return [];
      }
      case 'task-started': {
        const eventId = celeryEventId(ts, id, 'started', eventKey(ev));
        const again = t.recorded?.get(eventId);
        if (again !== undefined) {
          // Redelivered after a restart: the ledger holds it (the sink drops it); the state stays as recorded.
          t.pending.delete(again - 1);
          t.highest = Math.max(t.highest ?? 0, again);
          return [this.event(id, t, ts, 'job.started', again, eventId, { hostname: ev.hostname })];
        }
        const attempt = this.startAttempt(t);
        t.open.set(attempt, ts);
        return [this.event(id, t, ts, 'job.started', attempt, eventId, { input: !t.added, hostname: ev.hostname })];
      }
      case 'task-retried':
      case 'task-succeeded':
      case 'task-failed': {
        const retriedId = ev.type === 'task-retried' ? celeryEventId(ts, id, 'retried', eventKey(ev)) : '';
        const again = t.recorded?.get(retriedId);
        if (again !== undefined) {
          t.open.delete(again);
          return [this.event(id, t, ts, 'job.attempt_failed', again, retriedId, { error: ev.exception, hostname: ev.hostname })];
        }
        const terminal = ev.type !== 'task-retried';
        // A retry ends the oldest open attempt; an outcome is final, so it ends the newest (an older
        // one still open is a task-retried still on its way; the attempt is then confirmed by the backend).
        const attempt = terminal ? this.lastAttempt(t) : this.closeAttempt(t);
        const started = t.open.get(attempt);
        t.open.delete(attempt);
        if (late && t.open.size === 0) this.finished.delete(id);
        if (terminal && t.open.size > 0) t.uncertain = true;
        const duration = typeof ev.runtime === 'number' ? ev.runtime * 1000 : started !== undefined ? Math.max(0, ts - started) : null;
        if (!terminal) {
          return [this.event(id, t, ts, 'job.attempt_failed', attempt, retriedId, { duration, error: ev.exception, traceback: ev.traceback, hostname: ev.hostname })];
        }
        const ok = ev.type === 'task-succeeded';
        const out = this.event(id, t, ts, ok ? 'job.completed' : 'job.failed', attempt, celeryEventId(ts, id, 'terminal'), {
          duration, error: ok ? undefined : ev.exception, traceback: ev.traceback, hostname: ev.hostname, result: ok ? ev.result : undefined,
        });
        this.forget(id, t);
        return [out];
      }
      case 'task-rejected':
      case 'task-revoked': {
        if (ev.type === 'task-rejected' && ev.requeue) return [];
        const attempt = t.open.size > 0 ? this.closeAttempt(t) : t.retries + 1;
        const what = ev.type === 'task-revoked' ? `revoked${ev.terminated ? ' (terminated)' : ''}${ev.expired ? ' (expired)' : ''}` : 'rejected';
        const out = this.event(id, t, ts, 'job.failed', attempt, celeryEventId(ts, id, 'terminal'), { error: what, hostname: ev.hostname, extra: { [ev.type === 'task-revoked' ? 'revoked' : 'rejected']: true } });
        this.forget(id);
        return [out];
      }
      default:
        return [];
    }
  }

  /** A terminal record rebuilt from the result backend, for a task whose terminal event was missed. */
  reconciled(m: TaskMetaRecord, gap: { reason: string }): WardenEvent | null {
    if (!TERMINAL_STATUSES.has(m.status)) return null;
    const t = this.tasks.get(m.task_id);
    const ts = m.date_done ? Date.parse(m.date_done.endsWith('Z') || /[+-]\d\d:\d\d$/.test(m.date_done) ? m.date_done : `${m.date_done}Z`) : Date.now();
    const track: TaskTrack = t ?? this.fresh();
    if (!track.queue && m.queue) track.queue = m.queue;
    if (!track.name && m.name) track.name = m.name;
    if (!track.root && (m.parent_id == null || m.parent_id === m.task_id)) track.root = m.task_id;
    if (!track.input && !track.added && (m.args !== undefined || m.kwargs !== undefined)) {
      track.input = { args: m.args ?? null, kwargs: m.kwargs ?? null };
      track.meta = this.meta(track, m.task_id);
    }
    const attempt = (m.retries ?? track.retries) + 1;
    const ok = m.status === 'SUCCESS';
    const res = m.result as { exc_type?: string; exc_message?: unknown } | null | undefined;
    const error = ok ? undefined : res && typeof res === 'object' && res.exc_type ? `${res.exc_type}(${JSON.stringify(res.exc_message ?? '')})` : m.status;
    const out = this.event(m.task_id, track, Number.isFinite(ts) ? ts : Date.now(), ok ? 'job.completed' : 'job.failed', attempt, celeryEventId(Number.isFinite(ts) ? ts : 0, m.task_id, 'terminal'), {
      input: !track.added, error, traceback: m.traceback ?? undefined, hostname: m.worker ?? undefined,
      result: ok ? JSON.stringify(m.result ?? null) : undefined,
      extra: { reconciled: true, reconcile_source: 'result_backend', gap_reason: gap.reason, ...(m.status === 'REVOKED' ? { revoked: true } : {}), ...(track.root ? {} : { root_id_unknown: true }) },
    });
    this.forget(m.task_id);
    return out;
  }

  private fresh(): TaskTrack {
    return { queue: null, name: null, root: null, parent: null, retries: 0, retriesKnown: false, uncertain: false, open: new Map(), meta: { correlation_id: null, model: null, model_version: null, policy: null, policy_version: null }, added: false, input: null, highest: null, recorded: null, pending: new Set() };
  }

  /** Continues a task from the ledger's records: open attempts, the next attempt number, queue and name. */
  private seed(t: TaskTrack, p: PriorTask): void {
    t.queue = p.queue;
    t.name = p.name;
    t.added = p.added;
    for (const [a, ts] of p.started) if (!p.failed.has(a)) t.open.set(a, ts);
    t.recorded = p.recorded;
    const highest = Math.max(0, ...p.started.keys(), ...p.failed);
    if (highest === 0) return;
    t.highest = highest;
    t.retries = t.open.has(highest) ? highest - 1 : highest;
    t.retriesKnown = true;
  }

  private track(id: string, ev: CeleryEvent): TaskTrack {
    let t = this.tasks.get(id);
    if (!t) {
      t = this.fresh();
      const prior = this.o.prior?.(id);
      if (prior) this.seed(t, prior);
      // A task first seen at its first task-sent or first receipt (retries 0) is seen whole (nothing lost before it).
      t.uncertain = prior ? !this.o.complete : !((ev.type === 'task-sent' || ev.type === 'task-received') && (ev.retries ?? 0) === 0);
      this.tasks.set(id, t);
      if (this.tasks.size > this.max) this.tasks.delete(this.tasks.keys().next().value!);
    }
    if (typeof ev.name === 'string' && ev.name) t.name = ev.name;
    if (typeof ev.root_id === 'string' && ev.root_id) t.root = ev.root_id;
    if (typeof ev.parent_id === 'string' && ev.parent_id) t.parent = ev.parent_id;
    if ((ev.type === 'task-sent' || ev.type === 'task-received') && (typeof ev.args === 'string' || typeof ev.kwargs === 'string') && !t.input) {
      t.input = { args: reprValue(ev.args), kwargs: reprValue(ev.kwargs) };
      t.meta = this.meta(t, id);
    }
    return t;
  }

  private noteName(t: TaskTrack): void {
    if (!t.queue || !t.name) return;
    let s = this.namesByQueue.get(t.queue);
    if (!s) this.namesByQueue.set(t.queue, (s = new Set()));
    s.add(t.name);
  }

  private meta(t: TaskTrack, _id: string): TaskMeta {
    const root = { args: t.input?.args, kwargs: t.input?.kwargs } as Record<string, unknown>;
    const p = this.o.metadata;
    return { correlation_id: at(root, p.correlation_id), model: at(root, p.model), model_version: at(root, p.model_version), policy: at(root, p.policy), policy_version: at(root, p.policy_version) };
  }

  /**
   * The attempt a task-started begins: the one after the oldest task-received not yet paired. Not
   * the newest `retries`: the worker sends task-started when the pool reports the task accepted,
   * which can be after the attempt already failed and its retry was received (seen over RabbitMQ,
   * Celery 5.7: received(3) before the started of attempt 3). Without a task-received (missed, or
   * a restart), the attempt after the highest one started (ledger or this run); else a guess.
   */
  private startAttempt(t: TaskTrack): number {
    let attempt: number;
    if (t.pending.size > 0) {
      const r = Math.min(...t.pending);
      t.pending.delete(r);
      attempt = r + 1;
    } else {
      attempt = t.highest !== null ? t.highest + 1 : t.retries + 1;
    }
    t.highest = Math.max(t.highest ?? 0, attempt);
    return attempt;
  }

  /** The attempt a task-retried ends: the lowest still open (outcomes follow their own start). */
  private closeAttempt(t: TaskTrack): number {
    if (t.open.size === 0) return t.retries + 1;
    return Math.min(...t.open.keys());
  }

  /** The attempt a final outcome ends: the highest still open (no attempt follows a success or a failure). */
  private lastAttempt(t: TaskTrack): number {
    if (t.open.size === 0) return t.retries + 1;
    return Math.max(...t.open.keys());
  }

  /** Events may have been lost (a reconnect, a dropped batch): every task tracked now may be missing some. */
  markUncertain(): void {
    for (const t of this.tasks.values()) t.uncertain = true;
  }

  private forget(id: string, t?: TaskTrack): void {
    this.tasks.delete(id);
    if (t && t.open.size > 0) {
      this.finished.set(id, t);
      if (this.finished.size > FINISHED_KEPT) this.finished.delete(this.finished.keys().next().value!);
    }
  }

  private event(id: string, t: TaskTrack, ts: number, kind: EventKind, attempt: number | null, eventId: string, x: {
    input?: boolean; duration?: number | null; error?: string; traceback?: string; hostname?: string; result?: string; extra?: Record<string, string | number | boolean>;
  }): WardenEvent {
    const r = this.o.redactor;
    const correlation = t.meta.correlation_id ?? t.root ?? id;
    let input: unknown = null;
    let digest: string | null = null;
    if (x.input && t.input) {
      const n = normalizeInput(t.input, r, this.o.inputLimits);
      input = n.input;
      digest = n.input_digest;
      t.input = null; // carried once per task
    }
    const attrs: Record<string, string | number | boolean | null> = {
      ...(t.root ? { root_id: t.root } : {}),
      ...(t.parent ? { parent_id: t.parent } : {}),
      ...(x.hostname ? { celery_hostname: r.redactText(x.hostname) } : {}),
      ...(attempt !== null ? { retries: attempt - 1 } : {}),
      ...(x.traceback ? { traceback: r.redactText(x.traceback).slice(-MAX_TEXT) } : {}),
      ...(x.result !== undefined ? { result: this.redactRepr(x.result) } : {}),
      ...(x.extra ?? {}),
      ...(attempt !== null && (!t.retriesKnown || (t.uncertain && JOB_TERMINAL_KINDS.has(kind))) && !x.extra?.reconciled ? { attempt_inferred: true } : {}),
    };
    const served = x.result !== undefined ? this.served(x.result) : {};
    Object.assign(attrs, served);
    return makeEvent({
      event_id: eventId,
      ts,
      kind,
      source: 'celery',
      correlation_id: correlation,
      trace_id: traceIdForCorrelation(correlation),
      // An attempt's span is the one the worker hook (warden_celery) runs the task under:
      // stableSpanId('celery', 'task', task_id, retries), so work started inside hangs under the rebuilt span.
      span_id: attempt !== null ? celeryTaskSpanId(id, attempt - 1) : stableSpanId('celery', id),
      queue: t.queue,
      job_id: id,
      job_name: t.name,
      attempt,
      duration_ms: x.duration ?? null,
      input_digest: digest,
      input,
      model: t.meta.model,
      model_version: t.meta.model_version,
      policy: t.meta.policy,
      policy_version: t.meta.policy_version,
      error: x.error ? r.redactText(x.error).slice(0, MAX_TEXT) : null,
      attrs,
    });
  }

  /** A result (Python repr, or JSON text from the backend), redacted as a value where it parses. */
  private redactRepr(text: string): string {
    const v = literal(text);
    const red = typeof v === 'string' ? this.o.redactor.redactText(v) : JSON.stringify(this.o.redactor.redactValue(v));
    return red.length > MAX_TEXT ? `${red.slice(0, MAX_TEXT)}…` : red;
  }

  private served(result: string): Record<string, string> {
    const p = this.o.metadata;
    if (!p.served_model && !p.served_model_version) return {};
    const v = literal(result);
    const root = { result: v } as Record<string, unknown>;
    const out: Record<string, string> = {};
    const m = at(root, p.served_model);
    const mv = at(root, p.served_model_version);
    if (m !== null) out.served_model = m;
    if (mv !== null) out.served_model_version = mv;
    return out;
  }
}

/** JSON text (the result backend) or a Python literal repr (events); the text itself otherwise. */
function literal(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return reprValue(text);
  }
}
