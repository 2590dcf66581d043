/**
 * Celery events carry a task's arguments as Python reprs (`argsrepr`/`kwargsrepr`, cut at 1024
 * characters): `(1, 'a')`, `{'secret': 'x', 'n': None}`. Parsed here into JSON values where they are
 * plain literals, so key-based redaction (`secret`, `password`, configured paths) works on them as on
 * any other input; anything else (objects, a cut repr) stays text and gets text redaction.
 */

export class ReprParseError extends Error {
  override readonly name = 'ReprParseError';
}

const MAX_DEPTH = 64;

/** Parses a Python literal repr (tuple, list, dict, str, bytes-free numbers, None/True/False). */
export function parsePyRepr(text: string): unknown {
  let i = 0;
  const s = text;
  const ws = () => { while (i < s.length && /\s/.test(s[i])) i++; };
  const fail = (what: string): never => { throw new ReprParseError(`${what} at ${i}`); };

  function str(): string {
    const q = s[i];
    if (s.startsWith(q.repeat(3), i)) fail('triple-quoted string');
    i++;
    let out = '';
    while (i < s.length && s[i] !== q) {
      if (s[i] === '\\') {
        const c = s[i + 1];
        i += 2;
        const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0' };
        if (c in simple) out += simple[c];
        else if (c === 'x' || c === 'u' || c === 'U') {
          const n = c === 'x' ? 2 : c === 'u' ? 4 : 8;
          const hex = s.slice(i, i + n);
          if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== n) fail('bad escape');
          out += String.fromCodePoint(parseInt(hex, 16));
          i += n;
        } else fail('unknown escape');
      } else out += s[i++];
    }
    if (s[i] !== q) fail('unterminated string');
    i++;
    return out;
  }

  function seq(close: string, depth: number): unknown[] {
    const items: unknown[] = [];
    ws();
    while (s[i] !== close) {
      items.push(value(depth + 1));
      ws();
      if (s[i] === ',') { i++; ws(); continue; }
      if (s[i] !== close) fail(`expected , or ${close}`);
    }
    i++;
    return items;
  }

  function dict(depth: number): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    ws();
    while (s[i] !== '}') {
      const k = value(depth + 1);
      ws();
      if (s[i] !== ':') fail('expected :');
      i++;
      out[typeof k === 'string' ? k : JSON.stringify(k)] = value(depth + 1);
      ws();
      if (s[i] === ',') { i++; ws(); continue; }
      if (s[i] !== '}') fail('expected , or }');
    }
    i++;
    return out;
  }

  function value(depth: number): unknown {
    if (depth > MAX_DEPTH) fail('too deep');
    ws();
    const c = s[i];
    if (c === undefined) fail('unexpected end');
    if (c === "'" || c === '"') return str();
    if (c === '(') { i++; return seq(')', depth); }
    if (c === '[') { i++; return seq(']', depth); }
    if (c === '{') { i++; return dict(depth); }
    for (const [word, v] of [['None', null], ['True', true], ['False', false]] as const) {
      if (s.startsWith(word, i) && !/\w/.test(s[i + word.length] ?? '')) { i += word.length; return v; }
    }
    const m = /^-?(?:\d+\.?\d*(?:e[+-]?\d+)?|\.\d+)/i.exec(s.slice(i, i + 64));
    if (m) { i += m[0].length; return Number(m[0]); }
    return fail('not a literal');
  }

  const v = value(0);
  ws();
  if (i !== s.length) fail('trailing text');
  return v;
}

/** The repr as a JSON value when it is a plain literal, else the text itself. */
export function reprValue(text: string | undefined | null): unknown {
  if (text === undefined || text === null) return null;
  try {
    return parsePyRepr(text);
  } catch {
    return text;
  }
}
