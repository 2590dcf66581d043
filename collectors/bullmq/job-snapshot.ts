/** What the collector reads of a job's hash: one pipelined HMGET per batch, never one call per event. */
import type { Redis } from 'ioredis';
import { jobKey } from './keys.js';

const FIELDS = ['name', 'opts', 'timestamp', 'delay', 'processedOn', 'finishedOn', 'atm', 'failedReason', 'parentKey', 'data', 'returnvalue'] as const;
const WITHOUT_DATA = FIELDS.slice(0, FIELDS.length - 2);
/**
 * What later entries of a job the translator already tracks need: whether and how an attempt ended.
 * Not `opts` (the largest field, parsed each time) nor `name`. `timestamp` is in every live job's
 * hash, so a job that is gone still reads as gone (all null).
 */
const STATUS = ['timestamp', 'processedOn', 'finishedOn', 'atm', 'failedReason'] as const;

export interface JobSnapshot {
  name: string | null;
  /** Raw JSON text as BullMQ stored it (present only when requested). */
  data: string | null;
  opts: Record<string, unknown>;
  timestamp: number | null;
  delay: number;
  processedOn: number | null;
  finishedOn: number | null;
  /** BullMQ's attemptsMade: every finished attempt, the final one included. */
  attemptsMade: number;
  failedReason: string | null;
  parentKey: string | null;
  returnvalue: string | null;
}

const num = (v: string | null) => (v === null || v === '' ? null : Number(v));

function parseOpts(text: string | null): Record<string, unknown> {
  if (!text) return {};
  try {
    const v = JSON.parse(text);
    return v && typeof v === 'object' ? v : {};
  } catch {
    return {};
  }
}

export function toSnapshot(values: (string | null)[]): JobSnapshot | null {
  if (values.every((v) => v === null)) return null; // the job is gone (removed, or removeOnComplete)
  const [name, opts, timestamp, delay, processedOn, finishedOn, atm, failedReason, parentKey, data, returnvalue] = values;
  return {
    name,
    opts: parseOpts(opts),
    timestamp: num(timestamp),
    delay: num(delay) ?? 0,
    processedOn: num(processedOn),
    finishedOn: num(finishedOn),
    attemptsMade: num(atm) ?? 0,
    failedReason,
    parentKey,
    data: data ?? null,
    returnvalue: returnvalue ?? null,
  };
}

export interface SnapshotRequest {
  queue: string;
  jobId: string;
  withData: boolean;
  /** Only STATUS (a job the translator tracks: its name, metadata and input were read before). */
  statusOnly?: boolean;
}

/** Where each of FIELDS stands in a status-only reply (-1: not asked for). */
const STATUS_AT = FIELDS.map((f) => (STATUS as readonly string[]).indexOf(f));

/** A status-only reply in toSnapshot's positions (FIELDS order). */
function statusValues(v: (string | null)[]): (string | null)[] {
  return STATUS_AT.map((i) => (i < 0 ? null : v[i]));
}

/** One pipeline for every job a batch mentions, across queues. */
export async function fetchSnapshots(redis: Redis, prefix: string, reqs: SnapshotRequest[]): Promise<Map<string, JobSnapshot | null>> {
  const out = new Map<string, JobSnapshot | null>();
  if (reqs.length === 0) return out;
  const pipe = redis.pipeline();
  for (const r of reqs) pipe.hmget(jobKey(prefix, r.queue, r.jobId), ...(r.statusOnly ? STATUS : r.withData ? FIELDS : WITHOUT_DATA));
  const results = (await pipe.exec()) ?? [];
  results.forEach(([err, values], i) => {
    const r = reqs[i];
    if (err) throw err;
    out.set(snapshotKey(r.queue, r.jobId), toSnapshot(r.statusOnly ? statusValues(values as (string | null)[]) : values as (string | null)[]));
  });
  return out;
}

export const snapshotKey = (queue: string, jobId: string) => `${queue}\0${jobId}`;
