/**
 * W3C traceparent parsing and formatting, shared by the hooks (BullMQ stamp, Temporal headers, also
 * inside the workflow sandbox: pure, no node:*) and the sidecar's collectors.
 */
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);

export interface ParsedTraceparent {
  traceId: string;
  spanId: string;
  flags: number;
}

/**
 * The trace and span IDs of a version-00 traceparent, or null if it is malformed or all-zero.
 * (A test and fixed-position slices: every hooked call parses one, and captures cost twice as much.)
 */
export function parseTraceparent(tp: string | null | undefined): ParsedTraceparent | null {
  if (typeof tp !== 'string' || tp.length !== 55 || !TRACEPARENT.test(tp)) return null;
  const traceId = tp.slice(3, 35);
  const spanId = tp.slice(36, 52);
  if (traceId === ZERO_TRACE_ID || spanId === ZERO_SPAN_ID) return null;
  return { traceId, spanId, flags: parseInt(tp.slice(53), 16) };
}

export function formatTraceparent(traceId: string, spanId: string, sampled = true): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}
