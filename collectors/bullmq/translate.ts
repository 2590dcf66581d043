/**
 * Turns one queue's stream entries, plus snapshots of the jobs they name, into WardenEvents.
 *
 * BullMQ's stream does not say "attempt N failed": a failed attempt that will be retried shows up as
 * `delayed` (with backoff) or `waiting` with `prev=active` (immediate retry). A stalled job shows
 * `waiting prev=active` immediately followed by `stalled` (one Lua script, adjacent entries). So the
 * translator tracks each job's current attempt and whether it is active, and reads `attemptsMade`
 * from the job hash (a failure increments it, a stall or a manual move does not).
 */
import { makeEvent, type EventKind, type WardenEvent } from '../../core/event.js';
import { sha256Hex } from '../../core/hash.js';
import { derivedEventId, stableSpanId, traceIdForCorrelation } from '../../core/ids.js';
import { normalizeInput, type InputLimits } from '../../core/input.js';
import { redactEvent, redactJoinKey, type Redactor } from '../../core/redact.js';
import type { JobSnapshot, SnapshotRequest } from './job-snapshot.js';
import { snapshotKey } from './job-snapshot.js';
import { extractMeta, extractOutputs, parseTraceparent, type JobMeta, type MetadataPaths, type OutputPaths } from './metadata.js';
import { streamIdMs } from './keys.js';
import type { StreamEntry } from './stream-read.js';

interface JobTrack {
  /** Attempt number of the current (or next) attempt, 1-based. */
  attempt: number;
  active: boolean;
  activeMs: number | null;
  /** When the job last became ready to run (added, delay elapsed, or re-queued). */
  readyMs: number | null;
  meta: JobMeta;
  /** Computed once per job: every event of the job carries them. */
  ids: JobIds;
}

interface JobIds {
  correlation: string; traceId: string; parentSpanId: string | null; name: string | null;
  /** Span IDs remembered once computed (a sha256 each): the job's, and its current attempt's. */
  jobSpanId: string | null; attemptSpanId: string | null; attemptOfSpanId: number;
}

/** A job's state as known from elsewhere (the ledger, after a restart). */
export interface JobSeed {
  attempt: number;
  active: boolean;
  activeMs: number | null;
  readyMs: number | null;
}

export interface TranslateOptions {
  queue: string;
  /** BullMQ key prefix (default `bull`): part of every event ID, with the queue and the stream entry ID. */
  prefix?: string;
  redactor: Redactor;
  inputLimits: InputLimits;
  metadata: MetadataPaths;
  /** Numeric outputs read from completed jobs' return values (`attrs['output.<metric>']`). */
  outputs?: OutputPaths;
  /** Jobs tracked at once; the oldest are forgotten first (and re-seeded if seen again). */
  maxTrackedJobs?: number;
  /** State of jobs seen before a restart; preferred over the job's hash, which may be ahead of the stream. */
  seed?: (jobId: string) => JobSeed | undefined;
}

export interface TranslateResult {
  events: WardenEvent[];
  /** Entries consumed; a trailing entry whose meaning depends on the next one is left for the next read. */
  consumed: number;
}

const RETRY_LIKE = (e: StreamEntry) =>
  (e.fields.event === 'waiting' && e.fields.prev === 'active') || (e.fields.event === 'delayed' && e.fields.prev !== 'waiting');

export class QueueTranslator {
  private readonly jobs = new Map<string, JobTrack>();
  /** Jobs whose terminal record was already produced (a reconciled job may still have a retained entry). */
  private readonly terminals = new Set<string>();
  private readonly maxTracked: number;

  constructor(private readonly opts: TranslateOptions) {
    this.maxTracked = opts.maxTrackedJobs ?? 100_000;
  }

  get queue(): string { return this.opts.queue; }

  /**
   * Which job hashes the batch needs: a new job's input (`added`), attemptsMade where an entry ends
   * an attempt or the job, and everything for a job seen for the first time. An `active` entry of a
   * job already tracked needs no round trip.
   */
  snapshotRequests(entries: StreamEntry[]): SnapshotRequest[] {
    // 0: status only (a tracked job: its name, metadata and input were read when it was first seen),
    // 1: the job's fields, 2: with its data. Near the tracking bound a job tracked now may be
    // forgotten before its entry is translated (and then needs everything): ask for everything.
    const nearBound = this.jobs.size + entries.length >= this.maxTracked;
    const want = new Map<string, number>();
    const seen = new Set<string>();
    for (const e of entries) {
      const id = e.fields.jobId;
      if (!id) continue;
      const ev = e.fields.event;
      const first = !this.jobs.has(id) && !seen.has(id);
      seen.add(id);
      const needs = first || ev === 'added' || ev === 'completed' || ev === 'failed' || RETRY_LIKE(e);
      if (!needs) continue;
      const level = first || ev === 'added' ? 2 : nearBound ? 1 : 0;
      want.set(id, Math.max(want.get(id) ?? 0, level));
    }
    return [...want].map(([jobId, level]) => ({ queue: this.opts.queue, jobId, withData: level === 2, ...(level === 0 ? { statusOnly: true } : {}) }));
  }

  translate(entries: StreamEntry[], snapshots: Map<string, JobSnapshot | null>, batchWasFull: boolean): TranslateResult {
    const events: WardenEvent[] = [];
    let consumed = entries.length;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      const next = entries[i + 1];
      if (!next && batchWasFull && RETRY_LIKE(entry)) { consumed = i; break; }
      const jobId = entry.fields.jobId;
      if (!jobId) continue; // drained, paused, resumed, cleaned: queue-level, counted by the caller
      const snap = snapshots.get(snapshotKey(this.opts.queue, jobId)) ?? null;
      const ev = this.step(entry, next, jobId, snap);
      if (ev) events.push(ev);
    }
    return { events, consumed };
  }

  private step(entry: StreamEntry, next: StreamEntry | undefined, jobId: string, snap: JobSnapshot | null): WardenEvent | null {
    const ms = streamIdMs(entry.id);
    const f = entry.fields;
    const track = this.track(jobId, snap, entry);
    switch (f.event) {
      case 'added': {
        track.readyMs = ms + (snap?.delay ?? 0);
        const input = normalizeInput(snap?.data ?? null, this.opts.redactor, this.opts.inputLimits, { rawIsJsonText: true });
        return this.event('job.added', entry, jobId, track, {
          input: input.input,
          input_digest: input.input_digest,
          attrs: {
            ...(input.format === 'text' ? { input_format: 'text' } : {}),
            ...(snap?.delay ? { delay_ms: snap.delay } : {}),
            ...(snap?.parentKey ? { parent: this.opts.redactor.redactText(snap.parentKey) } : {}),
          },
        });
      }
      case 'waiting':
        if (f.prev === 'active' && track.active) return this.endAttempt(entry, next, jobId, track, snap, null);
        track.readyMs = ms;
        return null;
      case 'delayed':
        if (track.active) return this.endAttempt(entry, next, jobId, track, snap, Number(f.delay) || null);
        track.readyMs = Number(f.delay) || ms;
        return null;
      case 'active': {
        track.active = true;
        track.activeMs = ms;
        const waitMs = track.readyMs !== null ? Math.max(0, ms - track.readyMs) : null;
        return this.event('job.started', entry, jobId, track, {
          attempt: track.attempt,
          attrs: waitMs !== null ? { wait_ms: waitMs } : {},
        });
      }
      case 'stalled': {
        track.active = false;
        track.readyMs = ms;
        return this.event('job.stalled', entry, jobId, track, { attempt: track.attempt });
      }
      case 'completed':
      case 'failed': {
        if (this.terminals.delete(jobId)) { this.jobs.delete(jobId); return null; }
        const attempt = snap?.attemptsMade || track.attempt;
        const duration = this.duration(ms, track, snap);
        this.jobs.delete(jobId);
        const error = f.event === 'failed' ? this.opts.redactor.redactText(f.failedReason ?? snap?.failedReason ?? 'unknown') : null;
        return this.event(f.event === 'completed' ? 'job.completed' : 'job.failed', entry, jobId, track, {
          attempt,
          duration_ms: duration,
          error,
          attrs: f.event === 'completed' && f.returnvalue !== undefined ? { output_digest: sha256(f.returnvalue), ...this.outputs(f.returnvalue) } : {},
        });
      }
      case 'removed':
        this.jobs.delete(jobId);
        return this.event('job.removed', entry, jobId, track, { attrs: f.prev ? { prev: f.prev } : {} });
      default:
        return null; // progress, waiting-children, duplicated, deduplicated, retries-exhausted, ...
    }
  }

  /**
   * Terminal record for a job whose stream events were trimmed away, rebuilt from its hash. Marked
   * `reconciled`, and remembered so that a retained stream entry for the same job is not recorded twice.
   */
  reconciled(jobId: string, state: 'completed' | 'failed', snap: JobSnapshot, gap: { from: string; to: string }): WardenEvent {
    const track = this.track(jobId, snap, { id: '0-0', fields: { event: state, jobId } });
    this.jobs.delete(jobId);
    this.rememberTerminal(jobId);
    const ts = snap.finishedOn ?? Date.now();
    return this.event(state === 'completed' ? 'job.completed' : 'job.failed', { id: `${ts}-0`, fields: {} }, jobId, track, {
      event_id: derivedEventId(ts, EVENT_ID_NAMESPACE, this.opts.prefix ?? 'bull', this.opts.queue, 'reconciled', jobId, state),
      attempt: snap.attemptsMade || null,
      duration_ms: snap.processedOn && snap.finishedOn ? Math.max(0, snap.finishedOn - snap.processedOn) : null,
      error: state === 'failed' ? this.opts.redactor.redactText(snap.failedReason ?? 'unknown') : null,
      attrs: {
        reconciled: true,
        gap_from: gap.from,
        gap_to: gap.to,
        ...(state === 'completed' && snap.returnvalue !== null ? { output_digest: sha256(snap.returnvalue), ...this.outputs(snap.returnvalue) } : {}),
      },
    });
  }

  /** Output metrics and the served model from a return value; model names pass the redactor like all text. */
  private outputs(returnvalue: string): Record<string, string | number> {
    const out = extractOutputs(returnvalue, this.opts.metadata, this.opts.outputs ?? {});
    for (const k of ['served_model', 'served_model_version']) if (typeof out[k] === 'string') out[k] = this.opts.redactor.redactText(out[k] as string);
    return out;
  }

  private rememberTerminal(jobId: string): void {
    this.terminals.add(jobId);
    if (this.terminals.size > this.maxTracked) this.terminals.delete(this.terminals.values().next().value!);
  }

  /** The job left `active` without finishing: a failed attempt, unless the next entry says it stalled. */
  private endAttempt(entry: StreamEntry, next: StreamEntry | undefined, jobId: string, track: JobTrack, snap: JobSnapshot | null, dueMs: number | null): WardenEvent | null {
    const ms = streamIdMs(entry.id);
    track.readyMs = dueMs ?? ms;
    if (next && next.fields.event === 'stalled' && next.fields.jobId === jobId) return null;
    // A failure increments attemptsMade; a rate-limit move or DelayedError does not.
    if (snap && snap.attemptsMade < track.attempt) {
      track.active = false;
      return null;
    }
    const attempt = track.attempt;
    const duration = track.activeMs !== null ? ms - track.activeMs : null;
    track.active = false;
    track.activeMs = null;
    track.attempt += 1;
    return this.event('job.attempt_failed', entry, jobId, { ...track, attempt }, {
      attempt,
      duration_ms: duration,
      error: this.opts.redactor.redactText(snap?.failedReason ?? 'unknown'),
      attrs: dueMs ? { retry_delay_ms: Math.max(0, dueMs - ms) } : {},
    });
  }

  private duration(ms: number, track: JobTrack, snap: JobSnapshot | null): number | null {
    if (track.activeMs !== null) return Math.max(0, ms - track.activeMs);
    if (snap?.processedOn && snap.finishedOn) return Math.max(0, snap.finishedOn - snap.processedOn);
    return null;
  }

  private track(jobId: string, snap: JobSnapshot | null, entry: StreamEntry): JobTrack {
    let t = this.jobs.get(jobId);
    if (t) {
      this.jobs.delete(jobId); // refresh LRU position
      this.jobs.set(jobId, t);
      return t;
    }
    // First sighting: a new job, or a job seen before a restart.
    const parsed = snap?.data ? safeParse(snap.data) : undefined;
    const meta = snap ? extractMeta(snap, this.opts.metadata, parsed) : NO_META;
    // The hash is read after the entry was written: for `added` it may already show later attempts.
    const known = entry.fields.event === 'added' ? undefined : this.opts.seed?.(jobId);
    if (known) {
      t = { ...known, meta, ids: this.ids(jobId, meta, snap) };
    } else {
      // Never seen (e.g. the stream was read from the middle): the hash is the best evidence.
      const atm = entry.fields.event === 'added' ? 0 : snap?.attemptsMade ?? 0;
      // An entry that ends an attempt (retry with or without backoff): attemptsMade already counts it.
      const endsAttempt = (entry.fields.event === 'waiting' && entry.fields.prev === 'active')
        || (entry.fields.event === 'delayed' && snap?.processedOn != null);
      t = {
        attempt: endsAttempt ? Math.max(1, atm) : atm + 1,
        active: endsAttempt,
        activeMs: endsAttempt ? snap?.processedOn ?? null : null,
        readyMs: snap?.timestamp != null && atm === 0 ? snap.timestamp + snap.delay : null,
        meta,
        ids: this.ids(jobId, meta, snap),
      };
    }
    this.jobs.set(jobId, t);
    if (this.jobs.size > this.maxTracked) this.jobs.delete(this.jobs.keys().next().value!);
    return t;
  }

  private ids(jobId: string, meta: JobMeta, snap: JobSnapshot | null): JobIds {
    // A join key: redacted deterministically, so every record of the job still joins.
    const correlation = redactJoinKey(meta.correlation_id ?? `bullmq:${this.opts.queue}:${jobId}`, this.opts.redactor);
    const parent = parseTraceparent(meta.traceparent);
    return {
      correlation,
      traceId: parent?.traceId ?? traceIdForCorrelation(correlation),
      parentSpanId: parent?.spanId ?? null,
      name: snap?.name == null ? null : this.opts.redactor.redactText(snap.name),
      jobSpanId: null,
      attemptSpanId: null,
      attemptOfSpanId: 0,
    };
  }

  /** The span an event belongs to: its attempt's, or the job's (started and completed share one). */
  private spanId(ids: JobIds, jobId: string, attempt: number | null): string {
    if (attempt === null) return ids.jobSpanId ??= stableSpanId('bullmq', this.opts.queue, jobId);
    if (ids.attemptOfSpanId !== attempt || ids.attemptSpanId === null) {
      ids.attemptSpanId = stableSpanId('bullmq', this.opts.queue, jobId, attempt);
      ids.attemptOfSpanId = attempt;
    }
    return ids.attemptSpanId;
  }

  private event(kind: EventKind, entry: StreamEntry, jobId: string, track: JobTrack, extra: Partial<WardenEvent>): WardenEvent {
    const q = this.opts.queue;
    const { meta, ids } = track;
    const attempt = extra.attempt ?? null;
    const ts = streamIdMs(entry.id);
    // Redaction at the source: every string field and attrs key/value (a job ID with an email included).
    return redactEvent(makeEvent({
      ts,
      // Named by the stream entry it came from (each entry yields at most one event: index 0), so two
      // sidecars reading one stream, or one re-reading after a crash, record the same event ID.
      event_id: derivedEventId(ts, EVENT_ID_NAMESPACE, this.opts.prefix ?? 'bull', q, entry.id, 0),
      kind,
      source: 'bullmq',
      correlation_id: ids.correlation,
      trace_id: ids.traceId,
      // Events of one attempt share the span the sidecar (or the wrapped worker) builds for it.
      span_id: this.spanId(ids, jobId, attempt),
      queue: q,
      job_id: jobId,
      job_name: ids.name,
      model: meta.model,
      model_version: meta.model_version,
      policy: meta.policy,
      policy_version: meta.policy_version,
      ...extra,
      attrs: {
        stream_id: entry.id,
        ...(ids.parentSpanId ? { parent_span_id: ids.parentSpanId } : {}),
        ...(extra.attrs ?? {}),
      },
    }), this.opts.redactor);
  }
}

/** Namespace of BullMQ event IDs (core/ids.ts derivedEventId). */
const EVENT_ID_NAMESPACE = 'warden.bullmq';

const NO_META: JobMeta = { correlation_id: null, traceparent: null, tracestate: null, model: null, model_version: null, policy: null, policy_version: null };

function safeParse(text: string): unknown {
  if (text.length > 4 * 1024 * 1024) return undefined;
  try { return JSON.parse(text); } catch { return undefined; }
}

const sha256 = sha256Hex;
