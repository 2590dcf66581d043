/**
 * A real Temporal worker for real-workflows.ts, and the two views the real-server tests compare: what
 * the server's history says happened to each run, and what Warden's ledger says.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { WardenEvent } from '../../../core/event.js';
import { WARDEN_WORKFLOW_MODULE } from '../../../hooks/temporal/index.js';

const here = (f: string): string => {
  const js = fileURLToPath(new URL(`./${f}.js`, import.meta.url));
  return existsSync(js) ? js : fileURLToPath(new URL(`./${f}.ts`, import.meta.url));
};

/** The official OpenTelemetry workflow interceptor module (@temporalio/interceptors-opentelemetry). */
export const OFFICIAL_WORKFLOW_MODULE = createRequire(import.meta.url).resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

/** Which interceptor modules go into the bundle. */
export type Instrumentation = 'none' | 'official' | 'warden' | 'both';

export function realWorkflowModules(which: Instrumentation): string[] {
  return { none: [], official: [OFFICIAL_WORKFLOW_MODULE], warden: [WARDEN_WORKFLOW_MODULE], both: [WARDEN_WORKFLOW_MODULE, OFFICIAL_WORKFLOW_MODULE] }[which];
}

export function bundleRealWorkflows(which: Instrumentation): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: here('real-workflows'), workflowInterceptorModules: realWorkflowModules(which), logger: new DefaultLogger('WARN') });
}

/** Path of the worker script run as a child process (built to dist/ with the rest of test/harness). */
export const WORKER_MAIN = here('real-worker-main');

// ---------------------------------------------------------------- the two views

/** One activity of one run: its type, the attempt that ended it, and how. */
export interface ActivityView { type: string; finalAttempt: number; outcome: 'completed' | 'failed' | 'open' }

/** One run as history or the ledger tells it. */
export interface RunView {
  workflowType: string;
  started: number;
  closed: 'completed' | 'continued_as_new' | 'failed' | 'open';
  /** By activity ID. */
  activities: Record<string, ActivityView>;
  signals: string[];
  /** Accepted updates: `name:updateId`. */
  updates: string[];
}

// @temporalio/proto is CommonJS: no named import when this runs from dist/ under plain node (the bench).
const ET = (createRequire(import.meta.url)('@temporalio/proto') as { temporal: typeof temporal }).temporal.api.enums.v1.EventType;
const num = (v: unknown): number => Number(String(v ?? 0));

/** The server's history of one run, reduced to a RunView. */
export async function historyView(handle: WorkflowHandle): Promise<RunView> {
  const history = await handle.fetchHistory();
  const view: RunView = { workflowType: '', started: 0, closed: 'open', activities: {}, signals: [], updates: [] };
  const scheduled = new Map<number, string>();
  for (const e of history.events ?? []) {
    const id = num(e.eventId);
    switch (e.eventType) {
      case ET.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        view.started++;
        view.workflowType = e.workflowExecutionStartedEventAttributes!.workflowType!.name!;
        break;
      case ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: view.closed = 'completed'; break;
      case ET.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: view.closed = 'continued_as_new'; break;
      case ET.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: view.closed = 'failed'; break;
      case ET.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: {
        const a = e.activityTaskScheduledEventAttributes!;
        scheduled.set(id, a.activityId!);
        view.activities[a.activityId!] = { type: a.activityType!.name!, finalAttempt: 0, outcome: 'open' };
        break;
      }
      // One Started event per activity, written when it closes, holding the last attempt (not one per attempt).
      case ET.EVENT_TYPE_ACTIVITY_TASK_STARTED: {
        const a = e.activityTaskStartedEventAttributes!;
        view.activities[scheduled.get(num(a.scheduledEventId))!].finalAttempt = a.attempt!;
        break;
      }
      case ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        view.activities[scheduled.get(num(e.activityTaskCompletedEventAttributes!.scheduledEventId))!].outcome = 'completed';
        break;
      case ET.EVENT_TYPE_ACTIVITY_TASK_FAILED:
        view.activities[scheduled.get(num(e.activityTaskFailedEventAttributes!.scheduledEventId))!].outcome = 'failed';
        break;
      case ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        view.signals.push(e.workflowExecutionSignaledEventAttributes!.signalName!);
        break;
      case ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED: {
        const req = e.workflowExecutionUpdateAcceptedEventAttributes!.acceptedRequest!;
        view.updates.push(`${req.input!.name}:${req.meta!.updateId}`);
        break;
      }
      default:
    }
  }
  return view;
}

/** Ledger events of one run (workflow records and activity attempts; the client's receipts left out). */
export function ledgerView(events: WardenEvent[], workflowId: string, runId: string): RunView {
  const mine = events.filter((e) => e.source === 'temporal' && e.workflow_id === workflowId && e.run_id === runId);
  const view: RunView = { workflowType: '', started: 0, closed: 'open', activities: {}, signals: [], updates: [] };
  for (const e of mine) {
    switch (e.kind) {
      case 'workflow.started': view.started++; view.workflowType = e.job_name ?? ''; break;
      case 'workflow.completed': view.closed = e.attrs.continued_as_new ? 'continued_as_new' : 'completed'; break;
      case 'workflow.failed': view.closed = 'failed'; break;
      case 'activity.started': case 'activity.attempt_failed': case 'activity.completed': case 'activity.failed': {
        const id = String(e.attrs.activity_id);
        const a = (view.activities[id] ??= { type: e.activity_type ?? '', finalAttempt: 0, outcome: 'open' });
        a.finalAttempt = Math.max(a.finalAttempt, e.attempt ?? 0);
        if (e.kind === 'activity.completed') a.outcome = 'completed';
        if (e.kind === 'activity.failed') a.outcome = 'failed';
        break;
      }
      case 'approval.granted': case 'approval.denied': case 'signal.received':
        if (e.attrs.recorded_by === 'client') break;
        if (e.attrs.message_type === 'signal') view.signals.push(String(e.attrs.signal_name));
        else if (e.attrs.update_outcome !== 'rejected') view.updates.push(`${e.attrs.signal_name}:${e.attrs.update_id}`);
        break;
      default:
    }
  }
  return view;
}

/** Per activity attempt (`activityId#attempt`), the kinds the ledger holds for it, in order. */
export function attemptsOf(events: WardenEvent[], workflowId: string, runId: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const e of events) {
    if (e.source !== 'temporal' || e.workflow_id !== workflowId || e.run_id !== runId || !e.activity_type) continue;
    (out[`${e.attrs.activity_id}#${e.attempt}`] ??= []).push(e.kind);
  }
  return out;
}
