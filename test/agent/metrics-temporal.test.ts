import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { WorkflowInfo } from '@temporalio/workflow';
import { describe, expect, it } from 'vitest';
import { WardenMetrics } from '../../agent/metrics.js';
import { wardenActivityInterceptors } from '../../hooks/temporal/index.js';
import { workflowRunSpanId } from '../../hooks/temporal/headers.js';
import { workflowRecordToEvent } from '../../hooks/temporal/sinks.js';
import { resolveOptions } from '../../hooks/temporal/options.js';
import type { WorkflowRecord } from '../../hooks/temporal/records.js';
import { CollectingEmitter } from '../harness/temporal/helpers.js';

describe('metrics from Temporal events', () => {
  it('land in the BullMQ families with system="temporal", queue = task queue, name = workflow or activity type', async () => {
    const em = new CollectingEmitter();
    const env = (attempt: number) => new MockActivityEnvironment({ activityType: 'embedText', taskQueue: 'ml', attempt, retryPolicy: { maximumAttempts: 2 } } as never,
      { interceptors: [wardenActivityInterceptors({ emitter: em })], logger: new DefaultLogger('ERROR') });
    await env(1).run(async () => { throw new Error('503'); }).catch(() => undefined);
    await env(2).run(async () => 'ok');
    const info = { workflowId: 'w', runId: 'r', workflowType: 'IndexWorkflow', taskQueue: 'ml', attempt: 1 } as WorkflowInfo;
    const rec: WorkflowRecord = {
      kind: 'workflow.completed', seq: 0, ts: Date.now(), cid: 'wc_m', traceparent: null, span_id: workflowRunSpanId('w', 'r'), parent_span_id: null,
      model: null, model_version: null, policy: null, policy_version: null, args: null, name: null, message_cid: null, client_recorded: false,
      result: null, error: null, error_type: null, duration_ms: 1500, continued_as_new: false,
    };
    em.emit(workflowRecordToEvent(info, rec, resolveOptions({}))!);

    const metrics = new WardenMetrics({ defaultMetrics: false });
    for (const ev of em.events) metrics.observe(ev);
    const text = (await metrics.render()).body;
    expect(text).toContain('warden_jobs_total{system="temporal",queue="ml",name="embedText",outcome="attempt_failed"} 1');
    expect(text).toContain('warden_jobs_total{system="temporal",queue="ml",name="embedText",outcome="completed"} 1');
    expect(text).toContain('warden_jobs_total{system="temporal",queue="ml",name="IndexWorkflow",outcome="completed"} 1');
    expect(text).toContain('warden_job_duration_seconds_count{system="temporal",queue="ml",name="IndexWorkflow"} 1');
    expect(text).toContain('warden_job_duration_seconds_count{system="temporal",queue="ml",name="embedText"} 2');
  });
});
