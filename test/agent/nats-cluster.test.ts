/**
 * The hook transport through a three-node NATS JetStream cluster (replicas 3), one node killed with
 * SIGKILL mid-run: a worker's configureWarden() publishes with every node's URL, a real `warden start`
 * (nats.url listing all three, nats.replicas 3) consumes; every event lands in the spool exactly once.
 * The breaker KV bucket, created with replicas 3, keeps its value and takes new ones with a node down.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import { BREAKER_BUCKET, type BreakerStatus } from '../../core/breakers.js';
import { EVENT_STREAM } from '../../core/event-stream.js';
import { configureWarden } from '../../hooks/transport/index.js';
import { Spool } from '../../ledger/spool/spool.js';
import { verifyLedger } from '../../ledger/spool/verify.js';
import { KvBreakerPublisher } from '../../policies/act/kv.js';
import { startNatsCluster, startRedis, tempDir, waitFor, type NatsCluster, type RedisServer, type TempDir } from '../harness/index.js';
import { activityEvent, until } from '../harness/transport.js';
import { startSidecarProcess, type SidecarProcess } from '../harness/sidecar.js';

let cluster: NatsCluster;
let redis: RedisServer;
let dir: TempDir;
let sidecar: SidecarProcess;

beforeAll(async () => {
  [cluster, redis, dir] = await Promise.all([startNatsCluster(), startRedis(), tempDir('warden-nats-cluster')]);
  const config = join(dir.path, 'warden.yaml');
  writeFileSync(config, `nats:\n  replicas: 3\n  ackWaitMs: 2000\n  batchSize: 200\n`);
  sidecar = await startSidecarProcess({
    redisUrl: redis.url, dataDir: dir.path, queues: ['unused'], config,
    env: { WARDEN_NATS_URL: cluster.urls.join(','), WARDEN_CLICKHOUSE: 'off' },
  });
}, 120_000);
afterAll(async () => {
  await sidecar?.proc.stop();
  await Promise.all([cluster?.dispose(), redis?.dispose()]);
  await dir?.cleanup();
});

async function spoolEvents(): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const rec of Spool.read(join(dir.path, 'data'))) out.push(rec.event);
  return out;
}
const ingested = async () => (await spoolEvents()).filter((e) => e.source === 'temporal');

describe('hook transport on a three-node NATS JetStream cluster', () => {
  it('loses nothing and counts nothing twice when the stream leader\'s node is killed mid-run', async () => {
    const warden = configureWarden({ nats: { url: cluster.urls, replicas: 3, timeoutMs: 2000 }, outbox: { maxEvents: 100_000, minBackoffMs: 50, maxBackoffMs: 500 } });
    const emitted: WardenEvent[] = [];
    let producing = true;
    let i = 0;
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
    const nc = await connect({ servers: cluster.urls });
    try {
      await until(async () => (await ingested()).length > 1000, 30_000, 'the first events in the spool');
      const info = await (await jetstreamManager(nc)).streams.info(EVENT_STREAM);
      expect(info.config.num_replicas).toBe(3);
      expect((info.cluster?.replicas ?? []).length).toBe(2); // the leader plus two replicas
      // Kill the node that leads the stream: the hardest one to lose.
      const leader = cluster.nodes.find((n) => n.name === info.cluster?.leader)!;
      expect(leader).toBeDefined();
      const atKill = emitted.length;
      await leader.kill9();
      await until(async () => emitted.length > atKill + 2000 && (await ingested()).length > atKill + 1000, 60_000, 'progress with one node down');
      producing = false;
      await producer;
      expect(await warden.flush(60_000)).toBe(true);
      const want = new Set(emitted.map((e) => e.event_id));
      await until(async () => new Set((await ingested()).map((e) => e.event_id)).size === want.size, 90_000, 'every event in the spool');
      await new Promise((r) => setTimeout(r, 3000)); // redeliveries after the ack wait would show up now
      const got = await ingested();
      const counts = new Map<string, number>();
      for (const e of got) counts.set(e.event_id, (counts.get(e.event_id) ?? 0) + 1);
      expect([...want].filter((id) => !counts.has(id))).toEqual([]); // nothing lost
      expect([...counts].filter(([, n]) => n > 1)).toEqual([]); // nothing counted twice
      expect(got.length).toBe(want.size);
      const after = await (await jetstreamManager(nc)).streams.info(EVENT_STREAM);
      expect(after.cluster?.leader).not.toBe(leader.name); // a new leader took over
      console.log(`${want.size} events through the cluster; leader ${leader.name} killed after ${atKill}; new leader ${after.cluster?.leader}`);
    } finally {
      producing = false;
      await producer;
      await warden.close(5000);
      await nc.close();
    }
    expect((await verifyLedger(join(dir.path, 'data'))).ok).toBe(true);
  }, 240_000);

  it('the breaker KV bucket has replicas 3 and keeps working with a node down', async () => {
    const down = cluster.nodes.find((n) => n.pid === undefined);
    if (down) await down.start(); // the previous test killed one: bring it back first
    const publisher = new KvBreakerPublisher({ url: cluster.urls, replicas: 3 });
    const status = (phase: BreakerStatus['phase']): BreakerStatus => ({
      key: 'temporal.activity.callModel', phase, policy: 'p', policy_version: '1', retry_after_ms: 1000, non_retryable: false, probe_ratio: 0, reason: 'test', since: Date.now(), forced_by: null,
    });
    const nc = await connect({ servers: cluster.urls });
    try {
      publisher.publish(status('open'));
      await until(() => publisher.published >= 1, 30_000, 'first put');
      const kvInfo = await (await jetstreamManager(nc)).streams.info(`KV_${BREAKER_BUCKET}`);
      expect(kvInfo.config.num_replicas).toBe(3);
      await cluster.nodes[0].kill9();
      publisher.publish(status('closed'));
      await until(() => publisher.published >= 2, 30_000, 'put with a node down');
      const kv = await new Kvm(nc).open(BREAKER_BUCKET);
      // While the cluster re-elects after the kill a read may time out: retried, not failed.
      await waitFor(async () => (await kv.get('temporal.activity.callModel'))?.json<{ phase: string }>().phase === 'closed', { timeoutMs: 30_000, intervalMs: 200, what: 'read back with a node down', retryErrors: true });
    } finally {
      await publisher.stop();
      await nc.close();
    }
  }, 120_000);
});
