import { trace } from '@opentelemetry/api';
import { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { OpenTelemetryActivityInboundInterceptor, OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { wardenActivityInterceptors, wardenClientInterceptors } from '../../../hooks/temporal/index.js';
import { parseTraceparent, readStamp, readTracerData, TRACER_HEADER } from '../../../hooks/temporal/headers.js';
import { RecordingConnection } from '../../harness/temporal/connection.js';
import { CollectingEmitter, headerInjector, installOtel } from '../../harness/temporal/helpers.js';

let otel: ReturnType<typeof installOtel>;
beforeAll(() => { otel = installOtel(); });
afterAll(async () => { await otel.dispose(); });

const startHeaders = (c: RecordingConnection) => (c.of('StartWorkflowExecution')[0].header?.fields ?? {}) as Record<string, Payload>;
const info = { activityType: 'embed', activityId: 'a1', taskQueue: 'q', workflowType: 'W', workflowExecution: { workflowId: 'w1', runId: 'r1' } };
const logger = new DefaultLogger('ERROR');

describe('interop with @temporalio/interceptors-opentelemetry (_tracer-data)', () => {
  it('a _tracer-data header written by the official client interceptor is read: Warden activity spans and events join that trace', async () => {
    otel.exporter.reset();
    const connection = new RecordingConnection();
    const client = new Client({ connection, interceptors: { workflow: [new OpenTelemetryWorkflowClientInterceptor()] } });
    await client.workflow.start('W', { taskQueue: 'q', workflowId: 'w1', args: [] });
    const headers = startHeaders(connection);
    expect(headers[TRACER_HEADER]).toBeDefined();
    const official = otel.exporter.getFinishedSpans().find((s) => s.name.startsWith('StartWorkflow'))!;
    expect(readTracerData(headers)?.traceparent).toContain(official.spanContext().traceId);

    const em = new CollectingEmitter();
    otel.exporter.reset();
    await new MockActivityEnvironment(info as never, { interceptors: [headerInjector(headers), wardenActivityInterceptors({ emitter: em })], logger }).run(async () => 'ok');
    const span = otel.exporter.getFinishedSpans().find((s) => s.name === 'activity embed')!;
    expect(span.spanContext().traceId).toBe(official.spanContext().traceId);
    expect(span.parentSpanContext?.spanId).toBe(official.spanContext().spanId);
    expect(em.events[0].trace_id).toBe(official.spanContext().traceId);
  });

  it('Warden writes a _tracer-data header the official activity interceptor reads: its RunActivity span continues Warden\'s trace', async () => {
    otel.exporter.reset();
    const connection = new RecordingConnection();
    const client = new Client({ connection, interceptors: wardenClientInterceptors({ emitter: new CollectingEmitter() }) });
    let parent!: { traceId: string; spanId: string };
    await trace.getTracer('app').startActiveSpan('handle request', async (s) => {
      parent = { traceId: s.spanContext().traceId, spanId: s.spanContext().spanId };
      await client.workflow.start('W', { taskQueue: 'q', workflowId: 'w2', args: [] });
      s.end();
    });
    const headers = startHeaders(connection);
    expect(parseTraceparent(readTracerData(headers)?.traceparent)).toMatchObject(parent);

    otel.exporter.reset();
    await new MockActivityEnvironment(info as never, { interceptors: [headerInjector(headers), (ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx) })], logger }).run(async () => 'ok');
    const run = otel.exporter.getFinishedSpans().find((s) => s.name.startsWith('RunActivity'))!;
    expect(run.spanContext().traceId).toBe(parent.traceId);
    expect(run.parentSpanContext?.spanId).toBe(parent.spanId);
  });

  it('both client interceptors together: the official one owns _tracer-data, Warden stamps its own header, one trace', async () => {
    otel.exporter.reset();
    const connection = new RecordingConnection();
    const client = new Client({ connection, interceptors: wardenClientInterceptors({ emitter: new CollectingEmitter() }, { workflow: [new OpenTelemetryWorkflowClientInterceptor()] }) });
    await trace.getTracer('app').startActiveSpan('handle request', async (s) => {
      await client.workflow.start('W', { taskQueue: 'q', workflowId: 'w3', args: [] });
      s.end();
    });
    const headers = startHeaders(connection);
    const official = otel.exporter.getFinishedSpans().find((s) => s.name.startsWith('StartWorkflow'))!;
    expect(parseTraceparent(readTracerData(headers)?.traceparent)?.spanId).toBe(official.spanContext().spanId);
    expect(parseTraceparent(readStamp(headers)?.tp)?.traceId).toBe(official.spanContext().traceId);
  });
});
