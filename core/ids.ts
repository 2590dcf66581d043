/** Identifiers: ULIDs for events, W3C trace/span IDs derived deterministically where a source has none. */
import { randomFillSync } from 'node:crypto';
import { sha256Hex } from './hash.js';
import { monotonicFactory, ulid } from 'ulid';

/**
 * ulid's default PRNG asks the OS for one random byte per character (16 calls per ID, measured at
 * 45% of the collector's CPU). Same CSPRNG, drawn 4 KiB at a time.
 */
function bufferedRandom(): () => number {
  const buf = new Uint8Array(4096);
  let i = buf.length;
  return () => {
    if (i === buf.length) { randomFillSync(buf); i = 0; }
    return buf[i++] / 256;
  };
}

const nextUlid = monotonicFactory(bufferedRandom());

export function newEventId(ts: number = Date.now()): string {
  return nextUlid(ts);
}

/**
 * The event ID of an event derived from a source record with a stable identity (a BullMQ stream
 * entry, a Temporal history event, a Celery task event): a ULID whose time part is the record's time
 * (`ts`, epoch ms) and whose 80 "random" bits come from sha256(`namespace \0 parts...`). Whoever
 * derives the event, whenever (two sidecars reading one stream, a re-read after a crash), it gets the
 * same ID, so copies of it in several ledgers are recognizably one event.
 */
export function derivedEventId(ts: number, namespace: string, ...parts: (string | number)[]): string {
  const hex = sha256Hex(`${namespace}\0${parts.join('\0')}`);
  let i = 0;
  return ulid(ts, () => parseInt(hex.slice(2 * (i % 32), 2 * (i++ % 32) + 2), 16) / 256);
}

/**
 * The trace ID of a correlation ID that arrived without trace context. Deterministic, so spans the
 * sidecar rebuilds from events and spans made in-process for the same correlation ID share one trace.
 */
export function traceIdForCorrelation(correlationId: string): string {
  return sha256Hex(`warden.trace\0${correlationId}`).slice(0, 32);
}

/** A span ID that is the same every time the same thing is described (e.g. after a restart). */
export function stableSpanId(...parts: (string | number)[]): string {
  return sha256Hex(`warden.span\0${parts.join('\0')}`).slice(0, 16);
}

export function newCorrelationId(): string {
  return `wc_${nextUlid()}`;
}
