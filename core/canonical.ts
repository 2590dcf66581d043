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

interface Shape {
  keys: string[];
  sorted: string[];
  /** `"key":` for each sorted key, quoted once (JSON.stringify's form of a key), as UTF-8 bytes. */
  prefixes: Buffer[];
}

// Events, their attrs and inputs come in a few dozen key layouts. Small layouts are cached too: sorting
// them anew (a sorted copy, the sort's work area, the quoted prefixes) was a tenth of the sidecar's
// allocations.
const SHAPE_CACHE_SIZE = 64;
const MAX_CACHED_KEYS = 256;
const shapes: Shape[] = [];

/** Sorted keys (UTF-16 code-unit order, as Array.prototype.sort and RFC 8785). */
function shapeOf(obj: object): Shape {
  const keys = Object.keys(obj);
  const n = keys.length;
  search: for (let s = 0; s < shapes.length; s++) {
    const k = shapes[s].keys;
    if (k.length !== n) continue;
    for (let i = 0; i < n; i++) if (k[i] !== keys[i]) continue search;
    return shapes[s];
  }
  const sorted = keys.slice().sort();
  const shape: Shape = { keys, sorted, prefixes: sorted.map((k) => Buffer.from(`${JSON.stringify(k)}:`, 'utf8')) };
  if (n > 0 && n <= MAX_CACHED_KEYS) { // a huge one-off object (hostile input) is not kept
    if (shapes.length >= SHAPE_CACHE_SIZE) shapes.shift();
    shapes.push(shape);
  }
  return shape;
}

/**
 * Canonical JSON of `value`, as one flat string: the writer's bytes decoded once (a rope of ~100
 * small strings per event, kept until its batch committed, once made GC the main cost of the spool).
 */
export function canonicalJson(value: unknown): string {
  // A toJSON that itself asks for canonical JSON must not write into the buffer in use.
  const outer = !shared.busy;
  const w = outer ? shared.writer : new CanonicalWriter(1024);
  shared.busy = true;
  w.clear();
  try {
    w.write(value);
    return w.buf.toString('utf8', 0, w.length);
  } finally {
    if (outer) shared.busy = false;
  }
}

const MAX_KEPT_BYTES = 4 << 20;

/**
 * Canonical JSON straight into bytes, written into one growing buffer with no intermediate strings.
 * canonicalJson decodes it; the spool keeps the bytes (the pieces, the joined string and the record
 * line built around it were a quarter of the sidecar's allocations).
 */
export class CanonicalWriter {
  buf: Buffer;
  /** Bytes written so far. */
  length = 0;

  constructor(private readonly initialBytes = 64 << 10) {
    this.buf = Buffer.allocUnsafe(initialBytes);
  }

  /** Empties it for reuse; a buffer one huge value grew past MAX_KEPT_BYTES is dropped, not kept. */
  clear(): void {
    this.length = 0;
    if (this.buf.length > MAX_KEPT_BYTES) this.buf = Buffer.allocUnsafe(this.initialBytes);
  }

  /** Appends the canonical JSON of `value`. On a throw, `length` is where it was before. */
  write(value: unknown): void {
    const start = this.length;
    try {
      this.value(value, 0);
    } catch (err) {
      this.length = start;
      throw err;
    }
  }

  /** Room for `n` more bytes. */
  reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.length + n, this.buf.length * 2));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  /** ASCII text as is (structure, numbers, hex). */
  ascii(text: string): void {
    const n = text.length;
    this.reserve(n);
    const b = this.buf;
    let p = this.length;
    for (let i = 0; i < n; i++) b[p++] = text.charCodeAt(i);
    this.length = p;
  }

  bytes(src: Uint8Array): void {
    const n = src.length;
    this.reserve(n);
    const b = this.buf;
    let p = this.length;
    if (n > 32) { b.set(src, p); this.length = p + n; return; }
    for (let i = 0; i < n; i++) b[p++] = src[i];
    this.length = p;
  }

  private byte(c: number): void {
    this.reserve(1);
    this.buf[this.length++] = c;
  }

  /** A string's JSON form: as is between quotes when nothing needs escaping, else JSON.stringify's. */
  private string(s: string): void {
    if (NEEDS_ESCAPE.test(s)) { this.utf8(JSON.stringify(s)); return; }
    const n = s.length;
    this.reserve(n * 3 + 2);
    const b = this.buf;
    let p = this.length;
    b[p++] = 0x22;
    if (n <= 64) {
      // Short strings (IDs, names, kinds) are mostly ASCII: a loop beats a native call; else UTF-8.
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        b[p++] = c;
      }
      if (i < n) p = this.length + 1 + b.write(s, this.length + 1, 'utf8');
    } else {
      p += b.write(s, p, 'utf8');
    }
    b[p++] = 0x22;
    this.length = p;
  }

  private utf8(text: string): void {
    this.reserve(text.length * 3);
    this.length += this.buf.write(text, this.length, 'utf8');
  }

  private number(v: number): void {
    if (!Number.isFinite(v)) throw new NotJsonError(`${v} is not allowed in JSON`);
    // Safe integers below 1e15 are their digits (String() gives the same); -0 is "0" as in String().
    if (Number.isInteger(v) && v < 1e15 && v > -1e15) {
      if (v === 0) { this.byte(0x30); return; }
      this.reserve(17);
      const b = this.buf;
      let p = this.length;
      let x = v;
      if (x < 0) { b[p++] = 0x2d; x = -x; }
      let digits = 1;
      for (let t = x; t >= 10; t = Math.floor(t / 10)) digits++;
      for (let i = digits - 1; i >= 0; i--) { b[p + i] = 0x30 + (x % 10); x = Math.floor(x / 10); }
      this.length = p + digits;
      return;
    }
    this.ascii(String(v));
  }

  private value(value: unknown, depth: number): void {
    switch (typeof value) {
      case 'string':
        this.string(value);
        return;
      case 'number':
        this.number(value);
        return;
      case 'boolean':
        this.ascii(value ? 'true' : 'false');
        return;
      case 'object':
        break;
      default:
        throw new NotJsonError(`a ${typeof value} has no JSON form`);
    }
    if (value === null) {
      this.ascii('null');
      return;
    }
    if (depth > 1000) throw new NotJsonError('nested too deeply (cyclic?)');
    const obj = value as Record<string, unknown> & { toJSON?: unknown };
    if (obj.toJSON instanceof Function) {
      this.value((obj.toJSON as () => unknown)(), depth + 1);
      return;
    }
    if (Array.isArray(obj)) {
      this.byte(0x5b);
      for (let i = 0; i < obj.length; i++) {
        if (!(i in obj)) throw new NotJsonError('sparse arrays have no canonical form');
        const x: unknown = obj[i];
        if (i > 0) this.byte(0x2c);
        if (x === undefined || typeof x === 'symbol') this.ascii('null');
        else this.value(x, depth + 1);
      }
      this.byte(0x5d);
      return;
    }
    const { sorted, prefixes } = shapeOf(obj);
    this.byte(0x7b);
    let first = true;
    for (let i = 0; i < sorted.length; i++) {
      const x = obj[sorted[i]];
      if (x === undefined || typeof x === 'symbol') continue;
      if (!first) this.byte(0x2c);
      first = false;
      this.bytes(prefixes[i]);
      this.value(x, depth + 1);
    }
    this.byte(0x7d);
  }
}

const shared = { writer: new CanonicalWriter(), busy: false };
