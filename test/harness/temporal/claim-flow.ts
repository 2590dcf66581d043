/**
 * The claim scenario the stitching tests share. An `intake` BullMQ job starts `claimWorkflow`
 * (workflows.ts) and queues a review job on `approvals`, whose processor sends the human approval
 * signal. The workflow scores the claim, runs a fraud check as a child, waits for the approval, then
 * pays. No Temporal server runs here: the workflow replays histories built from the client's real
 * requests, and activities run in MockActivityEnvironment with the headers the workflow handed them.
 */
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Worker as TemporalWorker, type ActivityInterceptorsFactory, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { WorkflowInfo } from '@temporalio/workflow';
import { Queue, Worker, type ConnectionOptions, type Job } from 'bullmq';
import type { temporal } from '@temporalio/proto';
import { wardenProcessor, withWarden } from '../../../hooks/bullmq/index.js';
import { WARDEN_WORKFLOW_MODULE } from '../../../hooks/temporal/index.js';
import type { WorkflowRecord } from '../../../hooks/temporal/records.js';
import { headerInjector } from './helpers.js';

const here = (f: string) => fileURLToPath(new URL(f, import.meta.url));

export const CLAIM = { id: 'C-7', contact: 'jane@example.com' };
export const APPROVAL = { actor: 'alice', reason: 'documents verified' };
export const WORKFLOW_ID = `claim-${CLAIM.id}`;
export const CHILD_ID = `fraud-${CLAIM.id}`;
/** The run IDs: RecordingConnection answers the first start with `run-1`. */
export const RUN = 'run-1';
export const CHILD_RUN = 'child-run';
export const TASK_QUEUE = 'claims';

/** The two wrapped queues and their workers; each worker starts when the scenario wants it to. */
export function claimQueues(connection: ConnectionOptions, client: Client) {
  const intake = withWarden(new Queue('intake', { connection }), { model: 'claims-llm', model_version: '2024-06' });
  const approvals = withWarden(new Queue('approvals', { connection }));
  const workers: Worker[] = [];
  return {
    intake,
    approvals,
    /** Starts the workflow for the claim, then queues its review (both inherit the job's correlation ID). */
    startIntakeWorker(): Worker {
      const w = new Worker('intake', wardenProcessor(async (job: Job) => {
        await client.workflow.start('claimWorkflow', { taskQueue: TASK_QUEUE, workflowId: `claim-${job.data.id}`, args: [job.data] });
        await approvals.add('review', { workflowId: `claim-${job.data.id}` });
      }), { connection });
      workers.push(w);
      return w;
    },
    /** The reviewer: approves the claim by signal. */
    startApprovalsWorker(): Worker {
      const w = new Worker('approvals', wardenProcessor(async (job: Job) => {
        await client.workflow.getHandle(job.data.workflowId).signal('approve', APPROVAL);
      }), { connection });
      workers.push(w);
      return w;
    },
    async close(): Promise<void> {
      await Promise.all(workers.map((w) => w.close()));
      await Promise.all([intake.close(), approvals.close()]);
    },
  };
}

export function bundleClaimWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({
    workflowsPath: here('./workflows.ts'),
    workflowInterceptorModules: [WARDEN_WORKFLOW_MODULE, here('./header-probe.ts')],
    logger: new DefaultLogger('WARN'),
  });
}

/** A command the workflow issued, with the headers Warden stamped on it (seen by header-probe.ts). */
export interface IssuedCommand { command: string; target: string; headers: Record<string, Payload> }

export type RecordSinkFn = (info: WorkflowInfo, rec: WorkflowRecord) => void;

/**
 * Replays `history` with Warden's workflow module; `record` gets what the workflow hands Warden's
 * sink. Returns the commands the workflow issued.
 *
 * `callDuringReplay: true`: `Worker.runReplayHistory` calls only sinks marked so, even for a last
 * workflow task that is new work (measured: a `callDuringReplay: false` sink is never called, though
 * the activation reports `isReplaying: false`). These replays stand in for a live worker's first
 * execution, where Warden's sink (`callDuringReplay: false`) is called once per new record.
 */
export async function replay(bundle: WorkflowBundleWithSourceMap, history: temporal.api.history.v1.IHistory, workflowId: string, record: RecordSinkFn): Promise<IssuedCommand[]> {
  const commands: IssuedCommand[] = [];
  const sinks = {
    warden: { record: { fn: record, callDuringReplay: true } },
    probe: { headers: { fn: (_i: WorkflowInfo, command: string, target: string, headers: Record<string, Payload>) => { commands.push({ command, target, headers }); }, callDuringReplay: true } },
  };
  await TemporalWorker.runReplayHistory({ workflowBundle: bundle, sinks: sinks as never }, history, workflowId);
  return commands;
}

/** Runs the activity a command scheduled, with the headers the workflow gave it, under `interceptors`. */
export async function runActivity(cmd: IssuedCommand, interceptors: ActivityInterceptorsFactory, result: unknown = 'done'): Promise<void> {
  const info = { activityType: cmd.target, activityId: cmd.target, taskQueue: TASK_QUEUE, workflowType: 'claimWorkflow', workflowExecution: { workflowId: WORKFLOW_ID, runId: RUN } };
  await new MockActivityEnvironment(info as never, { interceptors: [headerInjector(cmd.headers), interceptors], logger: new DefaultLogger('ERROR') }).run(async () => result);
}
