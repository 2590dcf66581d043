import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../../core/event.js';
import { normalizeInput, type TruncatedInput } from '../../core/input.js';
import { Redactor } from '../../core/redact.js';

const redactor = new Redactor();
const limits = { maxInputBytes: 256, maxParseBytes: 64 * 1024 };
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('normalizeInput', () => {
  it('digests the canonical UNredacted input and keeps the redacted one', () => {
    const value = { b: 1, a: { email: 'x@y.io' } };
    const n = normalizeInput(JSON.stringify(value), redactor, limits, { rawIsJsonText: true });
    expect(n.input_digest).toBe(sha(canonicalJson(value)));
    expect(n.input).toEqual({ b: 1, a: { email: '[REDACTED:email]' } });
    // The same value handed in-process (not as text) gives the same digest: hooks and sidecar agree.
    expect(normalizeInput(value, redactor, limits).input_digest).toBe(n.input_digest);
  });

  it('describes non-JSON text instead of failing, redacted', () => {
    const n = normalizeInput('not json, call +1 at bob@corp.io', redactor, limits, { rawIsJsonText: true });
    expect(n.format).toBe('text');
    expect(n.input).toBe('not json, call +1 at [REDACTED:email]');
    expect(n.input_digest).toBe(sha('not json, call +1 at bob@corp.io'));
  });

  it('caps a huge input with a marked, redacted preview', () => {
    const big = { items: Array.from({ length: 2000 }, (_, i) => `user${i}@example.com`) };
    const n = normalizeInput(JSON.stringify(big), redactor, limits, { rawIsJsonText: true });
    const t = n.input as TruncatedInput;
    expect(t.$truncated).toBe(true);
    expect(t.bytes).toBeGreaterThan(limits.maxInputBytes);
    expect(t.preview.length).toBeLessThanOrEqual(limits.maxInputBytes);
    expect(t.preview).not.toContain('@example.com');
    expect(JSON.stringify(n.input).length).toBeLessThan(limits.maxInputBytes * 2);
  });

  it('does not parse text larger than maxParseBytes, and still redacts its preview', () => {
    const raw = `{"k":"${'a@b.io '.repeat(20_000)}"}`;
    const n = normalizeInput(raw, redactor, limits, { rawIsJsonText: true });
    expect(n.format).toBe('text');
    expect(JSON.stringify(n.input)).not.toContain('a@b.io');
    expect(n.input_digest).toBe(sha(raw));
  });

  it('survives nesting deeper than the canonicalizer can recurse', () => {
    const raw = '['.repeat(20_000) + ']'.repeat(20_000);
    const n = normalizeInput(raw, redactor, limits, { rawIsJsonText: true });
    expect(n.input_digest).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(n.input)).toContain('WARDEN:depth>');
  });

  it('reports an unserializable in-process value instead of throwing', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const n = normalizeInput(cyclic, redactor, limits);
    expect(n.format).toBe('unserializable');
    expect(n.input_digest).toBeNull();
  });
});
