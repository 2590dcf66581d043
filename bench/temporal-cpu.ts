/**
 * `npm run bench -- temporal-cpu`: what Warden's Temporal hooks cost per workflow in CPU time, a figure
 * that holds on a loaded machine (wall-clock throughput does not: other processes' load moves it more
 * than the hooks do). A real Temporal dev server (its own process, not measured) and, in this process,
 * a client and a worker running `twoStepWorkflow` (two activities). `process.cpuUsage()` around each
 * round counts every thread of this process: the client, the worker's JS (activities, the workflow
 * sandbox, sinks) and the SDK's Rust core.
 *
 * Variants, interleaved in rounds on fresh workers and task queues: none; Warden's client interceptor
 * alone; the workflow module with its sink alone; the activity interceptor alone; all of Warden; the
 * official OpenTelemetry interceptors. Events go to a counting emitter (the outbox and transport are
 * the sidecar scenarios' business); the same OTel SDK (no-op span processor) is installed for all.
 */
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Client, Connection, type WorkflowClientInterceptor } from '@temporalio/client';
import { makeWorkflowExporter, OpenTelemetryActivityInboundInterceptor, OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import { DefaultLogger, NativeConnection, Runtime, Worker, type WorkerOptions, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { HookEmitter } from '../hooks/emitter.js';
import { wardenClientInterceptors, wardenWorker } from '../hooks/temporal/index.js';
import { startTemporal } from '../test/harness/temporal.js';
import { realActivities } from '../test/harness/temporal/real-activities.js';
import { bundleRealWorkflows, type Instrumentation } from '../test/harness/temporal/real-flow.js';
import { DEFAULT_OPTIONS, median, printSummary, ratio, round, scaled, type ScenarioOptions, type ScenarioResult } from './lib/report.js';

const WORKFLOWS = 60;
const ROUNDS = 3;

type Variant = 'none' | 'wardenClient' | 'wardenWorkflow' | 'wardenActivity' | 'warden' | 'official';
const VARIANTS: Variant[] = ['none', 'wardenClient', 'wardenWorkflow', 'wardenActivity', 'warden', 'official'];
const BUNDLE: Record<Variant, Extract<Instrumentation, 'none' | 'official' | 'warden'>> = {
  none: 'none', wardenClient: 'none', wardenWorkflow: 'warden', wardenActivity: 'none', warden: 'warden', official: 'official',
};

class CountingEmitter implements HookEmitter {
  n = 0;
  emit(): void { this.n++; }
}

export interface CpuFigures {
  workflowsPerVariantPerRound: number;
  rounds: number;
  /** Median CPU microseconds (user + system, this process) per workflow. */
  cpuMicrosPerWorkflow: Record<Variant, number>;
  /** Median wall-clock workflows/s (load-dependent; for reference). */
  workflowsPerSec: Record<Variant, number>;
  wardenEventsEmitted: number;
}

export async function measureCpu(workflows: number, rounds: number, opts: ScenarioOptions): Promise<CpuFigures> {
  try { Runtime.install({ logger: new DefaultLogger('ERROR') }); } catch { /* installed already in this process */ }
  const server = await startTemporal();
  const emitter = new CountingEmitter();
  const processor = new NoopSpanProcessor();
  try {
    const bundles = new Map<string, WorkflowBundleWithSourceMap>();
    for (const b of new Set(Object.values(BUNDLE))) bundles.set(b, await bundleRealWorkflows(b));
    const connection = await Connection.connect({ address: server.address });
    const native = await NativeConnection.connect({ address: server.address });
    const wardenClient = wardenClientInterceptors({ emitter }).workflow as WorkflowClientInterceptor[];
    const client: Record<Variant, WorkflowClientInterceptor[]> = {
      none: [], wardenClient, wardenWorkflow: [], wardenActivity: [], warden: wardenClient, official: [new OpenTelemetryWorkflowClientInterceptor()],
    };
    const worker = (v: Variant): Pick<WorkerOptions, 'interceptors' | 'sinks'> => {
      const { interceptors: { workflowModules: _inBundle, ...interceptors }, sinks } = wardenWorker({ emitter });
      switch (v) {
        case 'none': case 'wardenClient': return {};
        case 'wardenWorkflow': return { sinks: sinks as never };
        case 'wardenActivity': return { interceptors };
        case 'warden': return { interceptors, sinks: sinks as never };
        case 'official': return {
          interceptors: { activity: [(ctx) => ({ inbound: new OpenTelemetryActivityInboundInterceptor(ctx) })] },
          sinks: { exporter: makeWorkflowExporter(processor as never, resourceFromAttributes({ 'service.name': 'bench' }) as never) } as never,
        };
      }
    };
    const once = async (v: Variant, tag: string, n: number): Promise<{ cpuUs: number; perSec: number }> => {
      const taskQueue = `cpu-${v}-${tag}`;
      const c = new Client({ connection, namespace: server.namespace, interceptors: { workflow: client[v] } });
      const w = await Worker.create({ connection: native, namespace: server.namespace, taskQueue, workflowBundle: bundles.get(BUNDLE[v])!, activities: realActivities(), ...worker(v) });
      let cpuUs = 0;
      let ms = 0;
      await w.runUntil(async () => {
        const cpu = process.cpuUsage();
        const t = performance.now();
        const handles = await Promise.all(Array.from({ length: n }, (_, i) => c.workflow.start('twoStepWorkflow', { taskQueue, workflowId: `${taskQueue}-${i}`, args: [`w${i}`] })));
        await Promise.all(handles.map((h) => h.result()));
        ms = performance.now() - t;
        const used = process.cpuUsage(cpu);
        cpuUs = used.user + used.system;
      });
      return { cpuUs: cpuUs / n, perSec: (n / ms) * 1000 };
    };

    opts.log(`CPU per workflow (this process: client + worker + SDK core): ${workflows} workflows per variant per round, ${rounds} rounds interleaved (median)`);
    for (const v of VARIANTS) await once(v, 'warm', Math.max(2, Math.ceil(workflows / 4)));
    const cpu = new Map<Variant, number[]>(VARIANTS.map((v) => [v, []]));
    const rate = new Map<Variant, number[]>(VARIANTS.map((v) => [v, []]));
    for (let r = 0; r < rounds; r++) {
      for (const v of VARIANTS) {
        const x = await once(v, `r${r}`, workflows);
        cpu.get(v)!.push(x.cpuUs);
        rate.get(v)!.push(x.perSec);
      }
    }
    const cpuMicrosPerWorkflow = Object.fromEntries(VARIANTS.map((v) => [v, Math.round(median(cpu.get(v)!))])) as Record<Variant, number>;
    const workflowsPerSec = Object.fromEntries(VARIANTS.map((v) => [v, round(median(rate.get(v)!), 1)])) as Record<Variant, number>;
    for (const v of VARIANTS) {
      opts.log(`${v.padEnd(15)} ${String(cpuMicrosPerWorkflow[v]).padStart(7)} µs CPU/workflow  +${String(cpuMicrosPerWorkflow[v] - cpuMicrosPerWorkflow.none).padStart(6)} vs none  none/this ${(cpuMicrosPerWorkflow.none / cpuMicrosPerWorkflow[v]).toFixed(3)}   (${workflowsPerSec[v]} workflows/s; rounds ${cpu.get(v)!.map((x) => Math.round(x)).join(', ')})`);
    }
    await native.close();
    await connection.close();
    return { workflowsPerVariantPerRound: workflows, rounds, cpuMicrosPerWorkflow, workflowsPerSec, wardenEventsEmitted: emitter.n };
  } finally {
    await server.dispose();
  }
}

export async function run(opts: ScenarioOptions = DEFAULT_OPTIONS): Promise<ScenarioResult> {
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new NoopSpanProcessor()] }));
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const f = await measureCpu(scaled(WORKFLOWS, opts, 4), opts.scale < 1 ? 1 : ROUNDS, opts);
  const c = f.cpuMicrosPerWorkflow;
  // CPU-bound throughput scales with 1 / CPU per workflow: none's CPU over Warden's is the throughput ratio it allows.
  const cpuRatio = ratio(c.none, c.warden);
  const result: ScenarioResult = {
    figures: { ...f, wardenAddedCpuMicrosPerWorkflow: c.warden - c.none },
    ratios: {
      'none / warden CPU per workflow (throughput ratio CPU allows)': cpuRatio,
      'none / official CPU per workflow': ratio(c.none, c.official),
      'none / warden client only': ratio(c.none, c.wardenClient),
      'none / warden workflow module + sink only': ratio(c.none, c.wardenWorkflow),
      'none / warden activity interceptor only': ratio(c.none, c.wardenActivity),
    },
    targets: [{
      target: "Warden's workflow throughput >= 0.9 of no interceptors (as CPU per workflow in the worker process)",
      met: f.workflowsPerVariantPerRound >= 50 ? cpuRatio >= 0.9 : null,
      detail: `CPU µs/workflow none ${c.none}, warden ${c.warden} (client ${c.wardenClient}, workflow ${c.wardenWorkflow}, activity ${c.wardenActivity}), official ${c.official}`,
    }],
    notes: [
      'process.cpuUsage() of the bench process (client, worker JS, workflow sandbox, SDK Rust core threads) around each round; the Temporal server runs in its own process and is not counted',
      "Warden's events go to a counting emitter (outbox and transport not measured); same OTel SDK for all (no-op span processor)",
    ],
  };
  printSummary(result, opts.log);
  return result;
}
