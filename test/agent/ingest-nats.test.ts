/**
 * Hook events over NATS JetStream into a real `warden start` process, end to end: a worker's
 * configureWarden() publishes continuously while nats-server restarts and while the sidecar is
 * killed with -9 and started again; every event lands in the spool exactly once and the chain
 * verifies, also when the kill lands while a 12k backlog is being drained. A redelivery of events
 * the spool already holds (a crash between append and ack) is skipped, also right after a restart
 * (the index is rebuilt from the spool's tail). Temporal events reach the metrics with
 * system="temporal", the task queue and the activity or workflow type.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import { configureWarden } from '../../hooks/transport/index.js';
import { Spool } from '../../ledger/spool/spool.js';
import { verifyLedger } from '../../ledger/spool/verify.js';
import { startNats, startRedis, tempDir, type NatsServer, type RedisServer, type TempDir } from '../harness/index.js';
import { activityEvent, until } from '../harness/transport.js';
import { startSidecarProcess, sumMetric, type SidecarProcess } from '../harness/sidecar.js';

let nats: NatsServer;
let redis: RedisServer;
let dir: TempDir;
let sidecar: SidecarProcess;
let dataDir: string;

beforeAll(async () => {
  [nats, redis, dir] = await Promise.all([startNats(), startRedis(), tempDir('warden-ingest-nats')]);
  const config = join(dir.path, 'warden.yaml');
  // A short ack wait, so what a killed sidecar took but never acknowledged comes back within the test.
  writeFileSync(config, 'nats:\n  ackWaitMs: 2000\n  batchSize: 200\n');
  sidecar = await startSidecarProcess({
    redisUrl: redis.url, dataDir: dir.path, queues: ['unused'], config,
    env: { WARDEN_NATS_URL: nats.url, WARDEN_CLICKHOUSE: 'off' },
  });
  dataDir = join(dir.path, 'data');
});
afterAll(async () => {
  await sidecar?.proc.stop();
  await Promise.all([nats?.dispose(), redis?.dispose()]);
  await dir?.cleanup();
});

async function spoolEvents(): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const rec of Spool.read(dataDir)) out.push(rec.event);
  return out;
}

const ingested = async (source = 'temporal') => (await spoolEvents()).filter((e) => e.source === source);

describe('hook events over NATS JetStream into the sidecar', () => {
  it('lands each event in the spool exactly once across a NATS restart and a sidecar kill -9 + restart', async () => {
    const warden = configureWarden({ nats: { url: nats.url, timeoutMs: 1000 }, outbox: { maxEvents: 100_000, minBackoffMs: 50, maxBackoffMs: 500 } });
    const emitted: WardenEvent[] = [];
    let producing = true;
    let i = 0;
    // The worker: 40 events every 25 ms (about 1600/s) until told to stop.
    const producer = (async () => {
      while (producing) {
        for (let k = 0; k < 40; k++) {
          const ev = i % 10 === 0
            ? makeEvent({ kind: 'workflow.completed', source: 'temporal', queue: 'tq-agents', job_name: 'agentWorkflow', workflow_id: `wf-${i}`, duration_ms: 50, attrs: {} })
            : activityEvent(i);
          i++;
          emitted.push(ev);
          warden.emit(ev);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    })();

    await until(async () => (await ingested()).length > 1000, 15_000, 'the first events in the spool');
    await nats.restart(); // SIGTERM, then the same port and store
    await until(async () => (await ingested()).length > emitted.length * 0.5 && emitted.length > 5000, 20_000, 'progress after the NATS restart');
    await sidecar.proc.kill9(); // mid-batch, most likely: appended but not acked, or taken but not appended
    await new Promise((r) => setTimeout(r, 500));
    await sidecar.proc.start(); // same port, same data dir
    await until(async () => (await ingested()).length > emitted.length * 0.7, 20_000, 'progress after the sidecar restart');
    producing = false;
    await producer;
    expect(await warden.flush(20_000)).toBe(true);
    expect(warden.stats()).toMatchObject({ dropped: 0, buffered: 0 });

    await until(async () => (await ingested()).length >= emitted.length, 20_000, 'every emitted event in the spool');
    await new Promise((r) => setTimeout(r, 2500)); // past the ack wait: a late redelivery would show now
    const got = await ingested();
    const ids = got.map((e) => e.event_id);
    expect(new Set(ids).size).toBe(ids.length); // none twice
    expect(new Set(ids)).toEqual(new Set(emitted.map((e) => e.event_id))); // none lost
    const byId = new Map(got.map((e) => [e.event_id, e]));
    // Stored as sent, plus the credential it came through (set by the sidecar: the stream, see README).
    expect(byId.get(emitted[123].event_id)).toEqual({ ...emitted[123], attrs: { ...emitted[123].attrs, received_via: 'nats:WARDEN_EVENTS' } });
    expect(await verifyLedger(dataDir)).toMatchObject({ ok: true });

    const m = await sidecar.metrics();
    expect(sumMetric(m, 'warden_ingest_events_total', { transport: 'nats', result: 'accepted' })).toBeGreaterThan(0);
    // Temporal events through the same pipeline: task queue as queue, activity type / workflow type as name.
    expect(sumMetric(m, 'warden_jobs_total', { system: 'temporal', queue: 'tq-agents', name: 'callModel', outcome: 'completed' })).toBeGreaterThan(0);
    expect(sumMetric(m, 'warden_jobs_total', { system: 'temporal', queue: 'tq-agents', name: 'agentWorkflow', outcome: 'completed' })).toBeGreaterThan(0);
    console.log(`nats e2e: ${emitted.length} events emitted, ${got.length} in the spool, duplicates skipped by the sidecar: ${sumMetric(m, 'warden_ingest_events_total', { transport: 'nats', result: 'duplicate' })} (since its restart)`);
    await warden.close();
  }, 90_000);

  it('kill -9 while the sidecar drains a backlog: every event once (whatever is redelivered is skipped)', async () => {
    const before = await ingested();
    await sidecar.proc.stop();
    const warden = configureWarden({ nats: { url: nats.url }, outbox: { maxEvents: 50_000 } });
    const backlog = Array.from({ length: 12_000 }, (_, k) => activityEvent(500_000 + k));
    for (const ev of backlog) warden.emit(ev);
    expect(await warden.flush(30_000)).toBe(true); // all in JetStream, none consumed yet
    await warden.close();
    await sidecar.proc.start();
    await until(async () => (await ingested()).length > before.length + 3000, 20_000, 'part of the backlog appended');
    await sidecar.proc.kill9(); // appends run back to back now: most likely one is written (page cache) but not yet acked
    await sidecar.proc.start();
    await until(async () => (await ingested()).length >= before.length + backlog.length, 30_000, 'the whole backlog');
    await new Promise((r) => setTimeout(r, 2500)); // past the ack wait
    const got = (await ingested()).slice(before.length).map((e) => e.event_id);
    expect(got.length).toBe(backlog.length);
    expect(new Set(got)).toEqual(new Set(backlog.map((e) => e.event_id)));
    expect(await verifyLedger(dataDir)).toMatchObject({ ok: true });
    const dup = sumMetric(await sidecar.metrics(), 'warden_ingest_events_total', { transport: 'nats', result: 'duplicate' });
    console.log(`backlog kill -9: ${backlog.length} events once each; redelivered and skipped after the restart: ${dup}`);
  }, 60_000);

  it('skips a redelivery of events already in the spool, also after a restart (index rebuilt from the tail)', async () => {
    const before = await ingested();
    const again = before.slice(-150);
    await sidecar.proc.stop();
    await sidecar.proc.start();
    // New message IDs, so JetStream does not dedupe: this is what a redelivery after a crash looks like to the sidecar.
    const nc = await connect({ servers: nats.url });
    const js = jetstream(nc);
    const fresh = Array.from({ length: 20 }, (_, k) => activityEvent(900_000 + k));
    for (const ev of [...again, ...fresh]) await js.publish('warden.events.temporal', JSON.stringify(ev), { msgID: `redelivery-${ev.event_id}` });
    await nc.close();
    await until(async () => sumMetric(await sidecar.metrics(), 'warden_ingest_events_total', { transport: 'nats' }) >= 170, 15_000, 'the republished events handled');
    const m = await sidecar.metrics();
    expect(sumMetric(m, 'warden_ingest_events_total', { transport: 'nats', result: 'duplicate' })).toBe(150);
    expect(sumMetric(m, 'warden_ingest_events_total', { transport: 'nats', result: 'accepted' })).toBe(20);
    const after = await ingested();
    expect(after.length).toBe(before.length + 20);
    expect(await verifyLedger(dataDir)).toMatchObject({ ok: true });
  }, 40_000);

  it('terminates a malformed message (counted as invalid, field logged) and keeps consuming', async () => {
    const nc = await connect({ servers: nats.url });
    const js = jetstream(nc);
    const before = (await ingested()).length;
    await js.publish('warden.events.temporal', JSON.stringify({ ...activityEvent(1), event_id: 'not-a-ulid' }));
    const good = activityEvent(2);
    await js.publish('warden.events.temporal', JSON.stringify(good), { msgID: good.event_id });
    await nc.close();
    await until(async () => (await ingested()).some((e) => e.event_id === good.event_id), 10_000, 'the good event after the bad one');
    expect((await ingested()).length).toBe(before + 1);
    expect(sumMetric(await sidecar.metrics(), 'warden_ingest_events_total', { transport: 'nats', result: 'invalid' })).toBe(1);
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(join(dir.path, 'warden.log'), 'utf8')).toMatch(/"field":"event_id".*terminated a malformed event message|terminated a malformed event message.*event_id/);
  });
});
