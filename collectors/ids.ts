/** Identifiers: ULIDs for events, W3C trace/span IDs derived deterministically where a source has none. */
import { createHash, randomBytes } from 'node:crypto';
import { monotonicFactory } from 'ulid';

const nextUlid = monotonicFactory();

export function newEventId(ts: number = Date.now()): string {
  return nextUlid(ts);
}

/**
 * The trace ID of a correlation ID that arrived without trace context. Deterministic, so spans the
 * sidecar rebuilds from events and spans made in-process for the same correlation ID share one trace.
 */
export function traceIdForCorrelation(correlationId: string): string {
  return createHash('sha256').update('warden.trace\0').update(correlationId).digest('hex').slice(0, 32);
}

/** A span ID that is the same every time the same thing is described (e.g. after a restart). */
export function stableSpanId(...parts: (string | number)[]): string {
  const h = createHash('sha256').update('warden.span');
  for (const p of parts) h.update('\0').update(String(p));
  return h.digest('hex').slice(0, 16);
}

export function newCorrelationId(): string {
  return `wc_${nextUlid()}`;
}

export function randomSpanId(): string {
  return randomBytes(8).toString('hex');
}
