/** What hooks and ingest clients may send: the one event schema, and never the sidecar's own records. */
import { describe, expect, it } from 'vitest';
import { makeEvent } from '../../core/event.js';
import { checkEvent } from '../../core/event-validation.js';

describe('checkEvent', () => {
  it('accepts hook events and names the wrong field of a bad one', () => {
    expect(checkEvent(makeEvent({ kind: 'activity.completed', source: 'temporal' })).ok).toBe(true);
    const bad = checkEvent({ ...makeEvent({ kind: 'job.started', source: 'bullmq' }), attempt: -1 });
    expect(bad).toMatchObject({ ok: false, field: 'attempt' });
  });

  it('refuses records only the sidecar writes (policy decisions, breakers, ledger reads and verifies), whatever their source, naming the kind', () => {
    for (const kind of ['policy.decision', 'breaker.opened', 'breaker.half_opened', 'breaker.closed', 'ledger.read', 'ledger.verified'] as const) {
      for (const source of ['warden', 'bullmq', 'temporal'] as const) {
        const r = checkEvent(makeEvent({ kind, source, actor: 'mallory' }));
        expect(r).toMatchObject({ ok: false, field: 'kind' });
        expect(r.ok ? '' : r.message).toContain(`"${kind}" is written only by the sidecar itself`);
      }
    }
  });

  it('refuses source "warden" for every kind, the sidecar collector\'s gap reports included', () => {
    const r = checkEvent(makeEvent({ kind: 'collector.gap', source: 'warden', reason: '3 events dropped' }));
    expect(r).toMatchObject({ ok: false, field: 'source' });
    expect(checkEvent(makeEvent({ kind: 'collector.gap', source: 'temporal', reason: '3 events dropped' })).ok).toBe(true);
  });

  it('refuses a ts no Date can hold and event IDs beyond the ULID range, naming the field', () => {
    const ev = makeEvent({ kind: 'activity.completed', source: 'temporal' });
    expect(checkEvent({ ...ev, ts: 8_640_000_000_000_000 }).ok).toBe(true);
    expect(checkEvent({ ...ev, ts: 8_640_000_000_000_001 })).toMatchObject({ ok: false, field: 'ts' });
    expect(checkEvent({ ...ev, event_id: '7ZZZZZZZZZZZZZZZZZZZZZZZZZ' }).ok).toBe(true);
    expect(checkEvent({ ...ev, event_id: '8ZZZZZZZZZZZZZZZZZZZZZZZZZ' })).toMatchObject({ ok: false, field: 'event_id' });
  });

  it('bounds attrs (keys, key and value length, total size) and string fields, naming the field', () => {
    const ev = (init: object) => ({ ...makeEvent({ kind: 'activity.completed', source: 'temporal' }), ...init });
    expect(checkEvent(ev({ attrs: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, i])) }))).toMatchObject({ ok: false, field: 'attrs' });
    expect(checkEvent(ev({ attrs: { ['k'.repeat(129)]: 1 } }))).toMatchObject({ ok: false, field: 'attrs' });
    expect(checkEvent(ev({ attrs: { note: 'x'.repeat(4097) } }))).toMatchObject({ ok: false, field: 'attrs.note' });
    expect(checkEvent(ev({ attrs: Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, 'x'.repeat(4000)])) }))).toMatchObject({ ok: false, field: 'attrs' });
    expect(checkEvent(ev({ job_name: 'n'.repeat(1025) }))).toMatchObject({ ok: false, field: 'job_name' });
    expect(checkEvent(ev({ error: 'e'.repeat(16_384) })).ok).toBe(true);
    expect(checkEvent(ev({ error: 'e'.repeat(16_385) }))).toMatchObject({ ok: false, field: 'error' });
  });
});
