/**
 * Canonical JSON (RFC 8785 JSON Canonicalization Scheme: keys sorted by UTF-16 code units, no
 * whitespace, ECMAScript number and string forms): the bytes the ledger hashes. Written by hand for
 * speed, and held byte-identical to the `canonicalize` reference package by
 * test/core/canonical.test.ts. The reference runs at 60-85k events/s on a 2-core machine, below
 * the spool's target; here objects with a key layout seen before (every event has the same 26 fields)
 * reuse the sorted order, and strings with nothing to escape skip JSON.stringify.
 *
 * Where JCS has no form (functions, holes in arrays, NaN, BigInt, cycles), this throws NotJsonError.
 */

export class NotJsonError extends Error {
  override name = 'NotJsonError';
}

// JSON.stringify escapes exactly these: quote, backslash, C0 controls, and lone surrogates
// (any surrogate goes the slow way; JSON.stringify keeps valid pairs as they are).
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

function quote(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

interface Shape {
  keys: string[];
  sorted: string[];
  /** `"key":` for each sorted key, quoted once. */
  prefixes: string[];
}

const SHAPE_CACHE_SIZE = 32;
const shapes: Shape[] = [];

/** Sorted keys (UTF-16 code-unit order, as Array.prototype.sort and RFC 8785). */
function shapeOf(obj: object): Shape {
  const keys = Object.keys(obj);
  search: for (const shape of shapes) {
    const k = shape.keys;
    if (k.length !== keys.length) continue;
    for (let i = 0; i < k.length; i++) if (k[i] !== keys[i]) continue search;
    return shape;
  }
  const sorted = keys.slice().sort();
  const shape = { keys, sorted, prefixes: sorted.map((k) => `${quote(k)}:`) };
  // Only objects with several keys are worth caching; small ones (attrs) sort cheaply.
  if (keys.length >= 4) {
    if (shapes.length >= SHAPE_CACHE_SIZE) shapes.shift();
    shapes.push(shape);
  }
  return shape;
}

/**
 * Canonical JSON of `value`. Built as a list of pieces joined once, so the result is one flat string:
 * a rope of ~100 small strings per event, kept until its batch commits, survived young-generation
 * collections and made GC the main cost of the spool (measured: ~35k vs ~95k records/s).
 */
export function canonicalJson(value: unknown): string {
  const parts: string[] = [];
  write(value, parts, 0);
  return parts.join('');
}

function write(value: unknown, out: string[], depth: number): void {
  switch (typeof value) {
    case 'string':
      out.push(quote(value));
      return;
    case 'number':
      if (!Number.isFinite(value)) throw new NotJsonError(`${value} is not allowed in JSON`);
      out.push(String(value)); // same as JSON.stringify for finite numbers, -0 included
      return;
    case 'boolean':
      out.push(value ? 'true' : 'false');
      return;
    case 'object':
      break;
    default:
      throw new NotJsonError(`a ${typeof value} has no JSON form`);
  }
  if (value === null) {
    out.push('null');
    return;
  }
  if (depth > 1000) throw new NotJsonError('nested too deeply (cyclic?)');
  const obj = value as Record<string, unknown> & { toJSON?: unknown };
  if (obj.toJSON instanceof Function) {
    write((obj.toJSON as () => unknown)(), out, depth + 1);
    return;
  }
  if (Array.isArray(obj)) {
    out.push('[');
    for (let i = 0; i < obj.length; i++) {
      if (!(i in obj)) throw new NotJsonError('sparse arrays have no canonical form');
      const x: unknown = obj[i];
      if (i > 0) out.push(',');
      if (x === undefined || typeof x === 'symbol') out.push('null');
      else write(x, out, depth + 1);
    }
    out.push(']');
    return;
  }
  const { sorted, prefixes } = shapeOf(obj);
  out.push('{');
  let first = true;
  for (let i = 0; i < sorted.length; i++) {
    const x = obj[sorted[i]];
    if (x === undefined || typeof x === 'symbol') continue;
    if (!first) out.push(',');
    first = false;
    out.push(prefixes[i]);
    write(x, out, depth + 1);
  }
  out.push('}');
}
