/**
 * The sidecar's NATS consumer against a real nats-server, with an in-memory sink standing in for the
 * spool: malformed messages are terminated and reported with the wrong field while good ones keep
 * flowing; a failing sink leaves messages unacknowledged and they come back; two consumers sharing the
 * durable split the stream, each message going to one of them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { WardenEvent } from '../../../core/event.js';
import { NatsEventConsumer } from '../../../collectors/nats/consumer.js';
import { ensureEventStream } from '../../../hooks/transport/index.js';
import { startNats, type NatsServer } from '../../harness/index.js';
import { activityEvent, until } from '../../harness/transport.js';

let nats: NatsServer;
let nc: NatsConnection;
beforeAll(async () => {
  nats = await startNats();
  nc = await connect({ servers: nats.url });
});
afterAll(async () => {
  await nc?.close();
  await nats?.dispose();
});

async function publish(stream: string, subject: string, body: string, msgID?: string): Promise<void> {
  await jetstream(nc).publish(subject, body, msgID ? { msgID } : undefined);
  void stream;
}

describe('NatsEventConsumer', () => {
  it('terminates malformed messages (counted, field named) and keeps delivering good ones', async () => {
    const stream = 'EV_BAD';
    await ensureEventStream(nc, { stream, subjectPrefix: 'bad.events' });
    const got: WardenEvent[] = [];
    const invalid: { field: string; message: string }[] = [];
    const c = new NatsEventConsumer({ url: nats.url, stream, subjectPrefix: 'bad.events', durable: 'd1', ackWaitMs: 2000, sink: async (evs) => { got.push(...evs); }, onInvalid: (i) => invalid.push(i) });
    c.start();
    const good1 = activityEvent(1);
    await publish(stream, 'bad.events.temporal', JSON.stringify(good1), good1.event_id);
    await publish(stream, 'bad.events.temporal', '{not json', 'x1');
    await publish(stream, 'bad.events.temporal', JSON.stringify({ ...activityEvent(2), trace_id: 'XYZ' }), 'x2');
    await publish(stream, 'bad.events.temporal', JSON.stringify({ ...activityEvent(3), kind: 'activity.exploded' }), 'x3');
    const good2 = Array.from({ length: 50 }, (_, i) => activityEvent(10 + i));
    for (const e of good2) await publish(stream, 'bad.events.temporal', JSON.stringify(e), e.event_id);
    await until(() => got.length === 51, 10_000, 'the good events');
    expect(got.map((e) => e.event_id)).toEqual([good1, ...good2].map((e) => e.event_id));
    expect(invalid.map((i) => i.field)).toEqual(['(body)', 'trace_id', 'kind']);
    expect(c.counts.invalid).toBe(3);
    // Terminated, so nothing is pending or waiting for redelivery: the stream is not blocked.
    await new Promise((r) => setTimeout(r, 2500));
    const info = await (await jetstreamManager(nc)).consumers.info(stream, 'd1');
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
    expect(got).toHaveLength(51);
    await c.stop();
  });

  it('a failing sink acks nothing; the batch is redelivered and then appended', async () => {
    const stream = 'EV_NAK';
    await ensureEventStream(nc, { stream, subjectPrefix: 'nak.events' });
    let fail = 2;
    const got: string[] = [];
    const c = new NatsEventConsumer({
      url: nats.url, stream, subjectPrefix: 'nak.events', durable: 'd1', ackWaitMs: 2000,
      sink: async (evs) => { if (fail-- > 0) throw new Error('disk full'); got.push(...evs.map((e) => e.event_id)); },
    });
    c.start();
    const evs = Array.from({ length: 20 }, (_, i) => activityEvent(i));
    for (const e of evs) await publish(stream, 'nak.events.temporal', JSON.stringify(e), e.event_id);
    await until(() => new Set(got).size === 20, 15_000, 'every event after the failures');
    expect(c.counts.sinkErrors).toBe(2);
    expect(new Set(got)).toEqual(new Set(evs.map((e) => e.event_id)));
    await c.stop();
  });

  it('two consumers on one durable split the messages: each delivered to exactly one', async () => {
    const stream = 'EV_SHARED';
    await ensureEventStream(nc, { stream, subjectPrefix: 'shared.events' });
    const a: string[] = [];
    const b: string[] = [];
    const errs: string[] = [];
    const slow = (into: string[]) => async (evs: WardenEvent[]) => { await new Promise((r) => setTimeout(r, 5)); into.push(...evs.map((e) => e.event_id)); };
    const ca = new NatsEventConsumer({ url: nats.url, stream, subjectPrefix: 'shared.events', durable: 'shared', batchSize: 10, sink: slow(a), onError: (w, e) => errs.push(`a ${w} ${e.message}`) });
    const cb = new NatsEventConsumer({ url: nats.url, stream, subjectPrefix: 'shared.events', durable: 'shared', batchSize: 10, sink: slow(b), onError: (w, e) => errs.push(`b ${w} ${e.message}`) });
    ca.start();
    cb.start();
    await until(async () => (await (await jetstreamManager(nc)).consumers.info(stream, 'shared').catch(() => null)) !== null, 5000, 'the durable');
    await new Promise((r) => setTimeout(r, 300));
    const evs = Array.from({ length: 400 }, (_, i) => activityEvent(i));
    await Promise.all(evs.map((e) => publish(stream, 'shared.events.temporal', JSON.stringify(e), e.event_id)));
    await until(() => a.length + b.length >= 400, 15_000, 'all messages').catch((e) => { throw new Error(`${e.message}: a=${a.length} b=${b.length} errors=${errs.join(';')}`); });
    await new Promise((r) => setTimeout(r, 300));
    expect(a.length + b.length).toBe(400);
    expect(new Set([...a, ...b]).size).toBe(400);
    expect(a.length).toBeGreaterThan(0);
    expect(b.length).toBeGreaterThan(0);
    await Promise.all([ca.stop(), cb.stop()]);
  });
});

describe('NatsEventConsumer and a lost stream', () => {
  it('creates the stream and its durable again after they were deleted, and the worker transport republishes into it', async () => {
    const { configureWarden } = await import('../../../hooks/transport/index.js');
    const got: string[] = [];
    const errs: string[] = [];
    const c = new NatsEventConsumer({ url: nats.url, durable: 'lost', sink: async (evs) => { got.push(...evs.map((e) => e.event_id)); }, onError: (w, e) => errs.push(`${w}: ${e.message}`) });
    c.start();
    const warden = configureWarden({ nats: { url: nats.url, timeoutMs: 1000 }, outbox: { minBackoffMs: 50, maxBackoffMs: 300 } });
    const first = Array.from({ length: 10 }, (_, i) => activityEvent(i));
    for (const e of first) warden.emit(e);
    await until(() => got.length === 10, 10_000, 'the first events').catch((e) => { throw new Error(`${e.message} ${JSON.stringify({ errs, stats: warden.stats(), counts: c.counts })}`); });
    await (await jetstreamManager(nc)).streams.delete('WARDEN_EVENTS');
    const second = Array.from({ length: 10 }, (_, i) => activityEvent(100 + i));
    for (const e of second) warden.emit(e);
    expect(await warden.flush(15_000)).toBe(true);
    await until(() => got.length === 20, 20_000, 'the events after the stream was deleted');
    expect(got).toEqual([...first, ...second].map((e) => e.event_id));
    expect(errs.some((e) => /not found|deleted/.test(e))).toBe(true); // it noticed, and recreated them
    await warden.close();
    await c.stop();
  }, 40_000);
});
