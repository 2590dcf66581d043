/**
 * The real sidecar (`warden start` with WARDEN_TEMPORAL_ADDRESS) as the only source of Temporal records
 * (the worker has no interceptors): kill -9 in the middle of its history scan, restart, and the ledger
 * holds every run's start, end and activity outcome exactly once; a scan from scratch adds nothing;
 * metrics count the runs and rebuilt spans reach the OTLP endpoint.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../../core/event.js';
import { traceIdForCorrelation } from '../../../core/ids.js';
import { workflowRunSpanId } from '../../../core/temporal-stamp.js';
import { temporalRecordKey } from '../../../collectors/temporal/ledger-index.js';
import { Spool, type LedgerRecord } from '../../../ledger/index.js';
import { startOtlpReceiver, startRedis, startTemporal, sumMetric, tempDir, until, type OtlpReceiver, type RedisServer, type TempDir, type TemporalServer } from '../../harness/index.js';
import { startSidecarProcess, type SidecarProcess } from '../../harness/sidecar.js';
import { bundle, plainWorker, TASK_QUEUE } from './fixtures.js';

const RUNS = 80;

async function historyRecords(dataDir: string): Promise<LedgerRecord[]> {
  const out: LedgerRecord[] = [];
  try {
    for await (const r of Spool.read(dataDir)) if (r.event.attrs.from_history === true) out.push(r);
  } catch { /* a line being written: read again later */ }
  return out;
}

describe('sidecar with the Temporal collector: kill -9 mid-scan loses and duplicates nothing', () => {
  let t: TemporalServer;
  let redis: RedisServer;
  let otlp: OtlpReceiver;
  let wfBundle: WorkflowBundleWithSourceMap;
  let dir: TempDir;
  let w: Awaited<ReturnType<typeof plainWorker>>;
  let sidecar: SidecarProcess | undefined;
  const prefix = `crash-${Date.now().toString(36)}`;

  beforeAll(async () => {
    [t, redis, otlp, wfBundle, dir] = await Promise.all([startTemporal(), startRedis(), startOtlpReceiver(), bundle(), tempDir('tcol-crash')]);
    w = await plainWorker(t.address, wfBundle);
    for (let i = 0; i < RUNS; i += 10) {
      await Promise.all(Array.from({ length: 10 }, (_, j) => w.client.workflow.execute('simpleWorkflow', { taskQueue: TASK_QUEUE, workflowId: `${prefix}-${i + j}`, args: [`v${i + j}`] })));
    }
    await until(async () => Number((await w.conn.workflowService.countWorkflowExecutions({ namespace: 'default', query: "ExecutionStatus != 'Running'" })).count) >= RUNS, 60_000, 'every run closed in visibility');
  }, 300_000);
  afterAll(async () => {
    await sidecar?.proc.stop();
    await w?.close();
    await Promise.all([t?.dispose(), redis?.dispose(), otlp?.close()]);
    await dir?.cleanup();
  });

  it('restarts after kill -9 mid-scan with every record once, and a scan from scratch adds nothing', async () => {
    const config = join(dir.path, 'warden.yaml');
    await writeFile(config, 'temporal:\n  pageSize: 2\n  settleMs: 0\n  pollIntervalMs: 200\nledger:\n  checkpointIntervalMs: 100\n');
    const dataDir = join(dir.path, 'data');
    sidecar = await startSidecarProcess({
      redisUrl: redis.url, dataDir: dir.path, config, otlp: otlp.url,
      env: { WARDEN_TEMPORAL_ADDRESS: t.address, WARDEN_TEMPORAL_NAMESPACES: 'default', WARDEN_CLICKHOUSE: 'off' },
    });

    // Kill as soon as the scan has appended something (it reads 2 runs per batch: far from done).
    let atKill = 0;
    await until(async () => (atKill = (await historyRecords(dataDir)).length) > 0, 60_000, 'the first rebuilt records');
    await sidecar.proc.kill9();
    atKill = (await historyRecords(dataDir)).length;
    expect(atKill).toBeGreaterThan(0);
    expect(atKill).toBeLessThan(RUNS * 3); // mid-scan

    await sidecar.proc.start();
    await until(async () => (await historyRecords(dataDir)).length >= RUNS * 3, 60_000, `${RUNS * 3} rebuilt records`);
    const metrics = await sidecar.metrics();
    // Runs after the crash were counted and traced by the restarted process.
    expect(sumMetric(metrics, 'warden_ingest_events_total', { transport: 'history', result: 'accepted' })).toBeGreaterThan(0);
    expect(sumMetric(metrics, 'warden_jobs_total', { queue: TASK_QUEUE, outcome: 'completed' })).toBeGreaterThan(0);
    await sidecar.proc.stop();

    // A scan from scratch (checkpoint gone): everything is offered again and dropped.
    await rm(join(dataDir, 'temporal-positions.json'));
    await sidecar.proc.start();
    await until(async () => sumMetric(await sidecar!.metrics(), 'warden_ingest_events_total', { transport: 'history', result: 'duplicate' }) >= RUNS * 3, 60_000, 'a full rescan dropped as duplicates');
    await sidecar.proc.stop();

    const recs = (await historyRecords(dataDir)).map((r) => r.event);
    expect(recs).toHaveLength(RUNS * 3);
    const keys = recs.map((e) => temporalRecordKey(e));
    expect(new Set(keys).size).toBe(keys.length);
    expect(new Set(recs.map((e) => e.event_id)).size).toBe(recs.length);
    const byRun = new Map<string, WardenEvent[]>();
    for (const e of recs) byRun.set(e.workflow_id!, [...(byRun.get(e.workflow_id!) ?? []), e]);
    expect(byRun.size).toBe(RUNS);
    for (let i = 0; i < RUNS; i++) {
      const kinds = (byRun.get(`${prefix}-${i}`) ?? []).map((e) => e.kind).sort();
      expect(kinds, `run ${i}`).toEqual(['activity.completed', 'workflow.completed', 'workflow.started']);
    }

    // Spans rebuilt for the runs appended after the restart: one `workflow` span per run, in its trace.
    const late = recs.slice(atKill).filter((e) => e.kind === 'workflow.completed');
    expect(late.length).toBeGreaterThan(0);
    await until(() => late.every((e) => otlp.spans.some((s) => s.name === 'workflow simpleWorkflow' && s.spanId === workflowRunSpanId(e.workflow_id!, e.run_id!))), 30_000, 'workflow spans');
    for (const e of late) {
      const span = otlp.spans.find((s) => s.spanId === workflowRunSpanId(e.workflow_id!, e.run_id!))!;
      expect(span.traceId).toBe(traceIdForCorrelation(`temporal:${e.workflow_id}`));
      expect(otlp.spans.some((s) => s.name === 'activity echo' && s.parentSpanId === span.spanId)).toBe(true);
    }
  }, 300_000);
});
