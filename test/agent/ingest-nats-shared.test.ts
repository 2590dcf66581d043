/**
 * Scale-out: two `warden start` processes share the durable consumer `warden-sidecar` on one
 * nats-server. The stream is split between them: each event lands in exactly one of the two spools,
 * both do part of the work, and each chain verifies.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../core/event.js';
import { configureWarden } from '../../hooks/transport/index.js';
import { Spool } from '../../ledger/spool/spool.js';
import { verifyLedger } from '../../ledger/spool/verify.js';
import { startNats, startRedis, tempDir, type NatsServer, type RedisServer, type TempDir } from '../harness/index.js';
import { activityEvent, until } from '../harness/transport.js';
import { startSidecarProcess, type SidecarProcess } from '../harness/sidecar.js';

let nats: NatsServer;
let redis: RedisServer;
let dir: TempDir;
let sidecars: SidecarProcess[] = [];

beforeAll(async () => {
  [nats, redis, dir] = await Promise.all([startNats(), startRedis(), tempDir('warden-ingest-shared')]);
  const env = { WARDEN_NATS_URL: nats.url, WARDEN_CLICKHOUSE: 'off' };
  sidecars = await Promise.all(['a', 'b'].map((n) => startSidecarProcess({ redisUrl: redis.url, dataDir: join(dir.path, n), queues: ['unused'], env })));
});
afterAll(async () => {
  await Promise.all(sidecars.map((s) => s.proc.stop()));
  await Promise.all([nats?.dispose(), redis?.dispose()]);
  await dir?.cleanup();
});

async function hookEvents(name: string): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const rec of Spool.read(join(dir.path, name, 'data'))) if (rec.event.source === 'temporal') out.push(rec.event);
  return out;
}

describe('two sidecars sharing the durable consumer', () => {
  it('split the stream: every event in exactly one spool, both take part', async () => {
    const warden = configureWarden({ nats: { url: nats.url } });
    const evs: WardenEvent[] = [];
    // Several bursts, so both sidecars have pulls outstanding while messages arrive.
    for (let burst = 0; burst < 10; burst++) {
      for (let k = 0; k < 300; k++) { const e = activityEvent(burst * 1000 + k); evs.push(e); warden.emit(e); }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await warden.flush(20_000)).toBe(true);
    await warden.close();
    await until(async () => (await hookEvents('a')).length + (await hookEvents('b')).length >= evs.length, 20_000, 'every event in one of the spools');
    await new Promise((r) => setTimeout(r, 500));
    const [a, b] = await Promise.all([hookEvents('a'), hookEvents('b')]);
    const ids = [...a, ...b].map((e) => e.event_id);
    expect(ids.length).toBe(evs.length);
    expect(new Set(ids)).toEqual(new Set(evs.map((e) => e.event_id)));
    expect(a.length).toBeGreaterThan(0);
    expect(b.length).toBeGreaterThan(0);
    console.log(`shared durable: sidecar a appended ${a.length}, sidecar b ${b.length} of ${evs.length}`);
    for (const n of ['a', 'b']) expect(await verifyLedger(join(dir.path, n, 'data'))).toMatchObject({ ok: true });
  }, 45_000);
});
