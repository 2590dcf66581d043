/**
 * The explorer's new filters (workflow ID, actor, model version) and paging (after_seq), in the one
 * filter shape both readers take: the spool's sequential pass and the store's SQL select the same
 * records; and the Overview snapshot read from a real metrics registry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeEvent } from '../../core/event.js';
import { eventsSql } from '../../ledger/compliance/queries.js';
import { InvalidFilterError, queryLedger, Spool, type LedgerFilter, type LedgerRecord } from '../../ledger/index.js';
import { WardenMetrics } from '../../agent/metrics.js';
import { overviewOf } from '../../agent/overview.js';
import { removeDir, tempDir } from '../harness/ledger.js';

let dir: string;
let recs: LedgerRecord[];

beforeAll(async () => {
  dir = await tempDir();
  const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0 });
  recs = await spool.append([
    makeEvent({ kind: 'workflow.started', source: 'temporal', workflow_id: 'claim-7', queue: 'claims', model: 'm', model_version: 'v7', ts: 1000 }),
    makeEvent({ kind: 'approval.denied', source: 'temporal', workflow_id: 'claim-7', actor: 'alice', queue: 'claims', ts: 2000 }),
    makeEvent({ kind: 'approval.granted', source: 'temporal', workflow_id: 'claim-8', actor: 'bob', queue: 'claims', ts: 3000 }),
    makeEvent({ kind: 'job.completed', source: 'celery', job_id: 'task-1', queue: 'claims', model: 'm', model_version: 'v8', ts: 4000 }),
    makeEvent({ kind: 'job.completed', source: 'celery', job_id: 'task-2', queue: 'claims', model: 'm', model_version: 'v7', actor: 'alice-bot', ts: 5000 }),
  ]);
  await spool.close();
});
afterAll(async () => { await removeDir(dir); });

const seqs = async (f: LedgerFilter) => { const out: number[] = []; for await (const r of queryLedger(dir, f)) out.push(r.seq); return out; };

describe('explorer filters', () => {
  it('the spool selects by workflow ID, actor (exact) and model version, and pages after a seq', async () => {
    expect(await seqs({ workflowId: 'claim-7' })).toEqual([recs[0].seq, recs[1].seq]);
    expect(await seqs({ actor: 'alice' })).toEqual([recs[1].seq]);
    expect(await seqs({ modelVersion: 'v7' })).toEqual([recs[0].seq, recs[4].seq]);
    expect(await seqs({ modelVersion: 'v7', source: 'celery' })).toEqual([recs[4].seq]);
    expect(await seqs({ queue: 'claims', afterSeq: recs[1].seq, limit: 2 })).toEqual([recs[2].seq, recs[3].seq]);
  });

  it('the store\'s SQL has the same conditions, values escaped', () => {
    const sql = eventsSql({ workflowId: "claim-'7", actor: 'alice', modelVersion: 'v7', afterSeq: 10, limit: 50 });
    expect(sql).toContain("workflow_id = 'claim-\\'7'");
    expect(sql).toContain("actor = 'alice'");
    expect(sql).toContain("model_version = 'v7'");
    expect(sql).toMatch(/seq > 10[\s\S]*LIMIT 50/);
  });

  it('refuses a non-string value with the one filter error', () => {
    expect(() => eventsSql({ actor: 7 as unknown as string })).toThrow(InvalidFilterError);
  });
});

describe('overview snapshot', () => {
  it('sums outcomes per system and queue and reads latency quantiles from the histograms', async () => {
    const m = new WardenMetrics({ defaultMetrics: false });
    for (let i = 0; i < 8; i++) m.jobs.inc({ system: 'celery', queue: 'q', name: `t${i % 2}`, outcome: 'completed' });
    m.jobs.inc({ system: 'celery', queue: 'q', name: 't0', outcome: 'failed' });
    m.jobs.inc({ system: 'celery', queue: 'q', name: 't0', outcome: 'attempt_failed' }, 3);
    for (const s of [0.02, 0.02, 0.02, 0.2, 4]) m.wait.observe({ system: 'celery', queue: 'q', name: 't0' }, s);
    m.retryRatio.set({ policy: 'p', scope: 'celery.queue.q' }, 0.3);
    m.retryBudgetRatio.set({ policy: 'p', scope: 'celery.queue.q' }, 0.25);
    const ov = await overviewOf(m);
    expect(ov.queues).toEqual([expect.objectContaining({ system: 'celery', queue: 'q', completed: 8, failed: 1, attempt_failed: 3, retries_per_job: 3 / 9 })]);
    expect(ov.queues[0].wait).toEqual({ count: 5, mean_s: expect.closeTo(0.852, 3), p50_s: 0.025, p95_s: 5 });
    expect(ov.queues[0].run.count).toBe(0);
    expect(ov.retry).toEqual([{ policy: 'p', scope: 'celery.queue.q', ratio: 0.3, budget: 0.25 }]);
    expect(ov.self_verify).toEqual({ ok: null, last_run_ms: null });
  });
});
