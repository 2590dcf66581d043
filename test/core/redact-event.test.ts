import { describe, expect, it } from 'vitest';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import { newEventId } from '../../core/ids.js';
import { isSensitiveKey, redactEvent, Redactor, redactUrl } from '../../core/redact.js';

const r = new Redactor();

describe('sensitive key names (compound names caught)', () => {
  it.each(['db_password', 'userPassword', 'aws_secret_access_key', 'x-api-key', 'pwd', 'DB_PWD', 'passwd', 'client_secret',
    'refreshToken', 'x-auth-token', 'gcp_credentials', 'ssh_private_key', 'Authorization', 'proxy-authorization', 'Cookie', 'set-cookie', 'apiKey', 'api_key_v2'])(
    '%s is sensitive', (k) => {
      expect(isSensitiveKey(k)).toBe(true);
      expect((r.redactValue({ [k]: 'hunter2' }) as Record<string, unknown>)[k]).toBe('[REDACTED]');
    });
  it.each(['prompt_tokens', 'completion_tokens', 'max_tokens', 'token_count', 'tokenizer', 'queue', 'model', 'output.score', 'name', 'keyboard', 'evidence.via_token', 'token_name', 'password_policy_version_count'.replace('password', 'pass')])(
    '%s is not sensitive', (k) => {
      expect(isSensitiveKey(k)).toBe(false);
    });
  it('assignments with compound names in free text', () => {
    for (const t of ['db_password=hunter2', 'access_token=abcdef123', 'AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI', 'x-api-key=zzz999', 'pwd=hunter2']) {
      const out = r.redactText(t);
      expect(out, t).not.toMatch(/hunter2|abcdef123|wJalrXUtnFEMI|zzz999/);
    }
    expect(r.redactText('prompt_tokens=123')).toBe('prompt_tokens=123');
  });
  it('percent-encoded secrets and URL userinfo', () => {
    expect(r.redactText('Bearer%20abcDEF1234567890xyz')).not.toContain('abcDEF1234567890xyz');
    expect(r.redactText('mail%40example.com jane%40corp.example.com')).not.toContain('jane');
    expect(r.redactText('redis://admin:s3cr3tPass@db.internal:6379/0')).not.toContain('s3cr3tPass');
    expect(r.redactText('http://ch:9000')).toBe('http://ch:9000');
  });
});

describe('redactEvent', () => {
  const secret = 'sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX';
  const ev = (): WardenEvent => makeEvent({
    kind: 'job.started', source: 'bullmq', queue: 'q',
    job_id: 'jane.doe@example.com', job_name: `call ${secret}`, workflow_id: 'wf for bob@example.com', run_id: 'r1',
    model: `gpt ${secret}`, model_version: 'v1', activity_type: `act ${secret}`, correlation_id: 'corr alice@example.com',
    actor: 'ceo@example.com', policy: 'p', policy_version: 'token=abc123456', decision: 'allow', reason: 'password=x', error: 'Bearer abc.def.ghi',
    input: { db_password: 'hunter2', prompt_tokens: 5, note: 'x' },
    attrs: { 'userPassword': 'hunter2', [`k-${secret}`]: 1, note: `see ${secret}`, served_model: 'gpt-4o', 'output.score': 0.5, n: 3, ok: true, nul: null },
  });

  it('redacts every string field and attrs key/value; never mutates its argument', () => {
    const input = ev();
    const copy = structuredClone(input);
    const out = redactEvent(input, r);
    expect(input).toEqual(copy);
    const text = JSON.stringify(out);
    for (const s of ['ABCDEFGHIJ', 'jane.doe', 'bob@', 'alice@', 'ceo@', 'hunter2', 'abc123456', 'abc.def.ghi']) expect(text, s).not.toContain(s);
    expect(out.attrs.userPassword).toBe('[REDACTED]');
    expect(out.attrs.served_model).toBe('gpt-4o');
    expect(out.attrs['output.score']).toBe(0.5);
    expect(out.attrs.n).toBe(3);
    expect(out.attrs.ok).toBe(true);
    expect(out.attrs.nul).toBeNull();
    expect((out.input as Record<string, unknown>).prompt_tokens).toBe(5);
    expect(out.event_id).toBe(input.event_id);
    expect(out.ts).toBe(input.ts);
    expect(out.model_version).toBe('v1');
    expect(out.run_id).toBe('r1');
  });

  it('is deterministic and keeps distinct join keys distinct (lineage still joins)', () => {
    const a = redactEvent(ev(), r);
    const b = redactEvent(ev(), new Redactor());
    expect(a.job_id).toBe(b.job_id);
    expect(a.correlation_id).toBe(b.correlation_id);
    const other = redactEvent({ ...ev(), job_id: 'john.roe@example.com', correlation_id: 'corr carol@example.com' }, r);
    expect(other.job_id).not.toBe(a.job_id);
    expect(other.correlation_id).not.toBe(a.correlation_id);
    // idempotent: an event redacted by a hook and again by the sidecar keeps the same keys
    expect(redactEvent(a, r)).toEqual(a);
  });

  it('plain ULIDs, UUIDs and numbers pass unchanged, even Luhn-valid digit runs in ID fields', () => {
    const ids = { job_id: '4111111111111111', correlation_id: '8c0e4b5e-6a8b-4a57-9d8c-2f4b1a8e9c10', workflow_id: newEventId(), run_id: '1700000000000' };
    const out = redactEvent(makeEvent({ kind: 'job.added', source: 'bullmq', ...ids }), r);
    expect({ job_id: out.job_id, correlation_id: out.correlation_id, workflow_id: out.workflow_id, run_id: out.run_id }).toEqual(ids);
  });
});

describe('redactUrl (the audit record of a request)', () => {
  it('keeps the path and parameter names, never secret-looking values (percent-decoded first)', () => {
    const out = redactUrl('/v1/ledger/events?access_token=tok123SECRET&client_secret=cs999&actor=Bearer%20abcDEF1234567890xyz&queue=emails&limit=5');
    expect(out).toContain('/v1/ledger/events?');
    for (const name of ['access_token=', 'client_secret=', 'actor=', 'queue=emails', 'limit=5']) expect(out).toContain(name);
    for (const s of ['tok123SECRET', 'cs999', 'abcDEF1234567890xyz']) expect(out).not.toContain(s);
  });
  it('a malformed percent-encoding does not throw', () => {
    expect(() => redactUrl('/v1/ledger/lineage/%E0%A4%A?token=%zz')).not.toThrow();
    expect(redactUrl('/x?token=%zzsecret')).not.toContain('secret');
  });
});

describe('redactEvent keeps positions', () => {
  it('a Redis stream entry ID under attrs.stream_id stays as it is, even when its digits pass the card check', () => {
    // 1765043123408-0: 14 digits with a separator, Luhn-valid; as free text it is redacted as a card.
    const r = new Redactor({ paths: [], maxDepth: 32 });
    expect(r.redactText('1765043123408-0')).toBe('[REDACTED:card]');
    const ev = makeEvent({ kind: 'job.started', source: 'bullmq', attrs: { stream_id: '1765043123408-0', note: '1765043123408-0' } });
    const out = redactEvent(ev, r);
    expect(out.attrs.stream_id).toBe('1765043123408-0');
    expect(out.attrs.note).toBe('[REDACTED:card]');
    // Only the stream-ID shape is exempt: anything else under that key is redacted as text.
    expect(redactEvent(makeEvent({ kind: 'job.started', source: 'bullmq', attrs: { stream_id: 'mail bob@example.com' } }), r).attrs.stream_id).not.toContain('bob@example.com');
  });
});

describe('redactEvent does the work once per event and redactor', () => {
  const ev = (): WardenEvent => makeEvent({ kind: 'job.failed', source: 'bullmq', queue: 'q', job_id: 'j1', error: 'login failed for alice@example.com', attrs: { note: 'token=sk-live-abcdefghijklmnop1234' }, input: { password: 'hunter2', text: 'bob@example.com' } });

  it('returns an event it already redacted as is; another redactor, or a copy, is redacted again', () => {
    const a = new Redactor();
    const once = redactEvent(ev(), a);
    expect(once.error).not.toContain('alice@example.com');
    expect(redactEvent(once, a)).toBe(once);
    const b = new Redactor({ paths: ['text'], maxDepth: 8 });
    const other = redactEvent(once, b);
    expect(other).not.toBe(once);
    expect(other).toEqual(redactEvent({ ...once }, b));
    // A copy changed after redaction is not trusted: its new content is redacted.
    const changed = redactEvent({ ...once, error: 'again carol@example.com' }, a);
    expect(changed.error).not.toContain('carol@example.com');
  });
});
