/**
 * A Temporal worker process with Warden's hooks, for tests that kill it (`kill -9`) mid-workflow.
 * Built to dist/test/harness/temporal/real-worker-main.js and run with plain `node`. Configured by
 * environment: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TASK_QUEUE, WARDEN_NATS_URL, WORKFLOW_BUNDLE (a
 * file holding bundled code with Warden's workflow module), SLOW_MS (how long `slow` runs).
 * Prints `worker running` once polling, `slow started <attempt>` when the slow activity starts.
 */
import { readFileSync } from 'node:fs';
import { Context } from '@temporalio/activity';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { configureWarden, wardenWorker } from '../../../hooks/temporal/index.js';
import { realActivities } from './real-activities.js';

const env = (k: string): string => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is required`);
  return v;
};

Runtime.install({ logger: new DefaultLogger('WARN') });
const warden = configureWarden({ nats: { url: env('WARDEN_NATS_URL') } });
const control = {
  embedDown: false, embedCalls: 0, slowMs: Number(process.env.SLOW_MS ?? 500),
  onSlowStart: () => console.log(`slow started ${Context.current().info.attempt}`),
};
const parts = wardenWorker();
const { workflowModules: _inBundle, ...interceptors } = parts.interceptors;
const connection = await NativeConnection.connect({ address: env('TEMPORAL_ADDRESS') });
const worker = await Worker.create({
  connection, namespace: env('TEMPORAL_NAMESPACE'), taskQueue: env('TASK_QUEUE'),
  workflowBundle: { code: readFileSync(env('WORKFLOW_BUNDLE'), 'utf8') },
  activities: realActivities(control), interceptors, sinks: parts.sinks,
});
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.once(sig, () => worker.shutdown());
console.log('worker running');
await worker.run();
await warden.close(2000);
await connection.close();
