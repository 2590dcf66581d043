/**
 * Workflows run by a real Temporal worker against a real server (test/e2e/temporal-real*.test.ts and
 * `npm run bench -- temporal`). Bundled into the sandbox: imports @temporalio/workflow and types only.
 */
import {
  ActivityFailure, ApplicationFailure, condition, continueAsNew, defineSignal, defineUpdate, executeChild, proxyActivities, setHandler,
} from '@temporalio/workflow';
import type { RealActivities } from './real-activities.js';

export interface Order { id: string; contact: string; amount: number }
export interface Approval { actor: string; reason: string; limit?: number; approved?: boolean }

/** The limit above which the update validator refuses an approval (it never reaches history). */
export const LIMIT_CAP = 1000;

const retrying = proxyActivities<RealActivities>({
  startToCloseTimeout: '20 seconds',
  retry: { initialInterval: '50 milliseconds', backoffCoefficient: 1, maximumAttempts: 5 },
});
const twice = proxyActivities<RealActivities>({
  startToCloseTimeout: '20 seconds',
  retry: { initialInterval: '50 milliseconds', backoffCoefficient: 1, maximumAttempts: 2 },
});

export const approveSignal = defineSignal<[Approval]>('approve');
export const approveLimitUpdate = defineUpdate<string, [Approval]>('approveLimit');

/**
 * Round 0: `charge` (fails twice, succeeds on the third attempt), `notify` (fails both of its two
 * attempts: a final failure the workflow survives), the `auditWorkflow` child, then continue-as-new.
 * Round 1: waits for an approval by signal and one by update (its validator refuses limits over
 * LIMIT_CAP), then completes.
 */
export async function orderWorkflow(order: Order, round = 0): Promise<{ round: number; approvedBy: string[]; limit: number }> {
  if (round === 0) {
    await retrying.charge(order);
    try {
      await twice.notify(order);
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
    }
    await executeChild(auditWorkflow, { args: [order.id], workflowId: `audit-${order.id}` });
    await continueAsNew<typeof orderWorkflow>(order, 1);
  }
  let signalled: Approval | undefined;
  let updated: Approval | undefined;
  setHandler(approveSignal, (a) => { signalled = a; });
  setHandler(approveLimitUpdate, (a) => { updated = a; return 'accepted'; }, {
    validator: (a) => { if ((a.limit ?? 0) > LIMIT_CAP) throw new Error(`limit ${a.limit} is over ${LIMIT_CAP}: needs a second approver`); },
  });
  await condition(() => signalled !== undefined && updated !== undefined);
  return { round, approvedBy: [signalled!.actor, updated!.actor], limit: updated!.limit ?? 0 };
}

/** The child: one activity. */
export async function auditWorkflow(orderId: string): Promise<string> {
  return retrying.archive(orderId);
}

/** Fails for good (a business rule), so the run has a failed workflow to count. */
export async function rejectedOrderWorkflow(order: Order): Promise<never> {
  throw ApplicationFailure.nonRetryable(`order ${order.id} refused: amount ${order.amount} too high`, 'OrderRefused');
}

/** Two activities in sequence (the bench's unit of work). */
export async function twoStepWorkflow(id: string): Promise<string> {
  const a = await retrying.archive(id);
  return retrying.archive(a);
}

/** One long activity (heartbeating) between two short ones: a worker can be killed inside it. */
export async function longWorkflow(id: string): Promise<string> {
  await retrying.archive(`${id}-a`);
  await proxyActivities<RealActivities>({ startToCloseTimeout: '60 seconds', heartbeatTimeout: '2 seconds', retry: { initialInterval: '50 milliseconds', maximumAttempts: 3 } }).slow(id);
  return retrying.archive(`${id}-b`);
}

/** Calls `embed` once, with a retry policy the breaker test watches (retries every 100 ms, many attempts). */
export async function embedWorkflow(text: string): Promise<number[]> {
  return proxyActivities<RealActivities>({
    startToCloseTimeout: '10 seconds',
    retry: { initialInterval: '100 milliseconds', backoffCoefficient: 1, maximumAttempts: 50 },
  }).embed(text);
}
