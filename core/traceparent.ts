/**
 * W3C traceparent parsing and formatting, shared by the hooks (BullMQ stamp, Temporal headers, also
 * inside the workflow sandbox: pure, no node:*) and the sidecar's collectors.
 */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export interface ParsedTraceparent {
  traceId: string;
  spanId: string;
  flags: number;
}

/** The trace and span IDs of a version-00 traceparent, or null if it is malformed or all-zero. */
export function parseTraceparent(tp: string | null | undefined): ParsedTraceparent | null {
  const m = typeof tp === 'string' ? TRACEPARENT.exec(tp) : null;
  if (!m || /^0+$/.test(m[1]) || /^0+$/.test(m[2])) return null;
  return { traceId: m[1], spanId: m[2], flags: parseInt(m[3], 16) };
}

export function formatTraceparent(traceId: string, spanId: string, sampled = true): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}
