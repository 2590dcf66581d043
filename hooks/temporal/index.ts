/**
 * `warden/temporal`: Temporal client and worker hooks, one line each:
 *
 *   const client = new Client({ connection, interceptors: wardenClientInterceptors() });
 *   const worker = await Worker.create({ connection, taskQueue, workflowsPath, activities, ...wardenWorker({ breakers }) });
 *
 * The worker part is the activity interceptor, the workflow interceptor module (bundled into the
 * sandbox; see ./workflow.ts) and the sink its records leave the sandbox through.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ClientInterceptors } from '@temporalio/client';
import type { InjectedSinks, WorkerInterceptors } from '@temporalio/worker';
import { activityInterceptorsFor } from './activity.js';
import { WardenWorkflowClientInterceptor } from './client.js';
import { resolveOptions, WardenTemporalConfigError, type WardenTemporalOptions } from './options.js';
import type { WardenWorkflowSinks } from './records.js';
import { wardenSinksFor } from './sinks.js';

/**
 * Absolute path of the workflow interceptor module, for `interceptors.workflowModules` or
 * `bundleWorkflowCode({ workflowInterceptorModules })`. Temporal's bundler compiles .ts, so the
 * source works too (tests run from source).
 */
export const WARDEN_WORKFLOW_MODULE: string = (() => {
  const js = fileURLToPath(new URL('./workflow.js', import.meta.url));
  return existsSync(js) ? js : fileURLToPath(new URL('./workflow.ts', import.meta.url));
})();

/** `new Client({ connection, interceptors: wardenClientInterceptors() })`. */
export function wardenClientInterceptors(options: WardenTemporalOptions = {}, existing: ClientInterceptors = {}): ClientInterceptors {
  const mine = new WardenWorkflowClientInterceptor(resolveOptions(options));
  const workflow = existing.workflow;
  if (workflow && !Array.isArray(workflow)) {
    throw new WardenTemporalConfigError('wardenClientInterceptors: existing.workflow uses the deprecated WorkflowClientInterceptors object form; pass an array of interceptors');
  }
  return { ...existing, workflow: [mine, ...(workflow ?? [])] };
}

export interface WardenWorkerParts {
  interceptors: WorkerInterceptors;
  sinks: InjectedSinks<WardenWorkflowSinks>;
}

/**
 * Spread into `Worker.create` (or `Worker.runReplayHistory`) options. Pass the worker's own
 * interceptors/sinks as `existing` to keep them: Warden's come first, so its spans are the parents.
 */
export function wardenWorker(options: WardenTemporalOptions = {}, existing: { interceptors?: WorkerInterceptors; sinks?: object } = {}): WardenWorkerParts {
  const r = resolveOptions(options);
  const ex = existing.interceptors ?? {};
  return {
    interceptors: {
      ...ex,
      activity: [activityInterceptorsFor(r), ...(ex.activity ?? [])],
      workflowModules: [WARDEN_WORKFLOW_MODULE, ...(ex.workflowModules ?? [])],
    },
    sinks: { ...(existing.sinks ?? {}), ...wardenSinksFor(r) } as InjectedSinks<WardenWorkflowSinks>,
  };
}

/** The activity interceptor alone (e.g. for MockActivityEnvironment). */
export function wardenActivityInterceptors(options: WardenTemporalOptions = {}) {
  return activityInterceptorsFor(resolveOptions(options));
}

/** The workflow sink alone (for a worker that bundles the workflow module itself). */
export function wardenSinks(options: WardenTemporalOptions = {}): InjectedSinks<WardenWorkflowSinks> {
  return wardenSinksFor(resolveOptions(options));
}

// The public surface: what the README documents, with its option types and errors. Everything else
// (header codecs, sink records) is internal; tests import it by path.
export { BREAKER_FAILURE_TYPE } from './activity.js';
export { WardenTemporalConfigError, type WardenTemporalOptions, type WardenTemporalMetadata, type ArgumentPaths, type ApprovalDecision } from './options.js';
export type { WardenWorkflowSinks } from './records.js';
export { withCorrelation, currentCorrelationId } from '../correlation.js';
// The transport to the sidecar and the breaker view, so a worker needs only this entry point.
export { configureWarden, watchBreakers, WardenTransportConfigError, type ConfigureWardenOptions, type WardenHandle, type WatchBreakersOptions } from '../transport/index.js';
export { MapBreakerView, breakerKey, type BreakerView, type BreakerStatus } from '../../core/breakers.js';
