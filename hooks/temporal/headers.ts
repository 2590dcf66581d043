/**
 * Temporal headers Warden reads and writes. Pure code: it is bundled into the workflow sandbox too
 * (no node:*, no crypto), so everything here is deterministic.
 *
 * - `warden`: a JSON payload with the correlation ID, W3C trace context and model/policy metadata.
 * - `_tracer-data`: the header of @temporalio/interceptors-opentelemetry, a JSON payload holding a
 *   W3C text-map carrier ({ traceparent, tracestate }). Read so traces of apps that use the official
 *   interceptors continue; written (when absent) so their spans join Warden's trace.
 */
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { parseTraceparent } from '../../core/traceparent.js';

export const WARDEN_HEADER = 'warden';
export const TRACER_HEADER = '_tracer-data';

export interface WardenTemporalStamp {
  /** Correlation ID shared by everything done for one piece of work. */
  cid: string;
  /** W3C traceparent of the parent span (client span, workflow run span). */
  tp?: string;
  tst?: string;
  /** Span ID of the parent when no traceparent is known (trace ID is then derived from `cid`). */
  psid?: string;
  model?: string;
  model_version?: string;
  policy?: string;
  policy_version?: string;
  /**
   * What a Warden client already recorded, so the workflow does not record it again: 1 = the start
   * and the message; 2 = the message only (signalWithStart and update-with-start may reach a run
   * that already exists, so the client cannot know whether it started one).
   */
  rec?: 1 | 2;
}

type Headers = Record<string, Payload>;

const STAMP_KEYS = ['cid', 'tp', 'tst', 'psid', 'model', 'model_version', 'policy', 'policy_version'] as const;

/** Warden's stamp from headers; undefined when absent or not a stamp (never throws). */
export function readStamp(headers: Headers | undefined): WardenTemporalStamp | undefined {
  const p = headers?.[WARDEN_HEADER];
  if (!p) return undefined;
  try {
    const v = defaultPayloadConverter.fromPayload<Record<string, unknown>>(p);
    if (!v || typeof v !== 'object' || typeof v.cid !== 'string') return undefined;
    const out: WardenTemporalStamp = { cid: v.cid };
    for (const k of STAMP_KEYS) if (typeof v[k] === 'string') (out as unknown as Record<string, string>)[k] = v[k] as string;
    if (v.rec === 1 || v.rec === 2) out.rec = v.rec;
    return out;
  } catch {
    return undefined;
  }
}

/** New headers with the stamp (undefined fields dropped); the input object is not mutated. */
export function withStamp(headers: Headers, stamp: WardenTemporalStamp): Headers {
  const clean: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(stamp)) if (v !== undefined && v !== null) clean[k] = v;
  return { ...headers, [WARDEN_HEADER]: defaultPayloadConverter.toPayload(clean) };
}

export interface TraceCarrier { traceparent?: string; tracestate?: string }

/** The official interceptors' carrier, if present and well-formed. */
export function readTracerData(headers: Headers | undefined): TraceCarrier | undefined {
  const p = headers?.[TRACER_HEADER];
  if (!p) return undefined;
  try {
    const v = defaultPayloadConverter.fromPayload<Record<string, unknown>>(p);
    if (!v || typeof v !== 'object' || !parseTraceparent(v.traceparent as string)) return undefined;
    return { traceparent: v.traceparent as string, ...(typeof v.tracestate === 'string' ? { tracestate: v.tracestate } : {}) };
  } catch {
    return undefined;
  }
}

/** Adds `_tracer-data` unless one is there already (the official interceptor's own span wins). */
export function withTracerData(headers: Headers, carrier: TraceCarrier): Headers {
  if (headers[TRACER_HEADER] || !carrier.traceparent) return headers;
  const c: Record<string, string> = { traceparent: carrier.traceparent };
  if (carrier.tracestate) c.tracestate = carrier.tracestate;
  return { ...headers, [TRACER_HEADER]: defaultPayloadConverter.toPayload(c) };
}

export { formatTraceparent, parseTraceparent } from '../../core/traceparent.js';

/**
 * The trace context a stamp or `_tracer-data` carries: Warden's stamp first (it is written by the
 * same hook that made the parent), then the official header.
 */
export function incomingTrace(headers: Headers | undefined, stamp: WardenTemporalStamp | undefined): TraceCarrier | undefined {
  if (stamp?.tp && parseTraceparent(stamp.tp)) return { traceparent: stamp.tp, ...(stamp.tst ? { tracestate: stamp.tst } : {}) };
  return readTracerData(headers);
}

/**
 * A span ID computable inside the workflow sandbox (no crypto there): two FNV-1a 32-bit lanes with
 * different offsets. The sidecar uses the same function, so the workflow run span it rebuilds is the
 * parent the workflow already handed to its activities and children.
 */
export function sandboxSpanId(...parts: (string | number)[]): string {
  const text = `warden.span\0${parts.join('\0')}`;
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193) ^ (b >>> 15);
  }
  const hex = (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
  return hex === '0000000000000000' ? '0000000000000001' : hex;
}

/** The span ID of one workflow run (the span the sidecar rebuilds from workflow.* events). */
export function workflowRunSpanId(workflowId: string, runId: string): string {
  return sandboxSpanId('temporal', 'workflow', workflowId, runId);
}
