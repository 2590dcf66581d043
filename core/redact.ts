/**
 * Redaction of secrets and personal data. Runs where the raw value is first seen (in the collector
 * or the in-process hook), so nothing unredacted reaches disk, a span or a metric label.
 * Three layers: configured paths, sensitive key names, and patterns inside any string.
 */

import type { EventAttrs, WardenEvent } from './event.js';
import { sha256Hex } from './hash.js';

export interface RedactionOptions {
  /** Dot paths into the input, `*` matches any key or array index, e.g. `user.ssn`, `messages.*.content`. */
  paths: string[];
  /** Deeper structures are cut here (a hostile payload must not exhaust the stack). */
  maxDepth: number;
}

export const DEFAULT_REDACTION: RedactionOptions = { paths: [], maxDepth: 32 };

/**
 * Key names whose values are secrets, matched anywhere in the name so compound names are caught
 * (`db_password`, `userPassword`, `aws_secret_access_key`, `x-api-key`, `refreshToken`, `gcp_credentials`).
 * Token *counts* (`prompt_tokens`, `max_tokens`, `token_count`, `tokenizer`) are not secrets.
 */
const SENSITIVE_KEY_PART =
  /pass(?:word|wd|phrase)|secret|api[_-]?key|apikey|access[_-]?key|credential|private[_-]?key|authori[sz]ation|cookie|session[_-]?id|token(?!s|i[sz]e|[_-]?(?:count|usage|limit|len|length|budget|total|s))/i;
/** Keys that name a credential rather than hold one (`evidence.via_token`: the token's configured name). */
const NAMES_A_TOKEN = /(?:^|[_.-])via[_-]?token$|token[_-]?(?:name|type|role)$/i;
const SENSITIVE_KEY_WHOLE = /^(?:pass|pwd|ssn|cvv|cvc|pin|auth|card[_-]?number|cc[_-]?number)$/i;
const PWD_PART = /(?:^|[_.-])pwd(?:$|[_.-])/i;
const PWD_CAMEL = /[a-z0-9]Pwd(?:$|[A-Z_.-])/;

/** True for a key name whose value is a secret wherever it appears (input, attrs, query parameters). */
export function isSensitiveKey(name: string): boolean {
  const key = name.includes('[REDACTED') ? name.replace(/\[REDACTED(?::[a-z_]+)?\]/g, '') : name; // idempotent on redacted keys
  if (NAMES_A_TOKEN.test(key)) return false;
  return SENSITIVE_KEY_PART.test(key) || SENSITIVE_KEY_WHOLE.test(key) || PWD_PART.test(key) || PWD_CAMEL.test(key);
}

/**
 * `gate` is a cheap test every match of `re` needs (a substring or a short regex): a string without it
 * skips `re`, and the output is the same. Most strings that pass MIGHT_MATCH trip one or two patterns.
 */
interface Pattern { label: string; re: RegExp; gate: RegExp; replace?: (m: string, ...groups: string[]) => string }

const isRedacted = (v: string) => v.startsWith('[REDACTED');

// Order matters: structured secrets first, so a JWT inside "Bearer ..." is labelled as a token once.
const PATTERN_SPECS: Pattern[] = [
  { label: 'token', re: /\b(?:Bearer|Basic)\s+[A-Za-z0-9\-._~+/]+=*/gi, gate: /bearer|basic/i },
  { label: 'api_key', re: /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, gate: /eyJ/ },
  { label: 'api_key', re: /\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}/g, gate: /[spr]k-/ },
  { label: 'api_key', re: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g, gate: /AKIA|ASIA/ },
  { label: 'api_key', re: /\bgh[pousr]_[A-Za-z0-9]{30,}\b/g, gate: /gh[pousr]_/ },
  { label: 'api_key', re: /\bxox[abprs]-[A-Za-z0-9-]{10,}/g, gate: /xox/ },
  { label: 'api_key', re: /\bAIza[0-9A-Za-z_-]{35}\b/g, gate: /AIza/ },
  // A password in URL userinfo: scheme://user:password@host
  { label: 'password', re: /\b([a-z][a-z0-9+.-]*:\/\/)([^/\s:@]*):([^/\s@]+)@/gi, gate: /:\/\//, replace: (m, scheme, user, pass) => isRedacted(pass) ? m : `${scheme}${user}:[REDACTED:password]@` },
  // key=value / key: value where the key name is sensitive (compound names included)
  {
    label: 'secret',
    re: /([A-Za-z][A-Za-z0-9_.-]*)(["']?\s*[:=]\s*["']?)([^\s"',;&]+)/g,
    gate: /[:=]/,
    replace: (m, key, sep, value) => (!isSensitiveKey(key) || isRedacted(value) ? m : `${key}${sep.replace(/\s+$/, '').replace(/["']$/, '')}[REDACTED:secret]`),
  },
  { label: 'email', re: /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g, gate: /@/ },
  { label: 'card', re: /\b\d(?:[ -]?\d){12,18}\b/g, gate: /\d(?:[ -]?\d){12}/, replace: (m) => (luhnValid(m.replace(/\D/g, '')) ? '[REDACTED:card]' : m) },
];

/** Each pattern with its fixed replacement (labels hold no `$`, which replace() would read as a pattern). */
const PATTERNS = PATTERN_SPECS.map((p) => ({ ...p, text: `[REDACTED:${p.label}]` }));

function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
    sum += d;
  }
  return sum % 10 === 0;
}

// Something every pattern above needs; most strings (ids, names, prose) have none and skip the regexes.
const MIGHT_MATCH = /@|\d(?:[ -]?\d){12}|bearer|basic|eyJ|[spr]k-|AKIA|ASIA|gh[pousr]_|xox|AIza|key|secret|token|pass|pwd|pin|ssn|cv[vc]|credential|authori|cookie|session|:\/\/|auth/i;
const PERCENT = /%[0-9A-Fa-f]{2}/;

/** Percent-decodes what can be decoded; a malformed sequence stays as it is (never throws). */
export function percentDecode(text: string, plusIsSpace = false): string {
  const t = plusIsSpace ? text.replace(/\+/g, ' ') : text;
  if (!t.includes('%')) return t;
  try {
    return decodeURIComponent(t);
  } catch {
    return t.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
      try { return decodeURIComponent(run); } catch { return run; }
    });
  }
}

export const REDACTED = '[REDACTED]';

function redactPlain(text: string): string {
  if (!MIGHT_MATCH.test(text)) return text;
  let out = text;
  for (const p of PATTERNS) {
    if (!p.gate.test(out)) continue;
    // A fixed replacement string takes the engine's fast path (no callback per match); labels hold no `$`.
    out = p.replace ? out.replace(p.re, p.replace) : out.replace(p.re, p.text);
  }
  return out;
}

interface KeyInfo { readonly shown: string; readonly sensitive: boolean }
const MAX_CACHED_KEYS = 4096;
const MAX_CACHED_KEY_CHARS = 128;
const MAX_CLEAN_TEXTS = 8192;
const MAX_CLEAN_TEXT_CHARS = 128;

export class Redactor {
  private readonly paths: string[][];
  private readonly keys = new Map<string, KeyInfo>();
  /**
   * Short texts found to hold nothing to redact. Events repeat the same queue, job, model and
   * correlation names, each re-checked on every path it passes (collector, pipeline); a set lookup is
   * cheaper than the patterns' pre-check. Only clean texts are kept, so no secret is held here.
   */
  private readonly clean = new Set<string>();

  constructor(private readonly opts: RedactionOptions = DEFAULT_REDACTION) {
    this.paths = opts.paths.map((p) => p.replace(/^\$\.?/, '').split('.').filter(Boolean));
  }

  /** Replaces secrets and personal data found anywhere inside a free-text string. */
  redactText(text: string): string {
    const short = text.length <= MAX_CLEAN_TEXT_CHARS;
    if (short && this.clean.has(text)) return text;
    const out = this.redactUncached(text);
    if (short && out === text) {
      if (this.clean.size >= MAX_CLEAN_TEXTS) this.clean.clear();
      this.clean.add(text);
    }
    return out;
  }

  private redactUncached(text: string): string {
    // Percent-encoded secrets (`Bearer%20...`, `jane%40corp.example`) are matched after decoding.
    if (PERCENT.test(text)) {
      const decoded = percentDecode(text);
      if (decoded !== text) {
        const out = redactPlain(decoded);
        if (out !== decoded) return out;
      }
    }
    return redactPlain(text);
  }

  /** Returns a redacted deep copy of a JSON-like value; never mutates its argument. */
  redactValue(value: unknown): unknown {
    return this.walk(value, 0, this.paths.length ? this.paths.map(() => 0) : []);
  }

  private walk(value: unknown, depth: number, pathPos: number[]): unknown {
    if (typeof value === 'string') return this.redactText(value);
    if (value === null || typeof value !== 'object') {
      return typeof value === 'bigint' ? value.toString() : value;
    }
    if (depth >= this.opts.maxDepth) return `[WARDEN:depth>${this.opts.maxDepth}]`;
    const noPaths = this.paths.length === 0;
    if (Array.isArray(value)) {
      const out: unknown[] = new Array(value.length);
      for (let i = 0; i < value.length; i++) {
        if (noPaths) { out[i] = this.walk(value[i], depth + 1, pathPos); continue; }
        const { hit, nextPos } = this.advance(String(i), pathPos);
        out[i] = hit ? REDACTED : this.walk(value[i], depth + 1, nextPos);
      }
      return out;
    }
    const out: Record<string, unknown> = {};
    for (const key in value) {
      if (!Object.prototype.hasOwnProperty.call(value, key)) continue;
      const child = (value as Record<string, unknown>)[key];
      const k = this.keyInfo(key);
      if (noPaths) { out[k.shown] = k.sensitive ? REDACTED : this.walk(child, depth + 1, pathPos); continue; }
      const { hit, nextPos } = this.advance(key, pathPos);
      out[k.shown] = hit || k.sensitive ? REDACTED : this.walk(child, depth + 1, nextPos);
    }
    return out;
  }

  /** Advances each configured path that matches this key; a path that ends here redacts the value. */
  private advance(key: string, pathPos: number[]): { hit: boolean; nextPos: number[] } {
    const nextPos: number[] = [];
    let hit = false;
    for (let i = 0; i < this.paths.length; i++) {
      const path = this.paths[i];
      const pos = pathPos[i];
      if (pos < 0 || pos >= path.length) { nextPos.push(-1); continue; }
      if (path[pos] === '*' || path[pos] === key) {
        if (pos + 1 === path.length) hit = true;
        nextPos.push(pos + 1);
      } else nextPos.push(-1);
    }
    return { hit, nextPos };
  }

  /**
   * An object key's redacted text and whether its value is a secret. Inputs repeat the same few key
   * names, so short keys are remembered (bounded; the answer depends on the key alone).
   */
  keyInfo(key: string): KeyInfo {
    const known = this.keys.get(key);
    if (known) return known;
    const info: KeyInfo = { shown: this.redactText(key), sensitive: isSensitiveKey(key) };
    if (key.length <= MAX_CACHED_KEY_CHARS) {
      if (this.keys.size >= MAX_CACHED_KEYS) this.keys.clear();
      this.keys.set(key, info);
    }
    return info;
  }
}

// ---------------------------------------------------------------------------------------------
// Whole events and request URLs: the one place every path (collector, ingest, API audit, policy
// decisions) passes before the spool, a span, a metric label or a log.

/** Join keys: redacting them must keep them joinable (same input, same output; distinct stay distinct). */
const JOIN_KEYS = ['correlation_id', 'job_id', 'workflow_id', 'run_id'] as const;
const STREAM_ID = /^\d{1,20}-\d{1,20}$/;
/** Structural fields: validated formats (ids, hex, numbers) that never carry free text. */
const STRUCTURAL = new Set(['event_id', 'ts', 'kind', 'source', 'trace_id', 'span_id', 'attempt', 'duration_ms', 'input_digest', 'input', 'attrs', ...JOIN_KEYS]);
/** Plain ULIDs, UUIDs and numbers pass unchanged (a numeric job ID is not a card number). */
const PLAIN_ID = /^(?:\d+|[0-9A-HJKMNP-TV-Z]{26}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;
const DIGEST_SUFFIX = /~h:[0-9a-f]{12}$/;

/**
 * Redacts a join key (correlation ID, job ID, workflow/run ID) deterministically: a plain ID passes
 * unchanged; one that carries a secret or personal data keeps its redacted text plus a short digest
 * of the original (`bullmq:q:[REDACTED:email]~h:1a2b3c4d5e6f`), so two different keys stay different
 * and every record of the same key still joins. Idempotent.
 */
export function redactJoinKey(value: string, redactor: Redactor): string {
  if (PLAIN_ID.test(value) || DIGEST_SUFFIX.test(value)) return value;
  const out = redactor.redactText(value);
  return out === value ? value : `${out}~h:${sha256Hex(`warden-join-key\0${value}`).slice(0, 12)}`;
}

/**
 * Returns a redacted copy of an event: every string field, `input` (paths, sensitive key names,
 * patterns), every attrs key, and attrs values (a value under a sensitive key name is replaced
 * whole). Join keys stay joinable (redactJoinKey). Deterministic and idempotent; never mutates
 * its argument.
 */
export function redactEvent(ev: WardenEvent, redactor: Redactor = DEFAULT_REDACTOR): WardenEvent {
  // Idempotent, so an event this function already returned (for this redactor) is returned as is:
  // collectors redact at the source and the pipeline's net would otherwise redo the work per event.
  // Such an event is final: code that changes an event changes a copy, and the copy is redacted again.
  if (REDACTED_BY.get(ev) === redactor) return ev;
  const out: Record<string, unknown> = { ...ev };
  // Keys, not entries: an event has ~26 fields and entries() made a pair for each (garbage per event).
  for (const field of Object.keys(ev)) {
    const v = out[field];
    if (typeof v === 'string' && !STRUCTURAL.has(field)) out[field] = redactor.redactText(v);
  }
  for (const k of JOIN_KEYS) if (typeof ev[k] === 'string') out[k] = redactJoinKey(ev[k] as string, redactor);
  out.input = ev.input === null || ev.input === undefined ? null : redactor.redactValue(ev.input);
  const attrs: EventAttrs = {};
  const given = ev.attrs ?? {};
  for (const k of Object.keys(given)) {
    const v = given[k];
    // A Redis stream entry ID (`<ms>-<n>`) is a position, not data: its digits can pass the card
    // pattern's Luhn check, and a redacted position made the collector re-read entries after a restart.
    if (k === 'stream_id' && typeof v === 'string' && STREAM_ID.test(v)) { attrs[k] = v; continue; }
    // The same few attrs keys recur on every event: their redacted text and sensitivity are remembered.
    const key = redactor.keyInfo(k);
    attrs[key.shown] = key.sensitive && v !== null ? REDACTED : typeof v === 'string' ? redactor.redactText(v) : v;
  }
  out.attrs = attrs;
  REDACTED_BY.set(out, redactor);
  return out as WardenEvent;
}

/** Events redactEvent returned, and the redactor that made them (weak: they go when the event goes). */
const REDACTED_BY = new WeakMap<object, Redactor>();

/**
 * The record of a request URL: the path (redacted text) and every parameter name, never a
 * secret-looking value. Values are percent-decoded before matching; a value under a sensitive
 * parameter name is replaced whole; malformed encodings never throw.
 */
export function redactUrl(pathAndQuery: string, redactor: Redactor = DEFAULT_REDACTOR): string {
  const q = pathAndQuery.indexOf('?');
  const path = q < 0 ? pathAndQuery : pathAndQuery.slice(0, q);
  const redactedPath = redactor.redactText(path);
  if (q < 0) return redactedPath;
  const params = pathAndQuery.slice(q + 1).split('&').map((pair) => {
    if (pair === '') return pair;
    const eq = pair.indexOf('=');
    const rawName = eq < 0 ? pair : pair.slice(0, eq);
    const name = percentDecode(rawName, true);
    const shownName = redactor.redactText(name) === name ? rawName : redactor.redactText(name);
    if (eq < 0) return shownName;
    const raw = pair.slice(eq + 1);
    if (isSensitiveKey(name)) return `${shownName}=${REDACTED}`;
    const value = percentDecode(raw, true);
    const redacted = redactor.redactText(value);
    return `${shownName}=${redacted === value ? raw : redacted}`;
  });
  return `${redactedPath}?${params.join('&')}`;
}

const DEFAULT_REDACTOR = new Redactor();
