/**
 * The no-code-change path's metrics: a worker WITHOUT interceptors, the real `warden start` sidecar
 * with only its Temporal history collector. Temporal's own metrics endpoint and Warden's
 * `warden_jobs_total{system="temporal"}` (counted from the records rebuilt from history) agree on
 * workflows completed and failed, and on activities by outcome as history ends them.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, startTemporal, sumMetric, tempDir, until, type RedisServer, type TempDir, type TemporalServer } from '../../harness/index.js';
import { startSidecarProcess, type SidecarProcess } from '../../harness/sidecar.js';
import { bundle, plainWorker, TASK_QUEUE } from './fixtures.js';

const COUNTS = { simpleWorkflow: 6, retryWorkflow: 3, failingWorkflow: 4 };

describe('collector only (no interceptors): Temporal\'s metrics and warden_jobs_total agree', () => {
  let t: TemporalServer;
  let redis: RedisServer;
  let wfBundle: WorkflowBundleWithSourceMap;
  let dir: TempDir;
  let w: Awaited<ReturnType<typeof plainWorker>>;
  let sidecar: SidecarProcess | undefined;

  beforeAll(async () => {
    [t, redis, wfBundle, dir] = await Promise.all([startTemporal(), startRedis(), bundle(), tempDir('tcol-metrics')]);
    w = await plainWorker(t.address, wfBundle);
    const runs: Promise<unknown>[] = [];
    for (const [type, n] of Object.entries(COUNTS)) {
      for (let i = 0; i < n; i++) {
        runs.push(w.client.workflow.execute(type, { taskQueue: TASK_QUEUE, workflowId: `${type}-${i}`, args: [`k${i}`] }).catch(() => 'failed'));
      }
    }
    await Promise.all(runs);
  }, 300_000);
  afterAll(async () => {
    await sidecar?.proc.stop();
    await w?.close();
    await Promise.all([t?.dispose(), redis?.dispose()]);
    await dir?.cleanup();
  });

  it('counts every closed run and activity outcome once, as the server does', async () => {
    const config = join(dir.path, 'warden.yaml');
    await writeFile(config, 'temporal:\n  settleMs: 0\n  pollIntervalMs: 200\n');
    sidecar = await startSidecarProcess({
      redisUrl: redis.url, dataDir: dir.path, config,
      env: { WARDEN_TEMPORAL_ADDRESS: t.address, WARDEN_TEMPORAL_NAMESPACES: t.namespace, WARDEN_CLICKHOUSE: 'off' },
    });
    const total = COUNTS.simpleWorkflow + COUNTS.retryWorkflow + COUNTS.failingWorkflow;
    const jobs = (m: string, name: string, outcome: string) => sumMetric(m, 'warden_jobs_total', { system: 'temporal', name, outcome });
    let m = '';
    await until(async () => {
      m = await sidecar!.metrics();
      return ['simpleWorkflow', 'retryWorkflow', 'failingWorkflow'].reduce((n, name) => n + jobs(m, name, 'completed') + jobs(m, name, 'failed'), 0) >= total;
    }, 60_000, 'every closed run counted');
    // One more scan after that changes nothing.
    await new Promise((r) => setTimeout(r, 1000));
    m = await sidecar.metrics();

    const ns = { namespace: t.namespace };
    const server = sumMetric.bind(null, await (await fetch(t.metricsUrl)).text());
    const success = server('workflow_success', ns);
    const failed = server('workflow_failed', ns);
    expect({ success, failed }).toEqual({ success: COUNTS.simpleWorkflow + COUNTS.retryWorkflow, failed: COUNTS.failingWorkflow });
    expect(jobs(m, 'simpleWorkflow', 'completed') + jobs(m, 'retryWorkflow', 'completed')).toBe(success);
    expect(jobs(m, 'failingWorkflow', 'failed')).toBe(failed);
    expect(jobs(m, 'simpleWorkflow', 'failed') + jobs(m, 'retryWorkflow', 'failed') + jobs(m, 'failingWorkflow', 'completed')).toBe(0);
    // Activities: one final outcome each (history has no per-attempt records).
    expect(jobs(m, 'echo', 'completed')).toBe(COUNTS.simpleWorkflow);
    expect(jobs(m, 'flaky', 'completed')).toBe(COUNTS.retryWorkflow);
    expect(jobs(m, 'doomed', 'failed')).toBe(COUNTS.failingWorkflow);
    expect(sumMetric(m, 'warden_ingest_events_total', { transport: 'history', result: 'accepted' })).toBe(3 * total);
  }, 120_000);
});
