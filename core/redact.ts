/**
 * Redaction of secrets and personal data. Runs where the raw value is first seen (in the collector
 * or the in-process hook), so nothing unredacted reaches disk, a span or a metric label.
 * Three layers: configured paths, sensitive key names, and patterns inside any string.
 */

export interface RedactionOptions {
  /** Dot paths into the input, `*` matches any key or array index, e.g. `user.ssn`, `messages.*.content`. */
  paths: string[];
  /** Deeper structures are cut here (a hostile payload must not exhaust the stack). */
  maxDepth: number;
}

export const DEFAULT_REDACTION: RedactionOptions = { paths: [], maxDepth: 32 };

const SENSITIVE_KEY =
  /^(pass(word|wd|phrase)?|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|(access|refresh|id|auth|bearer)[_-]?token|token|authorization|cookie|set-cookie|private[_-]?key|ssn|card[_-]?number|cc[_-]?number|cvv|cvc)$/i;

interface Pattern { label: string; re: RegExp; check?: (m: string) => boolean; keepPrefix?: boolean }

// Order matters: structured secrets first, so a JWT inside "Bearer ..." is labelled as a token once.
const PATTERNS: Pattern[] = [
  { label: 'token', re: /\bBearer\s+[A-Za-z0-9\-._~+/]+=*/gi },
  { label: 'api_key', re: /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g },
  { label: 'api_key', re: /\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}/g },
  { label: 'api_key', re: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g },
  { label: 'api_key', re: /\bgh[pousr]_[A-Za-z0-9]{30,}\b/g },
  { label: 'api_key', re: /\bxox[abprs]-[A-Za-z0-9-]{10,}/g },
  { label: 'api_key', re: /\bAIza[0-9A-Za-z_-]{35}\b/g },
  { label: 'secret', re: /\b(?:api[_-]?key|secret|token|password|passwd)\b["']?\s*[:=]\s*["']?[^\s"',;&]+/gi, keepPrefix: true },
  { label: 'email', re: /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g },
  { label: 'card', re: /\b\d(?:[ -]?\d){12,18}\b/g, check: (m) => luhnValid(m.replace(/\D/g, '')) },
];

function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
    sum += d;
  }
  return sum % 10 === 0;
}

// Something every pattern above needs; most strings (ids, names, prose) have none and skip the ten regexes.
const MIGHT_MATCH = /@|\d(?:[ -]?\d){12}|bearer|eyJ|[spr]k-|AKIA|ASIA|gh[pousr]_|xox|AIza|key|secret|token|passw/i;

export const REDACTED = '[REDACTED]';

export class Redactor {
  private readonly paths: string[][];

  constructor(private readonly opts: RedactionOptions = DEFAULT_REDACTION) {
    this.paths = opts.paths.map((p) => p.replace(/^\$\.?/, '').split('.').filter(Boolean));
  }

  /** Replaces secrets and personal data found anywhere inside a free-text string. */
  redactText(text: string): string {
    if (!MIGHT_MATCH.test(text)) return text;
    let out = text;
    for (const p of PATTERNS) {
      out = out.replace(p.re, (m) => {
        if (p.check && !p.check(m)) return m;
        if (p.keepPrefix) {
          const sep = m.search(/[:=]/);
          return `${m.slice(0, sep + 1)}[REDACTED:${p.label}]`;
        }
        return `[REDACTED:${p.label}]`;
      });
    }
    return out;
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
    const isArray = Array.isArray(value);
    const out: Record<string, unknown> | unknown[] = isArray ? [] : {};
    for (const [key, child] of Object.entries(value as object)) {
      // Advance each configured path that matches this key; a path that ends here redacts the value.
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
      const redacted = hit || (!isArray && SENSITIVE_KEY.test(key))
        ? REDACTED
        : this.walk(child, depth + 1, nextPos);
      if (isArray) (out as unknown[]).push(redacted);
      else (out as Record<string, unknown>)[this.redactText(key)] = redacted;
    }
    return out;
  }
}
