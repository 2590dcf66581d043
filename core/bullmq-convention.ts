/**
 * The convention field the producer helper writes into a job's options (`opts.warden`). BullMQ
 * keeps unknown option keys in the job hash, so the sidecar reads it back without touching the
 * user's job data.
 */
export const WARDEN_OPTS_KEY = 'warden';

export interface WardenJobStamp {
  /** Correlation ID shared by everything done for one piece of work. */
  cid: string;
  /** W3C traceparent of the producer's span. */
  tp?: string;
  /** W3C tracestate, when the producer had one. */
  tst?: string;
  model?: string;
  model_version?: string;
  policy?: string;
  policy_version?: string;
}

/** Marker key a wrapped worker refreshes, so the sidecar does not rebuild spans the worker already made. */
export const instrumentedKey = (prefix: string, queue: string) => `${prefix}:${queue}:warden:instrumented`;
export const INSTRUMENTED_TTL_MS = 60_000;
