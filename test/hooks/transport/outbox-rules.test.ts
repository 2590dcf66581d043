/**
 * The outbox's rules, driven through a scripted Transport (Warden's own interface; the real NATS and
 * HTTP transports are tested against real servers elsewhere): a refused event is dropped alone, a
 * refused gap report is not reported again, a batch refused as too large is split down to one event,
 * a refusal ends an outage, and close() gives up within its timeout while the transport is down.
 */
import { describe, expect, it } from 'vitest';
import { Outbox, TransportRejectedError, type OutboxItem, type Transport } from '../../../hooks/transport/index.js';
import type { WardenEvent } from '../../../core/event.js';
import { activityEvent } from '../../harness/transport.js';

class ScriptedTransport implements Transport {
  readonly name = 'scripted';
  readonly delivered: WardenEvent[] = [];
  readonly batches: number[] = [];
  /** Decides each send: return nothing to accept, or throw. */
  constructor(public decide: (items: OutboxItem[]) => void = () => {}) {}
  async send(items: OutboxItem[]): Promise<void> {
    this.batches.push(items.length);
    this.decide(items);
    this.delivered.push(...items.map((i) => JSON.parse(i.json) as WardenEvent));
  }
  async close(): Promise<void> {}
}

describe('outbox rules', () => {
  it('drops only the event a 400 names, and reports it once the rest is through', async () => {
    const bad = activityEvent(2);
    const t = new ScriptedTransport((items) => {
      const i = items.findIndex((it) => it.id === bad.event_id);
      if (i >= 0) throw new TransportRejectedError('trace_id: bad', i);
    });
    const o = new Outbox(t, { lingerMs: 0 });
    const evs = [activityEvent(1), bad, activityEvent(3)];
    for (const e of evs) o.emit(e);
    expect(await o.flush(2000)).toBe(true);
    const kinds = t.delivered.map((e) => e.kind);
    expect(t.delivered.filter((e) => e.kind !== 'collector.gap').map((e) => e.event_id)).toEqual([evs[0].event_id, evs[2].event_id]);
    expect(kinds.filter((k) => k === 'collector.gap')).toHaveLength(1);
    const gap = t.delivered.find((e) => e.kind === 'collector.gap')!;
    expect(gap.reason).toMatch(/^1 events dropped: scripted refused them/);
    expect(gap.error).toBe('trace_id: bad');
    expect(o.stats()).toMatchObject({ dropped: 1, gapReports: 1, buffered: 0 });
  });

  it('a refused gap report is dropped without a report of its own (no loop)', async () => {
    const t = new ScriptedTransport((items) => {
      if (items.some((it) => it.json.includes('"collector.gap"'))) throw new TransportRejectedError('no gaps here', 0);
    });
    const o = new Outbox(t, { lingerMs: 0 });
    o.emit(null as never); // dropped as invalid: a gap report becomes due
    o.emit(activityEvent(1));
    expect(await o.flush(2000)).toBe(true);
    expect(t.delivered.map((e) => e.kind)).toEqual(['activity.completed']);
    expect(o.stats()).toMatchObject({ dropped: 1, gapReports: 0, buffered: 0 });
  });

  it('splits batches refused as too large, down to one event, and drops a single event that is still too large', async () => {
    const big = activityEvent(99, { reason: 'x'.repeat(5000) });
    const t = new ScriptedTransport((items) => {
      if (items.reduce((n, it) => n + it.bytes, 0) > 4000) throw new TransportRejectedError('HTTP 413', undefined, true);
    });
    const o = new Outbox(t, { lingerMs: 0, batchEvents: 64 });
    const evs = Array.from({ length: 40 }, (_, i) => activityEvent(i));
    for (const e of evs) o.emit(e);
    o.emit(big);
    expect(await o.flush(5000)).toBe(true);
    expect(t.delivered.filter((e) => e.kind !== 'collector.gap').map((e) => e.event_id)).toEqual(evs.map((e) => e.event_id));
    expect(o.stats().batchEvents).toBeLessThan(10);
    expect(o.stats().droppedBy.rejected).toBe(1);
    expect(t.delivered.find((e) => e.kind === 'collector.gap')?.attrs.dropped_rejected).toBe(1);
  });

  it('a refusal after an outage ends the outage, so the report of the drops goes out', async () => {
    let phase: 'down' | 'refuse' | 'up' = 'down';
    const t = new ScriptedTransport(() => {
      if (phase === 'down') throw new Error('ECONNREFUSED');
      if (phase === 'refuse') { phase = 'up'; throw new TransportRejectedError('HTTP 401 unknown token'); }
    });
    const o = new Outbox(t, { lingerMs: 0, minBackoffMs: 10, maxBackoffMs: 20, maxEvents: 2 });
    for (let i = 0; i < 5; i++) o.emit(activityEvent(i)); // 2 queued, 3 dropped (overflow)
    await new Promise((r) => setTimeout(r, 50));
    expect(o.stats().failing?.error).toBe('ECONNREFUSED');
    phase = 'refuse';
    expect(await o.flush(2000)).toBe(true);
    const gap = t.delivered.find((e) => e.kind === 'collector.gap')!;
    expect(gap.attrs).toMatchObject({ dropped: 5, dropped_overflow: 3, dropped_rejected: 2 });
    expect(gap.reason).toMatch(/^5 events dropped: scripted unavailable from /);
    expect(o.stats().failing).toBeNull();
  });

  it('close() gives up within its timeout while the transport is down, and later emits are counted, not queued', async () => {
    const t = new ScriptedTransport(() => { throw new Error('down'); });
    const o = new Outbox(t, { lingerMs: 0, minBackoffMs: 10, maxBackoffMs: 50 });
    o.emit(activityEvent(1));
    const t0 = Date.now();
    expect(await o.close(300)).toBe(false);
    expect(Date.now() - t0).toBeLessThan(1500);
    o.emit(activityEvent(2));
    expect(o.stats()).toMatchObject({ buffered: 1, droppedBy: { closed: 1 } });
  });
});
