/** A real Temporal worker with NO Warden interceptors, running workflows.ts; and a spool reader. */
import { fileURLToPath } from 'node:url';
import { Context } from '@temporalio/activity';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';

export const TASK_QUEUE = 'history-collector';

let runtimeInstalled = false;
function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try { Runtime.install({ logger: new DefaultLogger('ERROR') }); } catch { /* installed already */ }
}

export function bundle(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: fileURLToPath(new URL('./workflows.ts', import.meta.url)), logger: new DefaultLogger('WARN') });
}

export const activities = {
  async flaky(key: string): Promise<string> {
    const { attempt } = Context.current().info;
    if (attempt < 3) throw new Error(`flaky ${key} attempt ${attempt} (contact jane@example.com)`);
    return `ok ${key}`;
  },
  async doomed(key: string): Promise<string> {
    throw new Error(`doomed ${key} for good`);
  },
  async echo(v: string): Promise<string> {
    return v;
  },
};

/** A plain worker (no interceptors) and a client, both on `address`. */
export async function plainWorker(address: string, workflowBundle: WorkflowBundleWithSourceMap) {
  quietRuntime();
  const nc = await NativeConnection.connect({ address });
  const worker = await Worker.create({ connection: nc, namespace: 'default', taskQueue: TASK_QUEUE, workflowBundle, activities });
  const running = worker.run();
  const conn = await Connection.connect({ address });
  const client = new Client({ connection: conn, namespace: 'default' });
  return {
    client,
    conn,
    async close(): Promise<void> {
      worker.shutdown();
      await running;
      await nc.close();
      await conn.close();
    },
  };
}
