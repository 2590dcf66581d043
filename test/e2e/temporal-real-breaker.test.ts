/**
 * A breaker opened by the sidecar acting on a real Temporal activity: `embed` fails in a real worker,
 * its retries (every 100 ms) become a retry storm in the real sidecar's policy engine, the breaker it
 * opens reaches the worker over NATS KV, and the next attempts fail fast without running the activity.
 * The server's own pending-activity state shows the retry scheduled at the breaker's delay. An admin's
 * forced close lets the next attempt run, and the workflows complete.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../core/event.js';
import { BREAKER_FAILURE_TYPE, configureWarden, wardenWorker, watchBreakers, type WardenHandle } from '../../hooks/temporal/index.js';
import type { BreakerWatch } from '../../hooks/transport/index.js';
import { Spool } from '../../ledger/spool/spool.js';
import { startNats, startRedis, startTemporal, tempDir, until, type NatsServer, type RedisServer, type TempDir, type TemporalServer } from '../harness/index.js';
import { startSidecarProcess, type SidecarProcess } from '../harness/sidecar.js';
import { realActivities } from '../harness/temporal/real-activities.js';
import { bundleRealWorkflows } from '../harness/temporal/real-flow.js';

const ADMIN = 'admin-token-0123456789abcdef0123';
const RESET_MS = 10_000;
const TASK_QUEUE = 'embeddings';
const KEY = 'temporal.activity.embed';
const POLICY_FILE = `apiVersion: warden/v1
policies:
  - name: embed-storm
    version: 3
    scope: { system: temporal, activityType: embed }
    retryStorm: { windowMs: 3000, budgetRatio: 0.2, budgetPerSecond: 1, minRetries: 3 }
    breaker: { resetTimeoutMs: ${RESET_MS} }
`;

let temporalServer: TemporalServer;
let nats: NatsServer;
let redis: RedisServer;
let dir: TempDir;
let sidecar: SidecarProcess;
let warden: WardenHandle;
let breakers: BreakerWatch;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  [temporalServer, nats, redis, dir, bundle] = await Promise.all([startTemporal(), startNats(), startRedis(), tempDir('warden-temporal-real-breaker'), bundleRealWorkflows('warden')]);
  const policyFile = join(dir.path, 'policies.yaml');
  writeFileSync(policyFile, POLICY_FILE);
  const config = join(dir.path, 'warden.yaml');
  writeFileSync(config, `
clickhouse: { mode: off }
nats: { url: ${nats.url} }
policies: { file: ${policyFile}, evaluateIntervalMs: 200 }
api:
  tokens:
    - { name: ops-admin, role: admin, token: ${ADMIN} }
`);
  sidecar = await startSidecarProcess({ redisUrl: redis.url, dataDir: join(dir.path, 'side'), config, queues: ['unused'] });
  warden = configureWarden({ nats: { url: nats.url } });
  breakers = watchBreakers({ url: nats.url });
}, 180_000);

afterAll(async () => {
  await breakers?.close();
  await warden?.close(2000);
  await sidecar?.proc.stop();
  await Promise.all([temporalServer?.dispose(), nats?.dispose(), redis?.dispose()]);
  await dir?.cleanup();
});

async function ledger(): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const rec of Spool.read(join(dir.path, 'side', 'data'))) out.push(rec.event);
  return out;
}

type Timestamp = { seconds?: unknown; nanos?: number | null } | null | undefined;
const ms = (d: Timestamp): number => Number(String(d?.seconds ?? 0)) * 1000 + Math.round((d?.nanos ?? 0) / 1e6);
/**
 * Milliseconds from `a` to `b`, rounded once. The server stamps the two a few microseconds apart
 * (measured: delay + 4-6 µs), so rounding each to ms first was off by one when they straddled a .5.
 */
const msBetween = (a: Timestamp, b: Timestamp): number => {
  const ns = (d: Timestamp) => BigInt(String(d?.seconds ?? 0)) * 1_000_000_000n + BigInt(d?.nanos ?? 0);
  return Math.round(Number(ns(b) - ns(a)) / 1e6);
};

describe('a sidecar breaker on a real Temporal activity', () => {
  it('opens on a retry storm, fails attempts fast at its delay (seen in the server\'s pending activity), and a forced close lets the next attempt run', async () => {
    const connection = await Connection.connect({ address: temporalServer.address });
    const client = new Client({ connection, namespace: temporalServer.namespace });
    const control = { embedDown: true, embedCalls: 0, slowMs: 0 };
    const parts = wardenWorker({ breakers });
    const { workflowModules: _inBundle, ...interceptors } = parts.interceptors;
    const native = await NativeConnection.connect({ address: temporalServer.address });
    const worker = await Worker.create({
      connection: native, namespace: temporalServer.namespace, taskQueue: TASK_QUEUE, workflowBundle: bundle,
      activities: realActivities(control), interceptors, sinks: parts.sinks,
    });
    const ids = ['doc-1', 'doc-2', 'doc-3', 'doc-4'];
    await worker.runUntil(async () => {
      const handles = await Promise.all(ids.map((id) => client.workflow.start('embedWorkflow', { taskQueue: TASK_QUEUE, workflowId: `embed-${id}`, args: [id] })));
      await until(async () => breakers.status([KEY])?.phase === 'open', 30_000, 'breaker open in the worker\'s view');
      const status = breakers.status([KEY])!;
      expect(status).toMatchObject({ policy: 'embed-storm', policy_version: '3', non_retryable: false, forced_by: null });

      // The server's view of one workflow's activity, once an attempt failed fast: its retry is
      // scheduled at the breaker's delay, the last failure is Warden's.
      const h = handles[0];
      let pending: any;
      let failFast: WardenEvent | undefined;
      await until(async () => {
        pending = (await h.describe()).raw.pendingActivities?.[0];
        const type = pending?.lastFailure?.applicationFailureInfo?.type;
        if (type !== BREAKER_FAILURE_TYPE) return false;
        failFast = (await ledger()).find((e) => e.workflow_id === h.workflowId && e.attempt === pending.attempt - 1 && e.attrs.fail_fast === true);
        return !!failFast;
      }, 30_000, 'a fail-fast attempt in the server\'s pending activity and in the ledger');
      const delay = failFast!.attrs.next_retry_delay_ms as number;
      expect(delay).toBeGreaterThan(0);
      expect(delay).toBeLessThanOrEqual(RESET_MS);
      expect(pending.activityType.name).toBe('embed');
      expect(ms(pending.currentRetryInterval)).toBe(delay);
      expect(msBetween(pending.lastAttemptCompleteTime, pending.nextAttemptScheduleTime)).toBe(delay);
      expect(pending.lastFailure.message).toMatch(/^Warden breaker temporal\.activity\.embed is open: retry storm/);

      // The upstream recovers; an admin closes the breaker by force; the next attempts run and succeed.
      control.embedDown = false;
      const res = await fetch(`${sidecar.url}/v1/breakers/${KEY}/close?actor=alice`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
      expect(res.status).toBe(200);
      await until(async () => breakers.status([KEY]) === undefined, 10_000, 'forced close in the worker\'s view');
      const results = await Promise.all(handles.map((x) => x.result()));
      expect(results).toEqual(ids.map((id) => [id.length]));
    });
    await native.close();
    await warden.flush(5000);

    // Every attempt that ran the activity started it; the fail-fast ones never reached it.
    let events: WardenEvent[] = [];
    await until(async () => {
      events = (await ledger()).filter((e) => e.source === 'temporal' && e.activity_type === 'embed');
      return events.filter((e) => e.kind === 'activity.completed').length === ids.length;
    }, 15_000, 'the completions in the ledger');
    const started = events.filter((e) => e.kind === 'activity.started');
    const fastFailed = events.filter((e) => e.attrs.fail_fast === true);
    expect(fastFailed.length).toBeGreaterThanOrEqual(1);
    expect(control.embedCalls).toBe(started.length);
    // After the forced close, each workflow's last attempt ran (not failed fast) and completed.
    for (const id of ids) {
      const mine = events.filter((e) => e.workflow_id === `embed-${id}`).sort((a, b) => (a.attempt! - b.attempt!) || (a.ts - b.ts));
      expect(mine.at(-1)).toMatchObject({ kind: 'activity.completed' });
      expect(mine.at(-1)!.attrs.fail_fast).toBeUndefined();
    }
    const all = await ledger();
    expect(all.some((e) => e.kind === 'breaker.opened' && e.policy === 'embed-storm')).toBe(true);
    expect(all.some((e) => e.kind === 'breaker.closed')).toBe(true);
    await connection.close();
  }, 120_000);
});
