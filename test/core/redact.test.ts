import { describe, expect, it } from 'vitest';
import { Redactor } from '../../core/redact.js';

const r = new Redactor({ paths: ['user.ssn', 'messages.*.content', '$.deep.*.secretish'], maxDepth: 8 });

describe('Redactor', () => {
  it.each([
    ['an email', 'contact jane.doe+x@corp.example.co.uk now', 'jane.doe'],
    ['a bearer token', 'Authorization: Bearer eyJhbGciOi.abc.def-ghi', 'eyJhbGciOi'],
    ['an OpenAI-style key', 'key sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX', 'ABCDEFGHIJKLMNOP'],
    ['an AWS access key', 'AKIAIOSFODNN7EXAMPLE', 'IOSFODNN7'],
    ['a GitHub token', 'ghp_0123456789abcdefghijklmnopqrstuvwxyzAB', '0123456789abcdef'],
    ['a password assignment', 'login password=hunter2&x=1', 'hunter2'],
    ['a card number (Luhn-valid)', 'card 4111 1111 1111 1111 exp 12/30', '4111 1111'],
  ])('removes %s from free text', (_what, text, secret) => {
    const out = r.redactText(text);
    expect(out).not.toContain(secret);
    expect(out).toMatch(/\[REDACTED:[a-z_]+\]/);
  });

  it('gives the same answers once texts are remembered, past the memory\'s bound, and never remembers a secret as clean', () => {
    const fresh = new Redactor();
    const texts = Array.from({ length: 20_000 }, (_, i) => (i % 5 === 0 ? `user${i}@corp.example` : i % 7 === 0 ? `token=sk-${'a'.repeat(20)}${i}` : `queue-${i}`));
    const first = texts.map((t) => fresh.redactText(t));
    expect(first.filter((t) => t.includes('@corp.example'))).toEqual([]);
    // Asked again (clean ones now come from memory, which was cleared and refilled on the way).
    expect(texts.map((t) => fresh.redactText(t))).toEqual(first);
    expect(texts.map((t) => new Redactor().redactText(t))).toEqual(first);
    expect(fresh.redactText('queue-1')).toBe('queue-1');
    expect(fresh.redactText('user5@corp.example')).toBe('[REDACTED:email]');
  });

  it('leaves ordinary text and non-Luhn digit runs alone', () => {
    expect(r.redactText('order 1234567890123 shipped to Berlin')).toBe('order 1234567890123 shipped to Berlin');
  });

  it('redacts configured paths, wildcards and sensitive key names, without mutating the input', () => {
    const input = {
      user: { name: 'Jane', ssn: '123-45-6789' },
      messages: [{ role: 'user', content: 'my diagnosis is ...' }, { role: 'assistant', content: 'ok' }],
      deep: { a: { secretish: 1 }, b: { secretish: 2, other: 3 } },
      apiKey: 'abc',
      password: 'p',
      note: 'mail me at a@b.io',
    };
    const copy = structuredClone(input);
    const out = r.redactValue(input) as typeof input;
    expect(input).toEqual(copy);
    expect(out.user).toEqual({ name: 'Jane', ssn: '[REDACTED]' });
    expect(out.messages.map((m) => m.content)).toEqual(['[REDACTED]', '[REDACTED]']);
    expect(out.messages[0].role).toBe('user');
    expect(out.deep).toEqual({ a: { secretish: '[REDACTED]' }, b: { secretish: '[REDACTED]', other: 3 } });
    expect(out.apiKey).toBe('[REDACTED]');
    expect(out.password).toBe('[REDACTED]');
    expect(out.note).toBe('mail me at [REDACTED:email]');
  });

  it('cuts structures deeper than maxDepth instead of recursing into them', () => {
    let deep: unknown = 'x@y.zz';
    for (let i = 0; i < 50; i++) deep = { d: deep };
    const text = JSON.stringify(r.redactValue(deep));
    expect(text).toContain('[WARDEN:depth>8]');
    expect(text).not.toContain('x@y.zz');
  });
});
