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
import { stampFromValue, type WardenTemporalStamp } from '../../core/temporal-stamp.js';

export const WARDEN_HEADER = 'warden';
export const TRACER_HEADER = '_tracer-data';

export type { WardenTemporalStamp } from '../../core/temporal-stamp.js';
export { sandboxSpanId, workflowRunSpanId } from '../../core/temporal-stamp.js';

type Headers = Record<string, Payload>;

/** Warden's stamp from headers; undefined when absent or not a stamp (never throws). */
export function readStamp(headers: Headers | undefined): WardenTemporalStamp | undefined {
  const p = headers?.[WARDEN_HEADER];
  if (!p) return undefined;
  try {
    return stampFromValue(defaultPayloadConverter.fromPayload<unknown>(p));
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
