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

  it('refuses records only the sidecar writes (policy decisions, breakers, ledger reads), but not a hook\'s gap report', () => {
    for (const kind of ['policy.decision', 'breaker.opened', 'breaker.closed', 'ledger.read'] as const) {
      const r = checkEvent(makeEvent({ kind, source: 'warden', actor: 'mallory' }));
      expect(r).toMatchObject({ ok: false, field: 'source' });
      expect(r.ok ? '' : r.message).toMatch(/reserved for records the sidecar writes itself/);
    }
    expect(checkEvent(makeEvent({ kind: 'collector.gap', source: 'warden', reason: '3 events dropped' })).ok).toBe(true);
  });
});
