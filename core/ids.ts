/** Identifiers: ULIDs for events, W3C trace/span IDs derived deterministically where a source has none. */
import { randomFillSync } from 'node:crypto';
import { sha256Bytes, sha256Hex } from './hash.js';
import { encodeTime } from 'ulid';

/**
 * Monotonic ULIDs (the `ulid` package's monotonicFactory, same output format and ordering): 80
 * random bits per new millisecond, +1 for each further ID in that millisecond (or when the clock
 * steps back). Written here because the package increments its random part one base32 character at
 * a time through string copies (~360 ns per ID, two per activity attempt in the Temporal hook);
 * here the random part is two 40-bit numbers, encoded two characters per table lookup.
 */
const B32 = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const PAIRS: string[] = Array.from({ length: 1024 }, (_, i) => B32[i >> 5] + B32[i & 31]);
const C32 = Uint8Array.from(B32, (c) => c.charCodeAt(0));
const TWO_20 = 2 ** 20;
const TWO_40 = 2 ** 40;

/** Eight base32 characters of a 40-bit integer. */
function enc40(n: number): string {
  const hi = Math.floor(n / TWO_20);
  const lo = n - hi * TWO_20;
  return PAIRS[hi >> 10] + PAIRS[hi & 1023] + PAIRS[lo >> 10] + PAIRS[lo & 1023];
}

/** The OS CSPRNG, drawn 4 KiB at a time (one syscall per byte was 45% of the collector's CPU once). */
const randomBytes = new Uint8Array(4096);
let randomAt = randomBytes.length;
function random40(): number {
  if (randomAt + 5 > randomBytes.length) { randomFillSync(randomBytes); randomAt = 0; }
  const b = randomBytes;
  const i = randomAt;
  randomAt += 5;
  return b[i] * 2 ** 32 + ((b[i + 1] << 24) >>> 0) + (b[i + 2] << 16) + (b[i + 3] << 8) + b[i + 4];
}

/** The time a ULID is made for: the `ulid` package's rule (0, NaN or none: now), kept by both generators here. */
const ulidTime = (t: number | undefined): number => (!t || Number.isNaN(t) ? Date.now() : t);

/** A monotonic ULID generator drawing 40 random bits at a time from `draw40` (exported for tests). */
export function monotonicUlid(draw40: () => number): (seedTime?: number) => string {
  let lastTime = -Infinity;
  let lastTimeText = '';
  let randHi = 0;
  let randLo = 0;
  return (seedTime) => {
    const seed = ulidTime(seedTime);
    if (seed <= lastTime) {
      if (++randLo === TWO_40) {
        randLo = 0;
        if (++randHi === TWO_40) throw new Error('ULID random part overflowed within one millisecond');
      }
    } else {
      lastTimeText = encodeTime(seed, 10); // validates too: throws ulid's errors for a time it cannot encode
      lastTime = seed;
      randHi = draw40();
      randLo = draw40();
    }
    return lastTimeText + enc40(randHi) + enc40(randLo);
  };
}

const nextUlid = monotonicUlid(random40);

export function newEventId(ts: number = Date.now()): string {
  return nextUlid(ts);
}

/** The time part of the last derived ID (a batch's events share milliseconds). */
let derivedTime = NaN;
let derivedTimeText = '';

/**
 * The event ID of an event derived from a source record with a stable identity (a BullMQ stream
 * entry, a Temporal history event, a Celery task event): a ULID whose time part is the record's time
 * (`ts`, epoch ms) and whose 80 "random" bits come from sha256(`namespace \0 parts...`). Whoever
 * derives the event, whenever (two sidecars reading one stream, a re-read after a crash), it gets the
 * same ID, so copies of it in several ledgers are recognizably one event.
 */
export function derivedEventId(ts: number, namespace: string, ...parts: (string | number)[]): string {
  const d = sha256Bytes(`${namespace}\0${parts.join('\0')}`);
  // ulid(ts, prng) with prng() = byte[i] / 256 for the i-th call: each character is B32[byte >> 3],
  // the first call's the last character. Written out: the package prepends 16 one-character
  // strings and parsed the bytes back out of hex (~4% of the sidecar's allocation, heap sampling).
  const seed = ulidTime(ts);
  if (seed !== derivedTime) { derivedTimeText = encodeTime(seed, 10); derivedTime = seed; } // validates, as ulid() does
  return derivedTimeText + String.fromCharCode(
    C32[d[15] >> 3], C32[d[14] >> 3], C32[d[13] >> 3], C32[d[12] >> 3], C32[d[11] >> 3], C32[d[10] >> 3], C32[d[9] >> 3], C32[d[8] >> 3],
    C32[d[7] >> 3], C32[d[6] >> 3], C32[d[5] >> 3], C32[d[4] >> 3], C32[d[3] >> 3], C32[d[2] >> 3], C32[d[1] >> 3], C32[d[0] >> 3]);
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
