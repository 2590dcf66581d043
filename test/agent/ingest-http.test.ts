/**
 * POST /v1/events on a real `warden start` process (no NATS): roles, validation naming the index and
 * field (nothing appended from a batch with a bad event), idempotent resends, and the worker's HTTP
 * transport end to end, through a sidecar kill -9 and restart, with a refused event dropped alone and
 * reported, and batches split when the sidecar answers 413.
 */
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../core/event.js';
import { configureWarden } from '../../hooks/transport/index.js';
import { Spool } from '../../ledger/spool/spool.js';
import { verifyLedger } from '../../ledger/spool/verify.js';
import { startRedis, tempDir, type RedisServer, type TempDir } from '../harness/index.js';
import { activityEvent, until } from '../harness/transport.js';
import { startSidecarProcess, sumMetric, type SidecarProcess } from '../harness/sidecar.js';

const COMPLIANCE = 'c0mpliance-token-0123456789abcdef';
const INGEST = 'ingest-token-0123456789abcdef0123';
const ADMIN = 'admin-token-0123456789abcdef01234';

let redis: RedisServer;
let dir: TempDir;
let sidecar: SidecarProcess;
let dataDir: string;

beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedis(), tempDir('warden-ingest-http')]);
  const config = join(dir.path, 'warden.yaml');
  // A body limit far below the transport's default batch (512 KiB): the worker must split on 413.
  writeFileSync(config, 'api:\n  maxBodyBytes: 32768\n');
  sidecar = await startSidecarProcess({
    redisUrl: redis.url, dataDir: dir.path, queues: ['unused'], config,
    env: { WARDEN_CLICKHOUSE: 'off', WARDEN_API_TOKENS: `auditor:compliance:${COMPLIANCE},pipeline:ingest:${INGEST},ops:admin:${ADMIN}` },
  });
  dataDir = join(dir.path, 'data');
});
afterAll(async () => {
  await sidecar?.proc.stop();
  await redis?.dispose();
  await dir?.cleanup();
});

function post(body: string, token?: string, method = 'POST'): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL('/v1/events', sidecar.url), { method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') }));
    });
    req.on('error', reject);
    req.end(method === 'GET' ? undefined : body);
  });
}

async function spoolEvents(): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const rec of Spool.read(dataDir)) out.push(rec.event);
  return out;
}
const hookEvents = async () => (await spoolEvents()).filter((e) => e.source !== 'warden' || e.kind === 'collector.gap');

describe('POST /v1/events', () => {
  it('refuses without a token (401), with an unknown one (401), with a read-only role (403), and other methods (405)', async () => {
    const body = JSON.stringify({ events: [activityEvent(1)] });
    expect((await post(body)).status).toBe(401);
    expect((await post(body, 'not-a-real-token-at-all-xxxxxxxx')).status).toBe(401);
    const denied = await post(body, COMPLIANCE);
    expect(denied.status).toBe(403);
    expect(denied.json.error).toMatch(/role "compliance" may not POST \/v1\/events \(needs ingest or admin\)/);
    expect((await post(body, INGEST, 'GET')).status).toBe(405);
    expect(await hookEvents()).toHaveLength(0);
  });

  it('answers 400 naming the index and field of a bad event, and appends nothing from that batch', async () => {
    const events = [activityEvent(1), activityEvent(2), { ...activityEvent(3), attempt: -1 }, { ...activityEvent(4), kind: 'nope' }];
    const r = await post(JSON.stringify({ events }), INGEST);
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ index: 2, field: 'attempt', invalid: 2 });
    expect(r.json.error).toMatch(/^events\[2\]\.attempt: .*2 of 4 events invalid; nothing was appended/);
    expect((await post('{"events": 3}', INGEST)).json.error).toMatch(/\{"events":\[\.\.\.\]\}/);
    expect((await post('{oops', INGEST)).json.error).toMatch(/not JSON/);
    expect(await hookEvents()).toHaveLength(0);
    expect(sumMetric(await sidecar.metrics(), 'warden_ingest_events_total', { transport: 'http', result: 'invalid' })).toBe(2);
  });

  it('is idempotent: a resent batch is answered as duplicates and appended once', async () => {
    const events = Array.from({ length: 25 }, (_, i) => activityEvent(100 + i));
    const body = JSON.stringify({ events: [...events, events[0]] }); // a repeat inside one batch too
    expect(await post(body, INGEST)).toMatchObject({ status: 200, json: { accepted: 25, duplicates: 1 } });
    expect(await post(body, ADMIN)).toMatchObject({ status: 200, json: { accepted: 0, duplicates: 26 } });
    const got = await hookEvents();
    expect(got.map((e) => e.event_id)).toEqual(events.map((e) => e.event_id));
    // Stored as sent, plus the credential it came through (set by the sidecar).
    expect(got[3]).toEqual({ ...events[3], attrs: { ...events[3].attrs, received_via: 'http:pipeline' } });
    const m = await sidecar.metrics();
    expect(sumMetric(m, 'warden_ingest_events_total', { transport: 'http', result: 'accepted' })).toBe(25);
    expect(sumMetric(m, 'warden_ingest_events_total', { transport: 'http', result: 'duplicate' })).toBe(27);
  });

  it('the worker HTTP transport: every event once through a sidecar kill -9; a refused event is dropped alone and reported', async () => {
    const before = (await hookEvents()).length;
    const warden = configureWarden({ env: { WARDEN_INGEST_URL: sidecar.url, WARDEN_INGEST_TOKEN: INGEST }, outbox: { minBackoffMs: 50, maxBackoffMs: 400, batchEvents: 100 } });
    expect(warden.transport).toBe('http');
    const emitted: WardenEvent[] = [];
    const emit = (n: number) => { for (let k = 0; k < n; k++) { const ev = activityEvent(emitted.length + 1000); emitted.push(ev); warden.emit(ev); } };
    emit(500);
    const bad = { ...activityEvent(5), trace_id: 'not-hex' } as WardenEvent;
    warden.emit(bad);
    emit(500);
    await until(async () => (await hookEvents()).length > before + 200, 10_000, 'first events');
    await sidecar.proc.kill9();
    emit(1000); // while the sidecar is down: buffered, retried
    await until(() => warden.stats().failing !== null, 10_000, 'the outbox to notice');
    await sidecar.proc.start(); // same port
    emit(500);
    expect(await warden.flush(20_000)).toBe(true);
    const s = warden.stats();
    expect(s).toMatchObject({ buffered: 0, dropped: 1, gapReports: 1 });
    expect(s.droppedBy.rejected).toBe(1);
    expect(s.batchEvents).toBeLessThan(100); // split after 413s (32 KiB body limit), nothing dropped for it

    const got = (await hookEvents()).slice(before);
    const events = got.filter((e) => e.kind !== 'collector.gap');
    expect(events.map((e) => e.event_id).sort()).toEqual(emitted.map((e) => e.event_id).sort()); // all once, the bad one not
    const gap = got.find((e) => e.kind === 'collector.gap')!;
    expect(gap.source).toBe('temporal');
    expect(gap.reason).toMatch(/^1 events dropped: /);
    expect(gap.attrs).toMatchObject({ transport: 'http', dropped: 1, dropped_rejected: 1 });
    expect(gap.error).toMatch(/trace_id/);
    expect(await verifyLedger(dataDir)).toMatchObject({ ok: true });
    await warden.close();
  }, 50_000);
});

describe('the HTTP transport and the sidecar\'s rate limit', () => {
  it('waits out 429 Retry-After and delivers everything, nothing dropped', async () => {
    const config = join(dir.path, 'limited.yaml');
    writeFileSync(config, 'api:\n  ratePerMinute: 60\n');
    const limited = await startSidecarProcess({
      redisUrl: redis.url, dataDir: join(dir.path, 'limited'), queues: ['unused'], config,
      env: { WARDEN_CLICKHOUSE: 'off', WARDEN_API_TOKENS: `pipeline:ingest:${INGEST}` },
    });
    try {
      const logs: string[] = [];
      // One event per request: 64 requests against a bucket of 60 that refills one a second.
      const warden = configureWarden({ ingest: { url: limited.url, token: INGEST }, outbox: { batchEvents: 1, lingerMs: 0, minBackoffMs: 20, logger: (_l, m, f) => logs.push(`${m} ${JSON.stringify(f ?? {})}`) } });
      const evs = Array.from({ length: 64 }, (_, i) => activityEvent(7000 + i));
      for (const e of evs) warden.emit(e);
      expect(await warden.flush(20_000)).toBe(true);
      expect(warden.stats()).toMatchObject({ sent: 64, dropped: 0, buffered: 0 });
      expect(logs.some((l) => /HTTP 429/.test(l))).toBe(true);
      const got: string[] = [];
      for await (const rec of Spool.read(join(dir.path, 'limited', 'data'))) if (rec.event.source === 'temporal') got.push(rec.event.event_id);
      expect(got).toEqual(evs.map((e) => e.event_id));
      await warden.close();
    } finally {
      await limited.proc.stop();
    }
  }, 40_000);
});
