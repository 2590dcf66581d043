/**
 * The worker side against a real nats-server: events published through configureWarden land in
 * WARDEN_EVENTS with message ID = event_id; while NATS is down emit() stays fast and never throws,
 * the bounded outbox drops (counted) instead of growing, and once NATS is back the buffered events
 * and a collector.gap report of the drops arrive.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hookEmitter, UnconfiguredEmitter } from '../../../hooks/emitter.js';
import { configureWarden, WardenTransportConfigError } from '../../../hooks/transport/index.js';
import { startNats, type NatsServer } from '../../harness/index.js';
import { activityEvent, streamMessages, until } from '../../harness/transport.js';

let nats: NatsServer;
beforeAll(async () => { nats = await startNats(); });
afterAll(async () => { await nats?.dispose(); });

describe('configureWarden over NATS JetStream', () => {
  it('publishes each event once to warden.events.<source> with msgID = event_id, and uninstalls on close', async () => {
    const warden = configureWarden({ nats: { url: nats.url } });
    expect(warden.transport).toBe('nats');
    expect(hookEmitter()).toBe(warden);
    const sent = Array.from({ length: 300 }, (_, i) => activityEvent(i));
    for (const ev of sent) hookEmitter().emit(ev);
    expect(await warden.flush(10_000)).toBe(true);
    expect(warden.stats()).toMatchObject({ sent: 300, dropped: 0, buffered: 0 });
    const got = await streamMessages(nats.url);
    expect(got.map((g) => g.ev.event_id)).toEqual(sent.map((e) => e.event_id));
    for (const g of got) {
      expect(g.msgId).toBe(g.ev.event_id);
      expect(g.subject).toBe('warden.events.temporal');
    }
    expect(got[7].ev).toEqual(sent[7]);
    await warden.close();
    expect(hookEmitter()).toBeInstanceOf(UnconfiguredEmitter);
  });

  it('while NATS is down: 10k emits return at once, never throw, overflow is counted; after recovery the buffer and a gap report arrive', async () => {
    const before = (await streamMessages(nats.url)).length;
    const logs: string[] = [];
    const warden = configureWarden({ nats: { url: nats.url, timeoutMs: 1000 }, outbox: { maxEvents: 10_000, minBackoffMs: 50, maxBackoffMs: 300, logger: (_l, m) => logs.push(m) } });
    await nats.stop();
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => warden.emit(activityEvent(-1, { input: cyclic }))).not.toThrow();
    expect(() => warden.emit(null as never)).not.toThrow();
    expect(() => warden.emit({ kind: 'job.added' } as never)).not.toThrow();
    const events = Array.from({ length: 12_000 }, (_, i) => activityEvent(i));
    let t0 = performance.now();
    for (const ev of events.slice(0, 10_000)) warden.emit(ev); // each one serialized and queued
    const emitMs = performance.now() - t0;
    t0 = performance.now();
    for (const ev of events.slice(10_000)) warden.emit(ev); // the outbox is full: dropped, counted
    const dropMs = performance.now() - t0;
    // Serializing is the only work: far below a second, however long NATS stays down.
    expect(emitMs).toBeLessThan(500);
    expect(dropMs).toBeLessThan(100);
    console.log(`while NATS is down: 10k emits queued in ${emitMs.toFixed(1)} ms, 2k dropped in ${dropMs.toFixed(1)} ms`);
    const s = warden.stats();
    expect(s.buffered).toBe(10_000);
    expect(s.droppedBy.overflow).toBe(2000);
    expect(s.droppedBy.unserializable).toBe(1);
    expect(s.droppedBy.invalid).toBe(2);
    await until(() => warden.stats().failing !== null, 10_000, 'the outbox to notice the outage');
    expect(logs.some((m) => /unavailable/.test(m))).toBe(true);
    expect(await warden.flush(300)).toBe(false); // nothing can go while NATS is down

    const downFrom = Date.now();
    await nats.start();
    expect(await warden.flush(20_000)).toBe(true);
    const after = warden.stats();
    expect(after).toMatchObject({ buffered: 0, dropped: 2003, gapReports: 1, failing: null });
    expect(logs.some((m) => /back/.test(m))).toBe(true);

    const got = (await streamMessages(nats.url)).slice(before).map((g) => g.ev);
    const gaps = got.filter((e) => e.kind === 'collector.gap');
    expect(gaps).toHaveLength(1);
    const gap = gaps[0];
    expect(gap.source).toBe('temporal');
    expect(gap.reason).toMatch(/^2003 events dropped: nats unavailable from \d{4}-\d\d-\d\dT\S+Z to \d{4}-\d\d-\d\dT\S+Z$/);
    expect(gap.attrs).toMatchObject({ transport: 'nats', dropped: 2003, dropped_overflow: 2000, dropped_unserializable: 1, dropped_invalid: 2, dropped_sources: 'temporal' });
    expect(Number(gap.attrs.down_to_ts)).toBeGreaterThanOrEqual(downFrom);
    const delivered = got.filter((e) => e.kind !== 'collector.gap').map((e) => e.event_id);
    expect(delivered).toEqual(events.slice(0, 10_000).map((e) => e.event_id)); // the first 10k kept, in order, once each
    await warden.close();
  }, 50_000);

  it('names what is missing or malformed in the options', () => {
    expect(() => configureWarden({ env: {} })).toThrow(WardenTransportConfigError);
    expect(() => configureWarden({ env: {} })).toThrow(/WARDEN_NATS_URL.*WARDEN_INGEST_URL/);
    expect(() => configureWarden({ env: { WARDEN_NATS_URL: 'http://x:4222' } })).toThrow(/nats:\/\/ or tls:\/\//);
    expect(() => configureWarden({ env: { WARDEN_NATS_URL: 'nats://a:4222, ftp://b:4222' } })).toThrow(/"ftp:\/\/b:4222"/);
    expect(() => configureWarden({ env: { WARDEN_INGEST_URL: 'http://127.0.0.1:9464' } })).toThrow(/WARDEN_INGEST_TOKEN/);
    expect(hookEmitter()).toBeInstanceOf(UnconfiguredEmitter);
  });
});
