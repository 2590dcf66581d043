import { trace } from '@opentelemetry/api';
import { Client, WithStartWorkflowOperation } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCorrelation } from '../../../hooks/correlation.js';
import { canonicalJson } from '../../../core/event.js';
import { sha256Hex } from '../../../core/hash.js';
import { traceIdForCorrelation } from '../../../core/ids.js';
import { wardenClientInterceptors } from '../../../hooks/temporal/index.js';
import { readStamp, readTracerData, workflowRunSpanId } from '../../../hooks/temporal/headers.js';
import { RecordingConnection } from '../../harness/temporal/connection.js';
import { CollectingEmitter, installOtel, ThrowingEmitter } from '../../harness/temporal/helpers.js';

let otel: ReturnType<typeof installOtel>;
beforeAll(() => { otel = installOtel(); });
afterAll(async () => { await otel.dispose(); });

const fields = (h: { fields?: Record<string, Payload> } | null | undefined) => (h?.fields ?? {}) as Record<string, Payload>;

function setup(opts: Parameters<typeof wardenClientInterceptors>[0] = {}) {
  const em = new CollectingEmitter();
  const connection = new RecordingConnection();
  const client = new Client({ connection, interceptors: wardenClientInterceptors({ emitter: em, model: 'claims-llm', model_version: '2024-06', ...opts }) });
  return { em, connection, client };
}

describe('warden/temporal client interceptor (real protobuf requests, no server)', () => {
  it('start: stamps correlation ID from the caller scope, the active span trace context and model metadata; records workflow.started', async () => {
    const { em, connection, client } = setup();
    const input = { claim: 'C-7', password: 'hunter2', email: 'jane@example.com' };
    const tracer = trace.getTracer('test');
    let spanCtx!: ReturnType<ReturnType<typeof tracer.startSpan>['spanContext']>;
    const handle = await tracer.startActiveSpan('process claims', async (span) => {
      spanCtx = span.spanContext();
      try {
        return await withCorrelation('wc_JOB_42', () => client.workflow.start('claimWorkflow', { taskQueue: 'claims', workflowId: 'claim-C-7', args: [input] }));
      } finally { span.end(); }
    });
    const [req] = connection.of('StartWorkflowExecution');
    expect(req.workflowId).toBe('claim-C-7');
    const stamp = readStamp(fields(req.header))!;
    expect(stamp).toMatchObject({ cid: 'wc_JOB_42', tp: `00-${spanCtx.traceId}-${spanCtx.spanId}-01`, model: 'claims-llm', model_version: '2024-06', rec: 1 });
    expect(readTracerData(fields(req.header))?.traceparent).toBe(stamp.tp);

    expect(em.kinds()).toEqual(['workflow.started']);
    const ev = em.events[0];
    expect(ev).toMatchObject({
      source: 'temporal', correlation_id: 'wc_JOB_42', trace_id: spanCtx.traceId, span_id: workflowRunSpanId('claim-C-7', handle.firstExecutionRunId),
      queue: 'claims', job_name: 'claimWorkflow', workflow_id: 'claim-C-7', run_id: 'run-1', model: 'claims-llm', model_version: '2024-06',
    });
    expect(ev.attrs.parent_span_id).toBe(spanCtx.spanId);
    expect(ev.input_digest).toBe(sha256Hex(canonicalJson([input])));
    expect(JSON.stringify(ev.input)).not.toMatch(/hunter2|jane@example\.com/);
  });

  it('start outside any scope: a fresh correlation ID, trace derived from it, no traceparent invented', async () => {
    const { em, connection, client } = setup();
    await client.workflow.start('claimWorkflow', { taskQueue: 'claims', workflowId: 'claim-C-8', args: [{}] });
    const stamp = readStamp(fields(connection.of('StartWorkflowExecution')[0].header))!;
    expect(stamp.cid).toMatch(/^wc_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(stamp.tp).toBeUndefined();
    expect(em.events[0].trace_id).toBe(traceIdForCorrelation(stamp.cid));
  });

  it('model/policy versions from configured argument paths', async () => {
    const { em, connection, client } = setup({ model: undefined, model_version: undefined, argumentPaths: { model: '0.llm.name', policy_version: '0.policy' } });
    await client.workflow.start('claimWorkflow', { taskQueue: 'claims', workflowId: 'claim-C-9', args: [{ llm: { name: 'route-b' }, policy: 7 }] });
    expect(readStamp(fields(connection.of('StartWorkflowExecution')[0].header))).toMatchObject({ model: 'route-b', policy_version: '7' });
    expect(em.events[0]).toMatchObject({ model: 'route-b', policy_version: '7' });
  });

  it('signalWithStart, signal and update carry the header; each records what it sent', async () => {
    const { em, connection, client } = setup();
    await withCorrelation('wc_JOB_43', async () => {
      await client.workflow.signalWithStart('claimWorkflow', { taskQueue: 'claims', workflowId: 'claim-D-1', args: [{ id: 'D-1' }], signal: 'note', signalArgs: ['first'] });
      const handle = client.workflow.getHandle('claim-D-1');
      await handle.signal('approve', { actor: 'alice', reason: 'ok' });
      await handle.executeUpdate('setLimit', { args: [500] });
    });
    const sws = connection.of('SignalWithStartWorkflowExecution')[0];
    const sig = connection.of('SignalWorkflowExecution')[0];
    const upd = connection.of('UpdateWorkflowExecution')[0];
    // signalWithStart may reach a run that already exists: the client records the signal only (rec: 2),
    // and the workflow records its start if one really happened.
    expect(readStamp(fields(sws.header))).toMatchObject({ cid: 'wc_JOB_43', rec: 2, model: 'claims-llm' });
    for (const header of [sig.header, upd.request.input.header]) {
      expect(readStamp(fields(header))).toMatchObject({ cid: 'wc_JOB_43', rec: 1, model: 'claims-llm' });
    }
    expect(sig.signalName).toBe('approve');
    expect(upd.request.input.name).toBe('setLimit');
    expect(em.kinds()).toEqual(['signal.received', 'signal.received', 'signal.received']);
    expect(em.events.map((e) => e.attrs.signal_name ?? null)).toEqual(['note', 'approve', 'setLimit']);
    expect(em.events[2].attrs).toMatchObject({ message_type: 'update', update_id: upd.request.meta.updateId });
    for (const e of em.events) expect(e.correlation_id).toBe('wc_JOB_43');
  });

  it('update-with-start stamps both the start and the update; records the update, and leaves the start to the workflow', async () => {
    const { em, connection, client } = setup();
    const startWorkflowOperation = new WithStartWorkflowOperation('limitWorkflow', { workflowId: 'limit-1', taskQueue: 'claims', args: [500], workflowIdConflictPolicy: 'USE_EXISTING' });
    await withCorrelation('wc_JOB_44', () => client.workflow.executeUpdateWithStart('approve', { args: [{ actor: 'carol' }], startWorkflowOperation }));
    const [multi] = connection.of('ExecuteMultiOperation');
    const [start, update] = multi.operations;
    expect(readStamp(fields(start.startWorkflow.header))).toMatchObject({ cid: 'wc_JOB_44', rec: 2 });
    expect(readStamp(fields(update.updateWorkflow.request.input.header))).toMatchObject({ cid: 'wc_JOB_44', rec: 2 });
    // USE_EXISTING may have reused a run: no client-side workflow.started (the workflow records a real start).
    expect(em.kinds()).toEqual(['signal.received']);
    expect(em.events[0]).toMatchObject({ workflow_id: 'limit-1', run_id: 'run-1' });
    expect(em.events[0].attrs).toMatchObject({ message_type: 'update', signal_name: 'approve' });
  });

  it('a failing emitter never fails the call; a call the server rejects records nothing', async () => {
    const bad = new ThrowingEmitter();
    const connection = new RecordingConnection();
    const client = new Client({ connection, interceptors: wardenClientInterceptors({ emitter: bad }) });
    const handle = await client.workflow.start('w', { taskQueue: 'q', workflowId: 'x', args: [] });
    expect(handle.workflowId).toBe('x');
    expect(handle.firstExecutionRunId).toBe('run-1'); // the server's answer came back to the caller
    const [sent] = connection.of('StartWorkflowExecution');
    expect(readStamp(fields(sent.header))?.cid).toMatch(/^wc_/); // the call went out stamped, the emitter's throw swallowed
    expect(bad.calls).toBe(1);

    const em = new CollectingEmitter();
    const refusing = new RecordingConnection(() => { throw Object.assign(new Error('ALREADY_EXISTS'), { code: 6 }); });
    const c2 = new Client({ connection: refusing, interceptors: wardenClientInterceptors({ emitter: em }) });
    await expect(c2.workflow.start('w', { taskQueue: 'q', workflowId: 'x', args: [] })).rejects.toThrow();
    expect(em.events).toHaveLength(0);
  });
});
