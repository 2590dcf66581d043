/**
 * `warden/temporal` against a real Temporal dev server: a real Worker (bundled workflows with Warden's
 * module and the official OpenTelemetry module beside it, `maxCachedWorkflows: 0` so every workflow
 * task replays the history so far), the real NATS transport and the real `warden start` sidecar.
 *
 * An order runs: client -> workflow -> activities (one succeeds on its third attempt, one fails both of
 * its attempts) -> child workflow -> continue-as-new -> approval by signal and by update (one refused by
 * its validator, one accepted) -> completion; a second order's workflow fails. Then the ledger is
 * compared with the server's history run by run, the OTLP receiver holds one trace, and the server's
 * own metrics agree with `warden_jobs_total{system="temporal"}`.
 */
import { join } from 'node:path';
import { context, trace } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { Client, Connection, WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { makeWorkflowExporter, OpenTelemetryActivityInboundInterceptor, OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import { DefaultLogger, NativeConnection, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../core/event.js';
import { newCorrelationId } from '../../core/ids.js';
import { configureWarden, wardenClientInterceptors, wardenWorker, withCorrelation, type WardenHandle } from '../../hooks/temporal/index.js';
import { Spool } from '../../ledger/spool/spool.js';
import {
  startNats, startOtlpReceiver, startRedis, startTemporal, sumMetric, tempDir, until,
  type NatsServer, type OtlpReceiver, type RedisServer, type TempDir, type TemporalServer,
} from '../harness/index.js';
import { startSidecarProcess, type SidecarProcess } from '../harness/sidecar.js';
import { installOtel, sandboxSpanProcessor } from '../harness/temporal/helpers.js';
import { realActivities } from '../harness/temporal/real-activities.js';
import { attemptsOf, bundleRealWorkflows, historyView, ledgerView, type RunView } from '../harness/temporal/real-flow.js';
import { approveLimitUpdate, approveSignal, type Order } from '../harness/temporal/real-workflows.js';

const TASK_QUEUE = 'orders';
const ORDER: Order = { id: 'O-42', contact: 'jane@example.com', amount: 900 };
const REFUSED: Order = { id: 'O-43', contact: 'joe@example.com', amount: 99_000 };

let temporalServer: TemporalServer;
let nats: NatsServer;
let redis: RedisServer;
let otlp: OtlpReceiver;
let dir: TempDir;
let sidecar: SidecarProcess;
let otel: ReturnType<typeof installOtel>;
let warden: WardenHandle;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  [temporalServer, nats, redis, otlp, dir, bundle] = await Promise.all([
    startTemporal(), startNats(), startRedis(), startOtlpReceiver(), tempDir('warden-temporal-real'), bundleRealWorkflows('both'),
  ]);
  sidecar = await startSidecarProcess({
    redisUrl: redis.url, dataDir: dir.path, queues: ['unused'], otlp: otlp.url, env: { WARDEN_NATS_URL: nats.url, WARDEN_CLICKHOUSE: 'off' },
  });
  otel = installOtel({ url: otlp.url, serviceName: 'orders-worker' });
  warden = configureWarden({ nats: { url: nats.url } });
}, 180_000);

afterAll(async () => {
  await warden?.close(2000);
  await otel?.dispose();
  await sidecar?.proc.stop();
  await otlp?.close();
  await Promise.all([temporalServer?.dispose(), nats?.dispose(), redis?.dispose()]);
  await dir?.cleanup();
});

async function ledger(): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const rec of Spool.read(join(dir.path, 'data'))) out.push(rec.event);
  return out;
}

/** Temporal's own metric, summed over series whose labels include `labels` (0 when absent). */
async function serverMetric(name: string, labels: Record<string, string>): Promise<number> {
  return sumMetric(await (await fetch(temporalServer.metricsUrl)).text(), name, labels);
}

describe('warden/temporal with a real Temporal server, a real worker and the real sidecar', () => {
  it('the ledger matches the server history event for event, under one correlation ID and one trace; the server metrics agree', async () => {
    const connection = await Connection.connect({ address: temporalServer.address });
    const client = new Client({
      connection, namespace: temporalServer.namespace,
      interceptors: wardenClientInterceptors({}, { workflow: [new OpenTelemetryWorkflowClientInterceptor()] }),
    });
    const native = await NativeConnection.connect({ address: temporalServer.address });
    const parts = wardenWorker({ approvals: ['approve', 'approveLimit'] }, {
      interceptors: { activity: [(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx) })] },
      sinks: { exporter: makeWorkflowExporter(sandboxSpanProcessor(otel.processor) as never, resourceFromAttributes({ 'service.name': 'orders-worker' }) as never) },
    });
    const { workflowModules: _bundled, ...interceptors } = parts.interceptors; // in the bundle already
    const worker = await Worker.create({
      connection: native, namespace: temporalServer.namespace, taskQueue: TASK_QUEUE, workflowBundle: bundle,
      activities: realActivities(), interceptors, sinks: parts.sinks, maxCachedWorkflows: 0,
    });

    const cid = newCorrelationId();
    const tracer = trace.getTracer('orders-app');
    const root = tracer.startSpan('place order');
    const inRoot = <T>(fn: () => Promise<T>) => context.with(trace.setSpan(context.active(), root), () => withCorrelation(cid, fn));
    const wid = `order-${ORDER.id}`;
    let firstRun = '';
    let secondRun = '';
    let rejection: unknown;
    await worker.runUntil(async () => {
      const handle = await inRoot(() => client.workflow.start('orderWorkflow', { taskQueue: TASK_QUEUE, workflowId: wid, args: [ORDER] }));
      firstRun = handle.firstExecutionRunId;
      await until(async () => {
        const d = await client.workflow.getHandle(wid).describe();
        secondRun = d.runId;
        return d.runId !== firstRun && d.status.name === 'RUNNING';
      }, 60_000, 'the continued run');
      const current = client.workflow.getHandle(wid);
      await inRoot(() => current.signal(approveSignal, { actor: 'alice', reason: 'documents verified' }));
      rejection = await inRoot(() => current.executeUpdate(approveLimitUpdate, { args: [{ actor: 'bob', reason: 'big spender', limit: 5000 }], updateId: 'limit-bob' })).catch((e: unknown) => e);
      await expect(inRoot(() => current.executeUpdate(approveLimitUpdate, { args: [{ actor: 'carol', reason: 'within budget', limit: 500 }], updateId: 'limit-carol' }))).resolves.toBe('accepted');
      await expect(current.result()).resolves.toEqual({ round: 1, approvedBy: ['alice', 'carol'], limit: 500 });
      // A second piece of work whose workflow fails for good.
      await expect(client.workflow.execute('rejectedOrderWorkflow', { taskQueue: TASK_QUEUE, workflowId: `order-${REFUSED.id}`, args: [REFUSED] })).rejects.toBeInstanceOf(WorkflowFailedError);
    });
    root.end();
    await native.close();
    expect(rejection).toBeInstanceOf(WorkflowUpdateFailedError);
    await warden.flush(5000);

    // ---- the ledger against the server's history, run by run
    const child = client.workflow.getHandle(`audit-${ORDER.id}`);
    const childRun = (await child.describe()).runId;
    const runs: [string, string][] = [[wid, firstRun], [wid, secondRun], [`audit-${ORDER.id}`, childRun]];
    const history: RunView[] = [];
    for (const [w, r] of runs) history.push(await historyView(client.workflow.getHandle(w, r)));
    // What history says, spelled out once (so a wrong fixture cannot make both sides agree on nothing).
    expect(history[0]).toMatchObject({ workflowType: 'orderWorkflow', started: 1, closed: 'continued_as_new', signals: [], updates: [] });
    expect(Object.values(history[0].activities)).toEqual([
      { type: 'charge', finalAttempt: 3, outcome: 'completed' }, { type: 'notify', finalAttempt: 2, outcome: 'failed' },
    ]);
    expect(history[1]).toMatchObject({ workflowType: 'orderWorkflow', started: 1, closed: 'completed', signals: ['approve'], updates: ['approveLimit:limit-carol'], activities: {} });
    expect(history[2]).toMatchObject({ workflowType: 'auditWorkflow', started: 1, closed: 'completed' });

    // (The first run's start is the client's record; so are the receipts of the signal and both updates.)
    const expectedRecords = 3 /* starts */ + 3 /* closes */ + 2 * (3 + 2 + 1) /* attempts: started + end */ + 2 /* approvals */ + 1 /* refusal */ + 3 /* client receipts */;
    let events: WardenEvent[] = [];
    await until(async () => {
      events = (await ledger()).filter((e) => e.source === 'temporal' && e.correlation_id === cid);
      return events.length >= expectedRecords;
    }, 20_000, 'the order in the ledger');
    for (let i = 0; i < runs.length; i++) expect(ledgerView(events, ...runs[i]), `${runs[i].join('/')}`).toEqual(history[i]);
    // Every attempt once: started, then its end. No duplicates although every task replayed.
    expect(attemptsOf(events, wid, firstRun)).toEqual({
      '1#1': ['activity.started', 'activity.attempt_failed'], '1#2': ['activity.started', 'activity.attempt_failed'], '1#3': ['activity.started', 'activity.completed'],
      '2#1': ['activity.started', 'activity.attempt_failed'], '2#2': ['activity.started', 'activity.failed'],
    });
    expect(events.length).toBe(expectedRecords);
    expect(new Set(events.map((e) => e.event_id)).size).toBe(events.length);
    // The refused update: nowhere in history, in the ledger with the validator's reason.
    const refused = events.filter((e) => e.attrs.update_outcome === 'rejected' && e.attrs.recorded_by !== 'client');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ kind: 'signal.received', run_id: secondRun, error: expect.stringContaining('limit 5000 is over 1000') });
    expect(refused[0].attrs).toMatchObject({ update_id: 'limit-bob', signal_name: 'approveLimit', rejected_by: 'validator' });
    const approvals = events.filter((e) => e.kind === 'approval.granted').map((e) => [e.actor, e.attrs.message_type]);
    expect(approvals.sort()).toEqual([['alice', 'signal'], ['carol', 'update']]);
    // The client's own receipts name the update's outcome too.
    const all = await ledger();
    const receipts = all.filter((e) => e.attrs.recorded_by === 'client' && e.attrs.message_type === 'update');
    expect(receipts.map((e) => `${e.attrs.update_id}:${e.attrs.update_outcome}`).sort()).toEqual(['limit-bob:rejected', 'limit-carol:completed']);
    // One correlation ID for the whole order; redacted at the source.
    expect(new Set(all.filter((e) => e.workflow_id?.endsWith(ORDER.id)).map((e) => e.correlation_id))).toEqual(new Set([cid]));
    expect(JSON.stringify(all)).not.toContain(ORDER.contact);

    // ---- one trace: the worker's spans (Warden's and the official interceptors') and the sidecar's
    await otel.provider.forceFlush();
    const traceId = root.spanContext().traceId;
    const names = () => new Set(otlp.spans.filter((s) => s.traceId === traceId).map((s) => s.name));
    const expectedNames = [
      'place order', 'StartWorkflow:orderWorkflow', 'RunWorkflow:orderWorkflow', 'RunActivity:charge', 'activity charge', 'activity notify',
      'RunWorkflow:auditWorkflow', 'activity archive', 'workflow orderWorkflow', 'workflow auditWorkflow',
    ];
    await until(() => expectedNames.every((n) => names().has(n)), 20_000, `spans ${expectedNames.filter((n) => !names().has(n)).join(', ')}`);
    const orderSpans = otlp.spans.filter((s) => s.name.includes('orderWorkflow') || s.name.includes('auditWorkflow') || /activity|Activity/.test(s.name));
    expect(new Set(orderSpans.map((s) => s.traceId))).toEqual(new Set([traceId]));
    // Warden's spans (worker and sidecar) carry no contact. (The official activity interceptor records
    // the raw error text, email included, in its own spans: that is its behaviour, not Warden's.)
    const official = /^(StartWorkflow|RunWorkflow|RunActivity|StartActivity|StartChildWorkflowExecution|SignalWorkflow|HandleSignal|HandleUpdate|ContinueAsNew|DescribeWorkflow|QueryWorkflow|Signal|Update|StartWorkflowUpdate|.*Workflow):/;
    const wardenSpans = otlp.spans.filter((s) => !official.test(s.name) && s.name !== 'place order');
    expect(wardenSpans.length).toBeGreaterThan(8);
    expect(JSON.stringify(wardenSpans).includes(ORDER.contact)).toBe(false);

    // ---- the server's metrics and Warden's agree on workflows completed and failed
    const metrics = await sidecar.metrics();
    const wardenJobs = (name: string, outcome: string) => sumMetric(metrics, 'warden_jobs_total', { system: 'temporal', name, outcome });
    const ns = { namespace: temporalServer.namespace };
    // The server reports its counters on a reporting interval: wait until they have caught up with the runs.
    await until(async () => (await serverMetric('workflow_success', ns)) + (await serverMetric('workflow_continued_as_new', ns)) + (await serverMetric('workflow_failed', ns)) >= 4, 30_000, 'the server metrics to count the four closed runs');
    const success = await serverMetric('workflow_success', ns);
    const continued = await serverMetric('workflow_continued_as_new', ns);
    const failed = await serverMetric('workflow_failed', ns);
    expect({ success, continued, failed }).toEqual({ success: 2, continued: 1, failed: 1 });
    // Warden counts a continued run as a completed run (its workflow.completed carries continued_as_new).
    const wardenCompleted = wardenJobs('orderWorkflow', 'completed') + wardenJobs('auditWorkflow', 'completed');
    expect(wardenCompleted).toBe(success + continued);
    expect(wardenJobs('rejectedOrderWorkflow', 'failed')).toBe(failed);
    await connection.close();
  }, 120_000);
});
