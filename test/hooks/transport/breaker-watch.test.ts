/**
 * watchBreakers against a real nats-server: BreakerStatus values PUT into the KV bucket (as the
 * sidecar's policies write them) show up in the local view; a closed phase, a delete and a purge clear
 * them; the view keeps following after a NATS restart, including a change made while it was down.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { BREAKER_BUCKET, breakerKey, type BreakerStatus } from '../../../core/breakers.js';
import { watchBreakers } from '../../../hooks/transport/index.js';
import { startNats, type NatsServer } from '../../harness/index.js';
import { until } from '../../harness/transport.js';

let nats: NatsServer;
beforeAll(async () => { nats = await startNats(); });
afterAll(async () => { await nats?.dispose(); });

function status(key: string, phase: BreakerStatus['phase'], extra: Partial<BreakerStatus> = {}): BreakerStatus {
  return { key, phase, policy: 'retry-storm', policy_version: '3', retry_after_ms: 30_000, non_retryable: false, probe_ratio: 0.1, reason: 'retry ratio 0.45 > budget 0.2', since: Date.now(), forced_by: null, ...extra };
}

async function writer(): Promise<{ nc: NatsConnection; kv: KV }> {
  const nc = await connect({ servers: nats.url, reconnect: true, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  return { nc, kv: await new Kvm(nc).create(BREAKER_BUCKET, { history: 1 }) };
}

/** The writer's own reconnect may lag the server's restart by a moment: retry its requests briefly. */
async function retry<T>(fn: () => Promise<T>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try { return await fn(); } catch (err) { if (Date.now() > end) throw err; await new Promise((r) => setTimeout(r, 100)); }
  }
}

describe('watchBreakers', () => {
  it('follows PUTs, closed phases, deletes and purges; waits for a bucket that does not exist yet', async () => {
    const errors: string[] = [];
    const view = watchBreakers({ url: nats.url, retryMs: 100, onError: (e) => errors.push(e.message) });
    expect(await view.ready(500)).toBe(false); // no bucket yet: retried, not thrown
    const { nc, kv } = await writer();
    expect(await view.ready(10_000)).toBe(true);

    const act = breakerKey({ system: 'temporal', kind: 'activity', name: 'callModel' });
    const tq = breakerKey({ system: 'temporal', kind: 'task_queue', name: 'agents' });
    await kv.put(act, JSON.stringify(status(act, 'open', { non_retryable: true })));
    await until(() => view.status([act]) !== undefined, 5000, 'the open breaker');
    expect(view.status([tq, act])).toMatchObject({ key: act, phase: 'open', non_retryable: true, policy: 'retry-storm' });

    await kv.put(tq, JSON.stringify(status(tq, 'half_open')));
    await until(() => view.status([tq]) !== undefined, 5000, 'the half-open breaker');
    expect(view.status([tq, act])?.phase).toBe('open'); // the most restrictive wins

    await kv.put(act, JSON.stringify(status(act, 'closed')));
    await until(() => view.status([act]) === undefined, 5000, 'closed clears');
    expect(view.status([tq, act])?.phase).toBe('half_open');
    await kv.delete(tq);
    await until(() => view.status([tq]) === undefined, 5000, 'delete clears');

    await kv.put(act, JSON.stringify(status(act, 'open')));
    await until(() => view.status([act]) !== undefined, 5000, 'open again');
    await kv.purge(act);
    await until(() => view.status([act]) === undefined, 5000, 'purge clears');

    await kv.put(act, 'not json at all');
    await until(() => errors.some((m) => /JSON|BreakerStatus/i.test(m)), 5000, 'a malformed value reported');
    expect(view.status([act])).toBeUndefined();
    await view.close();
    await nc.close();
  });

  it('keeps following after a NATS restart and after a stop, a pause and a start', async () => {
    const { nc, kv } = await writer();
    const a = breakerKey({ system: 'bullmq', kind: 'queue', name: 'model-call' });
    const b = breakerKey({ system: 'any', kind: 'model', name: 'gpt-4o' });
    await kv.put(a, JSON.stringify(status(a, 'open')));
    const view = watchBreakers({ url: nats.url, retryMs: 100 });
    expect(await view.ready(10_000)).toBe(true);
    expect(view.status([a])?.phase).toBe('open');
    const watchesBefore = view.counts.watches;

    await nats.restart();
    await until(() => view.counts.watches > watchesBefore, 15_000, 'the re-watch after the restart');
    expect(view.status([a])?.phase).toBe('open'); // state survives the restart (file storage)
    await retry(() => kv.put(b, JSON.stringify(status(b, 'open', { reason: 'drift' }))));
    await retry(() => kv.delete(a));
    await until(() => view.status([b]) !== undefined && view.status([a]) === undefined, 15_000, 'changes after the restart');
    expect(view.status([a, b])?.reason).toBe('drift');

    // A stop and a later start (down for a while): the watcher reconnects on its own again.
    await nats.stop();
    await new Promise((r) => setTimeout(r, 1000));
    await nats.start();
    await retry(() => kv.put(a, JSON.stringify(status(a, 'half_open'))));
    await until(() => view.status([a])?.phase === 'half_open', 15_000, 'the change after the second restart');
    await view.close();
    await nc.close();
  }, 45_000);

  it('works over a connection the host already has, and leaves it open on close', async () => {
    const { nc, kv } = await writer();
    const key = breakerKey({ system: 'temporal', kind: 'task_queue', name: 'shared-conn' });
    const view = watchBreakers({ connection: nc });
    expect(await view.ready(10_000)).toBe(true);
    await kv.put(key, JSON.stringify(status(key, 'open')));
    await until(() => view.status([key])?.phase === 'open', 5000, 'the status over the shared connection');
    await view.close();
    expect(nc.isClosed()).toBe(false);
    await kv.delete(key);
    await nc.close();
  });

  it('drops keys that vanished while it was cut off (a server that came back with an empty store)', async () => {
    let { nc, kv } = await writer();
    const gone = breakerKey({ system: 'temporal', kind: 'activity', name: 'vanishes' });
    const stays = breakerKey({ system: 'temporal', kind: 'activity', name: 'rewritten' });
    await kv.put(gone, JSON.stringify(status(gone, 'open')));
    const view = watchBreakers({ url: nats.url, retryMs: 100 });
    expect(await view.ready(10_000)).toBe(true);
    await until(() => view.status([gone]) !== undefined, 5000, 'the first state');
    await nc.close();
    await nats.stop();
    expect(existsSync(join(nats.dir, 'jetstream'))).toBe(true);
    rmSync(join(nats.dir, 'jetstream'), { recursive: true, force: true }); // the store is lost
    await nats.start();
    ({ nc, kv } = await retry(() => writer()));
    await retry(() => kv.put(stays, JSON.stringify(status(stays, 'half_open'))));
    await until(() => view.status([stays]) !== undefined, 15_000, 'the new bucket\'s state');
    expect(view.status([gone])).toBeUndefined(); // the fresh initial load replaced the old map
    await view.close();
    await nc.close();
  }, 30_000);
});
