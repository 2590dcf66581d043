/**
 * Where a job's correlation ID, trace context and model/policy versions come from: the convention
 * field written by warden/bullmq's producer helper first, then JSON paths configured per queue (so
 * unmodified producers work too), then BullMQ's own telemetry context (`opts.tm`).
 */
import { WARDEN_OPTS_KEY, type WardenJobStamp } from './convention.js';
import type { JobSnapshot } from './job-snapshot.js';

export interface MetadataPaths {
  correlation_id?: string;
  model?: string;
  model_version?: string;
  policy?: string;
  policy_version?: string;
}

export interface JobMeta {
  correlation_id: string | null;
  traceparent: string | null;
  tracestate: string | null;
  model: string | null;
  model_version: string | null;
  policy: string | null;
  policy_version: string | null;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

export function parseTraceparent(tp: string | null | undefined): { traceId: string; spanId: string } | null {
  const m = tp ? TRACEPARENT.exec(tp) : null;
  if (!m || /^0+$/.test(m[1]) || /^0+$/.test(m[2])) return null;
  return { traceId: m[1], spanId: m[2] };
}

/** BullMQ telemetry (bullmq-otel) stores its propagation carrier as JSON text in `opts.tm`. */
function traceFromTm(tm: unknown): { tp: string | null; ts: string | null } {
  if (typeof tm !== 'string') return { tp: null, ts: null };
  try {
    const carrier = JSON.parse(tm) as Record<string, unknown>;
    return {
      tp: typeof carrier.traceparent === 'string' ? carrier.traceparent : null,
      ts: typeof carrier.tracestate === 'string' ? carrier.tracestate : null,
    };
  } catch {
    return { tp: null, ts: null };
  }
}

function scalar(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return null;
}

function get(root: Record<string, unknown>, path: string | undefined): string | null {
  if (!path) return null;
  let node: unknown = root;
  for (const part of path.split('.')) {
    if (node === null || typeof node !== 'object') return null;
    node = (node as Record<string, unknown>)[part];
  }
  return scalar(node);
}

/** `parsedData` is the job's data already parsed by the caller (or undefined when not JSON). */
export function extractMeta(snap: JobSnapshot, paths: MetadataPaths, parsedData: unknown): JobMeta {
  const stamp = (snap.opts[WARDEN_OPTS_KEY] ?? {}) as Partial<WardenJobStamp>;
  const root = { data: parsedData, opts: snap.opts } as Record<string, unknown>;
  const tm = traceFromTm(snap.opts.tm);
  return {
    correlation_id: scalar(stamp.cid) ?? get(root, paths.correlation_id),
    traceparent: scalar(stamp.tp) ?? tm.tp,
    tracestate: scalar(stamp.tst) ?? tm.ts,
    model: scalar(stamp.model) ?? get(root, paths.model),
    model_version: scalar(stamp.model_version) ?? get(root, paths.model_version),
    policy: scalar(stamp.policy) ?? get(root, paths.policy),
    policy_version: scalar(stamp.policy_version) ?? get(root, paths.policy_version),
  };
}
