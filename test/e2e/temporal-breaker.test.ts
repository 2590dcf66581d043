/**
 * Temporal breakers end to end: activity attempts failing in a worker (the real interceptor under
 * MockActivityEnvironment, events through the real NATS transport) become a retry storm in the real
 * sidecar's policy engine; the breaker it opens is published to the NATS KV bucket; the worker's
 * watchBreakers view picks it up, and the next attempt fails fast with the breaker's retry delay
 * without running the activity. An admin's forced close reaches the worker the same way.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../core/event.js';
import { BREAKER_FAILURE_TYPE, configureWarden, wardenActivityInterceptors, watchBreakers, type WardenHandle } from '../../hooks/temporal/index.js';
import { withStamp } from '../../hooks/temporal/headers.js';
import type { BreakerWatch } from '../../hooks/transport/index.js';
import { Spool } from '../../ledger/spool/spool.js';
import { startNats, startRedis, tempDir, type NatsServer, type RedisServer, type TempDir } from '../harness/index.js';
import { until } from '../harness/bullmq.js';
import { startSidecarProcess, type SidecarProcess } from '../harness/sidecar.js';
import { headerInjector } from '../harness/temporal/helpers.js';

const ADMIN = 'admin-token-0123456789abcdef0123';
const RESET_MS = 60_000;
const POLICY_FILE = `apiVersion: warden/v1
policies:
  - name: embed-storm
    version: 3
    scope: { system: temporal, activityType: embed }
    retryStorm: { windowMs: 3000, budgetRatio: 0.2, budgetPerSecond: 1, minRetries: 3 }
    breaker: { resetTimeoutMs: ${RESET_MS} }
`;

let redis: RedisServer;
let nats: NatsServer;
let dir: TempDir;
let sidecar: SidecarProcess;
let warden: WardenHandle;
let breakers: BreakerWatch;

beforeAll(async () => {
  [redis, nats, dir] = await Promise.all([startRedis(), startNats(), tempDir('warden-temporal-breaker')]);
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
});

afterAll(async () => {
  await breakers?.close();
  await warden?.close(2000);
  await sidecar?.proc.stop();
  await nats?.dispose();
  await redis?.dispose();
  await dir?.cleanup();
});

const headers = withStamp({}, { cid: 'wc_EMBED_STORM', model: 'embedder', model_version: '4' });

/** One attempt of `embed` in workflow `wf-<n>`, as a Temporal worker would run it. */
function attempt(n: number, attemptNo: number): MockActivityEnvironment {
  return new MockActivityEnvironment(
    {
      activityType: 'embed', activityId: `a-${n}`, taskQueue: 'embeddings', workflowType: 'IndexDocs', attempt: attemptNo,
      workflowExecution: { workflowId: `wf-${n}`, runId: `run-${n}` }, retryPolicy: { maximumAttempts: 10 },
    } as never,
    { interceptors: [headerInjector(headers), wardenActivityInterceptors({ breakers })], logger: new DefaultLogger('ERROR') },
  );
}

async function ledger(): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const rec of Spool.read(join(dir.path, 'side', 'data'))) out.push(rec.event);
  return out;
}

describe('Temporal activity breaker through the sidecar and NATS KV', () => {
  it('a retry storm of activity attempts opens the breaker; the interceptor then fails fast with its retry delay; a forced close lets work through', async () => {
    const upstreamDown = async () => { throw new Error('embedding service 503'); };
    // 8 activities, each failing its first three attempts: 8 first attempts, 16 retries, far over budget.
    for (let a = 1; a <= 3; a++) {
      for (let n = 1; n <= 8; n++) {
        await expect(attempt(n, a).run(upstreamDown)).rejects.toThrow('embedding service 503');
      }
    }
    await warden.flush(5000);

    const key = 'temporal.activity.embed';
    await until(async () => breakers.status([key])?.phase === 'open', 15_000, 'breaker state in the KV view');
    const status = breakers.status([key])!;
    expect(status).toMatchObject({ policy: 'embed-storm', policy_version: '3', non_retryable: false, forced_by: null });
    expect(status.retry_after_ms).toBeGreaterThan(0);
    expect(status.retry_after_ms).toBeLessThanOrEqual(RESET_MS);

    // The next attempt does not reach the activity.
    let ran = false;
    const err = await attempt(9, 1).run(async () => { ran = true; }).catch((e: unknown) => e);
    expect(ran).toBe(false);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect((err as ApplicationFailure).type).toBe(BREAKER_FAILURE_TYPE);
    expect((err as ApplicationFailure).nonRetryable).toBe(false);
    const delay = Number((err as ApplicationFailure).nextRetryDelay);
    expect(delay).toBeGreaterThan(0);
    expect(delay).toBeLessThanOrEqual(RESET_MS);

    // The ledger holds the storm's evidence and the worker's fail-fast record, all from one process each.
    await warden.flush(5000);
    await until(async () => (await ledger()).some((e) => e.source === 'temporal' && e.workflow_id === 'wf-9'), 10_000, 'fail-fast record in the ledger');
    const events = await ledger();
    const opened = events.find((e) => e.kind === 'breaker.opened' && e.policy === 'embed-storm');
    expect(opened).toBeDefined();
    expect(Object.keys(opened!.attrs).some((k) => k.startsWith('evidence.'))).toBe(true);
    const failFast = events.find((e) => e.source === 'temporal' && e.workflow_id === 'wf-9')!;
    expect(failFast.kind).toBe('activity.attempt_failed');
    expect(failFast.error).toMatch(/^Warden breaker temporal\.activity\.embed is open: retry storm/);
    expect(failFast.attrs).toMatchObject({ fail_fast: true, breaker_key: key, breaker_policy: 'embed-storm', breaker_policy_version: '3', next_retry_delay_ms: delay });

    // An admin closes it by force: the worker's view follows, and work runs again.
    const res = await fetch(`${sidecar.url}/v1/breakers/${key}/close?actor=alice`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(res.status).toBe(200);
    await until(async () => breakers.status([key]) === undefined, 10_000, 'forced close in the KV view');
    await expect(attempt(10, 1).run(async () => 'embedded')).resolves.toBe('embedded');
  });
});
