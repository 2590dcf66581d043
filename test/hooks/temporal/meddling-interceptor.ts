/** Test-only: what Warden must never do. Adds a timer before the workflow runs, changing its commands. */
import { sleep, type WorkflowInterceptorsFactory } from '@temporalio/workflow';

export const interceptors: WorkflowInterceptorsFactory = () => ({
  inbound: [{ async execute(input, next) { await sleep(1); return next(input); } }],
});
