/**
 * Turns a job's or activity's raw input into the two event fields that describe it:
 * `input_digest` (sha256 of the canonical UNredacted input, so a compliance team can prove which input
 * was used without Warden storing it) and `input` (redacted and size-capped, truncation marked).
 * Malformed input (not JSON, huge, deeply nested, cyclic) is described, never thrown.
 */
import { canonicalJson } from './event.js';
import { sha256Hex } from './hash.js';
import type { Redactor } from './redact.js';

export interface InputLimits {
  /** Largest serialized (redacted) input kept in an event; larger ones keep a marked preview. */
  maxInputBytes: number;
  /** Raw text larger than this is not parsed at all (digest of the bytes, text preview only). */
  maxParseBytes: number;
}

export const DEFAULT_INPUT_LIMITS: InputLimits = { maxInputBytes: 8192, maxParseBytes: 4 * 1024 * 1024 };

export interface NormalizedInput {
  input: unknown;
  input_digest: string | null;
  /** How the input arrived: json, text (not JSON), or unserializable. */
  format: 'json' | 'text' | 'unserializable' | 'none';
}

export interface TruncatedInput {
  $truncated: true;
  bytes: number;
  preview: string;
}

const sha256 = sha256Hex;

/** Raw input as it arrives from Redis (a JSON string) or from an in-process hook (a value). */
export function normalizeInput(
  raw: unknown,
  redactor: Redactor,
  limits: InputLimits = DEFAULT_INPUT_LIMITS,
  opts: { rawIsJsonText?: boolean } = {},
): NormalizedInput {
  if (raw === undefined || raw === null) return { input: null, input_digest: null, format: 'none' };

  if (opts.rawIsJsonText && typeof raw === 'string') {
    if (raw.length > limits.maxParseBytes) return textInput(raw, redactor, limits);
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch {
      return textInput(raw, redactor, limits);
    }
    return valueInput(parsed, redactor, limits, raw);
  }
  return valueInput(raw, redactor, limits);
}

function valueInput(value: unknown, redactor: Redactor, limits: InputLimits, rawText?: string): NormalizedInput {
  let digest: string | null;
  try {
    digest = sha256(canonicalJson(value));
  } catch (err) {
    // Too deep for a recursive canonicalizer, or cyclic/BigInt: fall back to the bytes we were given.
    if (rawText === undefined) {
      return { input: { $unserializable: String((err as Error).message ?? err) }, input_digest: null, format: 'unserializable' };
    }
    digest = sha256(rawText);
  }
  const redacted = redactor.redactValue(value);
  let serialized: string;
  try {
    serialized = JSON.stringify(redacted) ?? 'null';
  } catch (err) {
    return { input: { $unserializable: String((err as Error).message) }, input_digest: digest, format: 'unserializable' };
  }
  const bytes = Buffer.byteLength(serialized);
  if (bytes <= limits.maxInputBytes) return { input: redacted, input_digest: digest, format: 'json' };
  return { input: truncated(serialized, bytes, limits), input_digest: digest, format: 'json' };
}

function textInput(raw: string, redactor: Redactor, limits: InputLimits): NormalizedInput {
  const digest = sha256(raw);
  // Redact a window larger than the preview, then cut, so a secret crossing the cut is still caught.
  const window = raw.length > limits.maxInputBytes * 2 ? raw.slice(0, limits.maxInputBytes * 2) : raw;
  const redacted = redactor.redactText(window);
  const bytes = Buffer.byteLength(raw);
  if (bytes <= limits.maxInputBytes) return { input: redacted, input_digest: digest, format: 'text' };
  return { input: truncated(redacted, bytes, limits), input_digest: digest, format: 'text' };
}

function truncated(text: string, bytes: number, limits: InputLimits): TruncatedInput {
  const keep = Math.max(0, Math.floor(limits.maxInputBytes / 2));
  return { $truncated: true, bytes, preview: text.slice(0, keep) };
}

/**
 * Bounds on what an ingest client may put in an event besides `input` (which is capped and marked as
 * the collector caps it, see capInput): events over them are refused naming the field.
 */
export const EVENT_BOUNDS = {
  /** attrs: at most this many keys ... */
  maxAttrs: 64,
  /** ... keys of at most this many characters ... */
  maxAttrKeyChars: 128,
  /** ... string values of at most this many characters ... */
  maxAttrValueChars: 4096,
  /** ... and at most this many bytes of JSON in all. */
  maxAttrsBytes: 16_384,
  /** reason and error (free text: messages, stack heads; the Temporal hooks cut errors at 4 096). */
  maxTextChars: 16_384,
  /** Every other string field (names, IDs, versions). */
  maxFieldChars: 1024,
} as const;

/**
 * An ingested event's `input`, redacted and capped as the collector caps a job's data: over
 * `maxInputBytes` of JSON it becomes a marked preview (`{"$truncated":true,"bytes":n,"preview":...}`).
 * The hook's own `input_digest` is kept: it was computed over the unredacted value the sidecar never saw.
 */
export function capInput(value: unknown, redactor: Redactor, limits: Pick<InputLimits, 'maxInputBytes'> = DEFAULT_INPUT_LIMITS): unknown {
  if (value === null || value === undefined) return null;
  const redacted = redactor.redactValue(value);
  let serialized: string;
  try {
    serialized = JSON.stringify(redacted) ?? 'null';
  } catch (err) {
    return { $unserializable: String((err as Error).message) };
  }
  const bytes = Buffer.byteLength(serialized);
  return bytes <= limits.maxInputBytes ? redacted : { $truncated: true, bytes, preview: serialized.slice(0, Math.max(0, Math.floor(limits.maxInputBytes / 2))) } satisfies TruncatedInput;
}
