/** Workflows the history collector tests run on a real worker (bundled: imports @temporalio/workflow only). */
import { proxyActivities } from '@temporalio/workflow';

const { flaky, doomed, echo } = proxyActivities<{
  flaky(key: string): Promise<string>;
  doomed(key: string): Promise<string>;
  echo(v: string): Promise<string>;
}>({ startToCloseTimeout: '30 seconds', retry: { initialInterval: '50 milliseconds', backoffCoefficient: 1, maximumAttempts: 3 } });

/** Its activity fails twice, then succeeds on the third attempt. */
export async function retryWorkflow(key: string): Promise<string> {
  return flaky(key);
}

/** Its activity fails every attempt (3), so the workflow fails for good. */
export async function failingWorkflow(key: string): Promise<string> {
  return doomed(key);
}

/** One activity that succeeds at once. */
export async function simpleWorkflow(v: string): Promise<string> {
  return echo(v);
}
