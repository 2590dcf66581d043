/**
 * A worker's events dropped on purpose, then the reconciled ledger is complete against the server's
 * history. All real: a Temporal dev server, a worker with Warden's interceptors (`wardenWorker()`,
 * `wardenClientInterceptors()`) whose `configureWarden` outbox holds only 5 events, NATS, and the
 * `warden start` sidecar with its Temporal history collector (WARDEN_TEMPORAL_ADDRESS).
 *
 * Batch 1 runs with NATS up (the hooks deliver). Then NATS stops and batch 2 runs: the outbox keeps
 * its first 5 events and drops the rest. The collector rebuilds batch 2 from history while NATS is
 * still down; then NATS comes back, the outbox delivers its 5 buffered events (records the ledger
 * already holds from history: superseded, not appended) and its drop report (`collector.gap`).
 * Afterwards every closed run has one start and one terminal record, each activity its final
 * outcome with history's attempt count, no (run, kind) or (run, activity) twice, and the server's
 * own metrics agree with `warden_jobs_total{system="temporal"}`.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../core/event.js';
import { temporalRecordKey } from '../../collectors/temporal/ledger-index.js';
import { configureWarden, wardenClientInterceptors, wardenWorker, type WardenHandle } from '../../hooks/temporal/index.js';
import { Spool } from '../../ledger/spool/spool.js';
import {
  startNats, startRedis, startTemporal, sumMetric, tempDir, until,
  type NatsServer, type RedisServer, type TempDir, type TemporalServer,
} from '../harness/index.js';
import { startSidecarProcess, type SidecarProcess } from '../harness/sidecar.js';
import { realActivities } from '../harness/temporal/real-activities.js';
import { bundleRealWorkflows, historyView, ledgerView } from '../harness/temporal/real-flow.js';
import { approveLimitUpdate, approveSignal, type Order } from '../harness/temporal/real-workflows.js';

const TASK_QUEUE = 'drop-orders';

let temporalServer: TemporalServer;
let nats: NatsServer;
let redis: RedisServer;
let dir: TempDir;
let sidecar: SidecarProcess;
let warden: WardenHandle;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  [temporalServer, nats, redis, dir, bundle] = await Promise.all([startTemporal(), startNats(), startRedis(), tempDir('warden-temporal-drop'), bundleRealWorkflows('warden')]);
  const config = join(dir.path, 'warden.yaml');
  // Runs closed 2 s ago are read: time enough for hook events when NATS is up.
  await writeFile(config, 'temporal:\n  settleMs: 2000\n  pollIntervalMs: 300\n  pageSize: 20\n');
  sidecar = await startSidecarProcess({
    redisUrl: redis.url, dataDir: dir.path, queues: ['unused'], config,
    env: { WARDEN_NATS_URL: nats.url, WARDEN_CLICKHOUSE: 'off', WARDEN_TEMPORAL_ADDRESS: temporalServer.address, WARDEN_TEMPORAL_NAMESPACES: temporalServer.namespace },
  });
  warden = configureWarden({ nats: { url: nats.url, timeoutMs: 1000 }, outbox: { maxEvents: 5, maxBackoffMs: 300 } });
}, 180_000);

afterAll(async () => {
  await warden?.close(2000);
  await sidecar?.proc.stop();
  await Promise.all([temporalServer?.dispose(), nats?.dispose(), redis?.dispose()]);
  await dir?.cleanup();
});

async function ledger(): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  try {
    for await (const rec of Spool.read(join(dir.path, 'data'))) out.push(rec.event);
  } catch { /* a line being written: read again later */ }
  return out;
}

interface ClosedRun { workflowId: string; runId: string; type: string; status: string }

describe('Warden interceptors installed, the transport down: the reconciled ledger is complete against history', () => {
  it('has one start and one end per closed run and every activity outcome with history\'s attempts, without duplicates', async () => {
    const connection = await Connection.connect({ address: temporalServer.address });
    const client = new Client({ connection, namespace: temporalServer.namespace, interceptors: wardenClientInterceptors() });
    const native = await NativeConnection.connect({ address: temporalServer.address });
    const parts = wardenWorker({ approvals: ['approve', 'approveLimit'] });
    const { workflowModules: _bundled, ...interceptors } = parts.interceptors; // in the bundle already
    const worker = await Worker.create({
      connection: native, namespace: temporalServer.namespace, taskQueue: TASK_QUEUE, workflowBundle: bundle,
      activities: realActivities(), interceptors, sinks: parts.sinks,
    });
    const running = worker.run();

    /** Retries, a final activity failure, a child, continue-as-new, a signal and an update; then done. */
    const order = async (o: Order): Promise<void> => {
      const wid = `order-${o.id}`;
      const h = await client.workflow.start('orderWorkflow', { taskQueue: TASK_QUEUE, workflowId: wid, args: [o] });
      await until(async () => {
        const d = await client.workflow.getHandle(wid).describe();
        return d.runId !== h.firstExecutionRunId && d.status.name === 'RUNNING';
      }, 60_000, `the continued run of ${wid}`);
      const current = client.workflow.getHandle(wid);
      await current.signal(approveSignal, { actor: 'alice', reason: 'documents verified' });
      await current.executeUpdate(approveLimitUpdate, { args: [{ actor: 'carol', reason: 'within budget', limit: 500 }], updateId: `limit-${o.id}` });
      await current.result();
    };
    const batch = (tag: string): Promise<unknown> => Promise.all([
      order({ id: `${tag}-1`, contact: 'jane@example.com', amount: 900 }),
      client.workflow.execute('rejectedOrderWorkflow', { taskQueue: TASK_QUEUE, workflowId: `refused-${tag}`, args: [{ id: `${tag}-2`, contact: 'joe@example.com', amount: 99_000 }] }).catch(() => 'failed'),
      ...[1, 2, 3].map((i) => client.workflow.execute('twoStepWorkflow', { taskQueue: TASK_QUEUE, workflowId: `two-${tag}-${i}`, args: [`${tag}-${i}`] })),
    ]);
    /** Closed runs of one batch (workflow IDs `order-<tag>-1`, `audit-<tag>-1`, `refused-<tag>`, `two-<tag>-<i>`). */
    const closedRuns = async (tag: string): Promise<ClosedRun[]> => {
      const out: ClosedRun[] = [];
      for await (const w of client.workflow.list({ query: "ExecutionStatus != 'Running'" })) {
        if (w.workflowId.includes(`-${tag}-`) || w.workflowId.endsWith(`-${tag}`)) out.push({ workflowId: w.workflowId, runId: w.runId, type: w.type, status: w.status.name });
      }
      return out;
    };
    const heldRun = (events: WardenEvent[], r: ClosedRun) => {
      const mine = events.filter((e) => e.source === 'temporal' && e.workflow_id === r.workflowId && e.run_id === r.runId);
      return mine.some((e) => e.kind === 'workflow.started') && mine.some((e) => e.kind === 'workflow.completed' || e.kind === 'workflow.failed');
    };

    // ---- batch 1: the transport works, the hooks deliver
    await batch('a');
    expect(await warden.flush(10_000)).toBe(true);
    // 5 runs, the order's continued run and its child: 7 closed runs.
    let batchA: ClosedRun[] = [];
    await until(async () => (batchA = await closedRuns('a')).length === 7, 30_000, 'batch 1 closed in visibility');

    // ---- batch 2: NATS down. The outbox keeps 5 events and drops the rest.
    await nats.stop();
    await batch('b');
    const dropped = warden.stats();
    expect(dropped.buffered).toBe(5);
    expect(dropped.dropped).toBeGreaterThan(20);
    let batchB: ClosedRun[] = [];
    await until(async () => (batchB = await closedRuns('b')).length === 7, 30_000, 'batch 2 closed in visibility');
    // The collector rebuilds batch 2 from history while the worker's 5 events still wait.
    await until(async () => { const evs = await ledger(); return batchB.every((r) => heldRun(evs, r)); }, 60_000, 'batch 2 rebuilt from history');

    // ---- NATS back: the 5 buffered events and the drop report arrive
    await nats.start();
    await until(() => warden.stats().gapReports >= 1 && warden.stats().buffered === 0, 30_000, 'the outbox to deliver and report its drops');
    // The worker's drop reports (one for the outage; one more if batch 1 overflowed 5 events) name every
    // drop. Wait for all of them: the first can reach the ledger while the second is still on its way.
    let events: WardenEvent[] = [];
    const dropReports = () => events.filter((e) => e.kind === 'collector.gap' && e.attrs.transport === 'nats');
    await until(async () => {
      events = await ledger();
      return dropReports().some((e) => e.attrs.received_via !== undefined)
        && dropReports().reduce((n, e) => n + Number(e.attrs.dropped), 0) >= warden.stats().dropped;
    }, 20_000, 'the drop reports in the ledger');
    await worker.shutdown();
    await running;
    await native.close();

    // Exactly: no drop unreported, none reported twice.
    expect(dropReports().reduce((n, e) => n + Number(e.attrs.dropped), 0)).toBe(warden.stats().dropped);

    // ---- complete against history, run by run
    const temporalEvents = events.filter((e) => e.source === 'temporal');
    for (const r of [...batchA, ...batchB]) {
      const h = await historyView(client.workflow.getHandle(r.workflowId, r.runId));
      const l = ledgerView(temporalEvents, r.workflowId, r.runId);
      const label = `${r.type} ${r.workflowId}/${r.runId}`;
      expect({ workflowType: l.workflowType, started: l.started, closed: l.closed, activities: l.activities }, label)
        .toEqual({ workflowType: h.workflowType, started: 1, closed: h.closed, activities: h.activities });
      const mine = temporalEvents.filter((e) => e.workflow_id === r.workflowId && e.run_id === r.runId);
      expect(mine.filter((e) => e.kind === 'workflow.completed' || e.kind === 'workflow.failed'), label).toHaveLength(1);
    }
    // The fixture has what the issue asks for: retries, a final activity failure, continue-as-new, a failure.
    const firstOrderRun = batchB.find((r) => r.workflowId === 'order-b-1' && r.status === 'CONTINUED_AS_NEW')!;
    expect(Object.values((await historyView(client.workflow.getHandle(firstOrderRun.workflowId, firstOrderRun.runId))).activities)).toEqual([
      { type: 'charge', finalAttempt: 3, outcome: 'completed' }, { type: 'notify', finalAttempt: 2, outcome: 'failed' },
    ]);
    expect(batchB.map((r) => r.status).sort()).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED', 'COMPLETED', 'COMPLETED', 'CONTINUED_AS_NEW', 'FAILED']);

    // No (run, start | end | activity) twice, whoever wrote it; no event ID twice.
    const keys = temporalEvents.map((e) => temporalRecordKey(e)).filter((k): k is string => k !== null);
    const twice = keys.filter((k, i) => keys.indexOf(k) !== i);
    expect(twice).toEqual([]);
    expect(new Set(events.map((e) => e.event_id)).size).toBe(events.length);
    // The buffered 5 were held already (rebuilt from history): superseded, not appended again.
    let metrics = await sidecar.metrics();
    expect(sumMetric(metrics, 'warden_ingest_events_total', { transport: 'nats', result: 'superseded' })).toBeGreaterThanOrEqual(1);

    // From the hooks where they arrived, from history where they did not.
    const fromHistory = (runs: ClosedRun[]) => temporalEvents.filter((e) => runs.some((r) => r.runId === e.run_id) && e.attrs.from_history === true);
    const terminalsB = fromHistory(batchB).filter((e) => e.kind.startsWith('workflow.') && e.kind !== 'workflow.started');
    expect(terminalsB).toHaveLength(7); // every end of batch 2 came from history
    const hookTerminalsA = temporalEvents.filter((e) => batchA.some((r) => r.runId === e.run_id) && e.kind !== 'workflow.started' && e.kind.startsWith('workflow.') && e.attrs.from_history !== true);
    expect(hookTerminalsA.length).toBeGreaterThan(0); // batch 1's came from the hooks (all but what overflowed 5 events)
    for (const e of fromHistory([...batchA, ...batchB])) expect(e.attrs.received_via).toBeUndefined(); // facts, not claims

    // ---- the server's metrics and Warden's agree (hook records and rebuilt ones, each run counted once)
    const ns = { namespace: temporalServer.namespace };
    const server = async (name: string) => sumMetric(await (await fetch(temporalServer.metricsUrl)).text(), name, ns);
    const [success, continued, failed] = [await server('workflow_success'), await server('workflow_continued_as_new'), await server('workflow_failed')];
    expect({ success, continued, failed }).toEqual({ success: 10, continued: 2, failed: 2 });
    metrics = await sidecar.metrics();
    const jobs = (name: string, outcome: string) => sumMetric(metrics, 'warden_jobs_total', { system: 'temporal', name, outcome });
    expect(jobs('orderWorkflow', 'completed') + jobs('auditWorkflow', 'completed') + jobs('twoStepWorkflow', 'completed')).toBe(success + continued);
    expect(jobs('rejectedOrderWorkflow', 'failed')).toBe(failed);
    await connection.close();
  }, 180_000);
});
