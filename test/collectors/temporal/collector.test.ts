/**
 * The history collector alone (no interceptors in the worker) against a real Temporal dev server: the
 * start, terminal and activity outcome records of every closed run, with attempt counts from history,
 * marked `attrs.from_history`; a second scan (and a scan from scratch) adds nothing; a run whose
 * history was deleted before it was read is a `collector.gap`.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WardenEventSchema, type WardenEvent } from '../../../core/event.js';
import { traceIdForCorrelation } from '../../../core/ids.js';
import { DEFAULT_INPUT_LIMITS } from '../../../core/input.js';
import { Redactor } from '../../../core/redact.js';
import { workflowRunSpanId } from '../../../core/temporal-stamp.js';
import { TemporalCollector, type ClosedRun } from '../../../collectors/temporal/collector.js';
import { TemporalLedgerIndex, temporalRecordKey } from '../../../collectors/temporal/ledger-index.js';
import { startTemporal, tempDir, until, type TempDir, type TemporalServer } from '../../harness/index.js';
import { bundle, plainWorker, TASK_QUEUE } from './fixtures.js';

/** What the sidecar's ingest does with the collector's records: skip held IDs and held records, append the rest. */
class LedgerLike {
  readonly appended: WardenEvent[] = [];
  readonly offered: WardenEvent[] = [];
  readonly index = new TemporalLedgerIndex();
  private readonly ids = new Set<string>();
  async sink(events: WardenEvent[]): Promise<void> {
    for (const ev of events) {
      this.offered.push(ev);
      if (this.ids.has(ev.event_id) || this.index.has(ev)) continue;
      WardenEventSchema.parse(ev);
      this.ids.add(ev.event_id);
      this.index.add(ev);
      this.appended.push(ev);
    }
  }
  of(workflowId: string): WardenEvent[] { return this.appended.filter((e) => e.workflow_id === workflowId); }
}

describe('Temporal history collector (real server, worker without interceptors)', () => {
  let t: TemporalServer;
  let wfBundle: WorkflowBundleWithSourceMap;
  let w: Awaited<ReturnType<typeof plainWorker>>;
  let dir: TempDir;
  const ledger = new LedgerLike();
  const suffix = Date.now().toString(36);
  const ids = { retry: `retry-${suffix}`, fail: `fail-${suffix}`, simple: `simple-${suffix}`, gone: `gone-${suffix}` };

  const collector = (extra: Partial<ConstructorParameters<typeof TemporalCollector>[0]> = {}) => new TemporalCollector({
    address: t.address, namespaces: ['default'], dataDir: dir.path, pollIntervalMs: 60_000, pageSize: 2, settleMs: 0,
    redactor: new Redactor(), inputLimits: DEFAULT_INPUT_LIMITS, sink: (evs) => ledger.sink(evs), ...extra,
  });
  const scan = async (c: TemporalCollector, timeoutMs = 30_000) => {
    await c.start();
    await until(() => c.scanCount >= 1, timeoutMs, 'one scan');
    await c.stop();
  };
  const closedCount = async () => Number((await w.conn.workflowService.countWorkflowExecutions({ namespace: 'default', query: "ExecutionStatus != 'Running'" })).count);

  beforeAll(async () => {
    [t, wfBundle, dir] = await Promise.all([startTemporal(), bundle(), tempDir('tcol')]);
    w = await plainWorker(t.address, wfBundle);
    const c = w.client.workflow;
    await c.execute('retryWorkflow', { taskQueue: TASK_QUEUE, workflowId: ids.retry, args: ['r1'] });
    await expect(c.execute('failingWorkflow', { taskQueue: TASK_QUEUE, workflowId: ids.fail, args: ['f1'] })).rejects.toThrow();
    await c.execute('simpleWorkflow', { taskQueue: TASK_QUEUE, workflowId: ids.simple, args: ['s1'] });
    await until(async () => (await closedCount()) >= 3, 30_000, 'three closed runs in visibility');
  }, 300_000);
  afterAll(async () => {
    await w?.close();
    await t?.dispose();
    await dir?.cleanup();
  });

  it('rebuilds each closed run\'s start, end and activity outcomes with attempts from history', async () => {
    await scan(collector());
    const retry = ledger.of(ids.retry);
    expect(retry.map((e) => e.kind)).toEqual(['workflow.started', 'activity.completed', 'workflow.completed']);
    const runId = retry[0].run_id!;
    for (const ev of ledger.appended) {
      expect(ev.source).toBe('temporal');
      expect(ev.attrs.from_history).toBe(true);
      expect(ev.queue).toBe(TASK_QUEUE);
      expect(ev.correlation_id).toBe(`temporal:${ev.workflow_id}`);
      expect(ev.trace_id).toBe(traceIdForCorrelation(ev.correlation_id!));
    }
    // The retried activity: one final outcome, attempt 3 (history's ActivityTaskStarted.attempt).
    const act = retry[1];
    expect(act).toMatchObject({ activity_type: 'flaky', attempt: 3, error: null, run_id: runId });
    expect(act.attrs.parent_span_id).toBe(workflowRunSpanId(ids.retry, runId));
    expect(act.duration_ms).toBeGreaterThanOrEqual(0);
    expect(retry[0]).toMatchObject({ job_name: 'retryWorkflow', span_id: workflowRunSpanId(ids.retry, runId), attempt: 1 });
    expect(retry[0].input).toEqual(['r1']);
    expect(retry[0].input_digest).toMatch(/^[0-9a-f]{64}$/);
    expect(retry[2].duration_ms).toBe(retry[2].ts - retry[0].ts);

    const fail = ledger.of(ids.fail);
    expect(fail.map((e) => e.kind)).toEqual(['workflow.started', 'activity.failed', 'workflow.failed']);
    expect(fail[1]).toMatchObject({ activity_type: 'doomed', attempt: 3 });
    expect(fail[1].error).toContain('doomed f1 for good');
    expect(fail[2].attrs.close_status).toBe('failed');
    expect(fail[2].error).toMatch(/activity (task )?failed|doomed f1 for good/i); // the workflow failed because its activity did

    const simple = ledger.of(ids.simple);
    expect(simple.map((e) => [e.kind, e.attempt])).toEqual([['workflow.started', 1], ['activity.completed', 1], ['workflow.completed', 1]]);
    expect(ledger.appended).toHaveLength(9);
  });

  it('adds nothing on a second scan, nor on a scan from scratch, whose records carry the same event IDs', async () => {
    const before = ledger.appended.length;
    const firstIds = ledger.offered.map((e) => e.event_id).sort();
    await scan(collector());
    expect(ledger.appended).toHaveLength(before);
    // Lose the checkpoint: everything is read again and offered with the same IDs, and nothing is added.
    await rm(join(dir.path, 'temporal-positions.json'));
    const offeredBefore = ledger.offered.length;
    await scan(collector());
    expect(ledger.appended).toHaveLength(before);
    const again = ledger.offered.slice(offeredBefore).map((e) => e.event_id).sort();
    expect(again).toEqual([...new Set(firstIds)].sort());
    // No record key twice.
    const keys = ledger.appended.map((e) => temporalRecordKey(e));
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('records a collector.gap for a run whose history was deleted before it was read', async () => {
    const h = await w.client.workflow.start('simpleWorkflow', { taskQueue: TASK_QUEUE, workflowId: ids.gone, args: ['g1'] });
    await h.result();
    await until(async () => (await closedCount()) >= 4, 30_000, 'the fourth closed run in visibility');
    const svc = w.conn.workflowService;
    const deleted: string[] = [];
    await scan(collector({
      async beforeHistory(run: ClosedRun) {
        if (run.workflowId !== ids.gone) return;
        await svc.deleteWorkflowExecution({ namespace: 'default', workflowExecution: { workflowId: run.workflowId, runId: run.runId } });
        await until(async () => {
          try { await svc.getWorkflowExecutionHistory({ namespace: 'default', execution: { workflowId: run.workflowId, runId: run.runId } }); return false; } catch (err) { return (err as { code?: number }).code === 5; }
        }, 120_000, 'the history to be gone');
        deleted.push(run.runId);
      },
    }), 180_000); // the server deletes history asynchronously: ~20 s here, longer on a loaded machine
    expect(deleted).toEqual([h.firstExecutionRunId]);
    const gone = ledger.of(ids.gone);
    expect(gone.map((e) => e.kind)).toEqual(['collector.gap']);
    expect(gone[0]).toMatchObject({ source: 'temporal', run_id: h.firstExecutionRunId, queue: TASK_QUEUE, job_name: 'simpleWorkflow' });
    expect(gone[0].attrs).toMatchObject({ from_history: true, gap: 'history_deleted', namespace: 'default' });
    expect(ledger.appended).toHaveLength(10);
  }, 240_000);
});
