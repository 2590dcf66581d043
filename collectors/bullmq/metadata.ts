/**
 * Where a job's correlation ID, trace context and model/policy versions come from: the convention
 * field written by warden/bullmq's producer helper first, then JSON paths configured per queue (so
 * unmodified producers work too), then BullMQ's own telemetry context (`opts.tm`).
 */
import { WARDEN_OPTS_KEY, type WardenJobStamp } from '../../core/bullmq-convention.js';
import type { JobSnapshot } from './job-snapshot.js';
import type { MetadataPaths } from '../../core/metadata-paths.js';

export type { MetadataPaths };

/** Numeric outputs for drift detection: metric name -> `returnvalue.<path>` (e.g. score: returnvalue.eval.score). */
export type OutputPaths = Record<string, string>;

export interface JobMeta {
  correlation_id: string | null;
  traceparent: string | null;
  tracestate: string | null;
  model: string | null;
  model_version: string | null;
  policy: string | null;
  policy_version: string | null;
}

export { parseTraceparent } from '../../core/traceparent.js';

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

function at(root: Record<string, unknown>, path: string): unknown {
  let node: unknown = root;
  for (const part of path.split('.')) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function get(root: Record<string, unknown>, path: string | undefined): string | null {
  return path ? scalar(at(root, path)) : null;
}

/** Return values larger than this are not parsed for outputs (they would cost more than they tell). */
const MAX_RETURNVALUE_CHARS = 1024 * 1024;

/**
 * What a completed job's return value says for governance: `output.<metric>` numbers (finite only)
 * and `served_model` / `served_model_version`. Empty when nothing is configured or the value is not JSON.
 */
export function extractOutputs(returnvalue: string | null | undefined, paths: MetadataPaths, outputs: OutputPaths): Record<string, string | number> {
  const served = paths.served_model !== undefined || paths.served_model_version !== undefined;
  if (!returnvalue || returnvalue.length > MAX_RETURNVALUE_CHARS || (!served && Object.keys(outputs).length === 0)) return {};
  let parsed: unknown;
  try { parsed = JSON.parse(returnvalue); } catch { return {}; }
  const root = { returnvalue: parsed } as Record<string, unknown>;
  const out: Record<string, string | number> = {};
  for (const [metric, path] of Object.entries(outputs)) {
    const v = at(root, path);
    if (typeof v === 'number' && Number.isFinite(v)) out[`output.${metric}`] = v;
  }
  const model = get(root, paths.served_model);
  const version = get(root, paths.served_model_version);
  if (model !== null) out.served_model = model;
  if (version !== null) out.served_model_version = version;
  return out;
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
