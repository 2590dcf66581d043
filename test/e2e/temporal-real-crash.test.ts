/**
 * Replay safety on a real worker: a worker process (Warden's hooks, NATS transport) is killed with
 * SIGKILL while a workflow's activity runs, and a new worker process takes over. The workflow
 * completes without a nondeterminism error; the ledger holds every record once (the new worker
 * replays the history, and re-sent records keep their IDs), nothing is missing, and it matches the
 * server's history. The killed attempt is in the ledger as started and never ended, as it was.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../core/event.js';
import { Spool } from '../../ledger/spool/spool.js';
import {
  ManagedProcess, startNats, startRedis, startTemporal, tempDir, until,
  type NatsServer, type RedisServer, type TempDir, type TemporalServer,
} from '../harness/index.js';
import { startSidecarProcess, type SidecarProcess } from '../harness/sidecar.js';
import { attemptsOf, bundleRealWorkflows, historyView, ledgerView } from '../harness/temporal/real-flow.js';

const TASK_QUEUE = 'long-jobs';
const WORKER = resolve('dist/test/harness/temporal/real-worker-main.js');

let temporalServer: TemporalServer;
let nats: NatsServer;
let redis: RedisServer;
let dir: TempDir;
let sidecar: SidecarProcess;
let worker: ManagedProcess | undefined;
let bundlePath: string;

beforeAll(async () => {
  let code: string;
  [temporalServer, nats, redis, dir, { code }] = await Promise.all([startTemporal(), startNats(), startRedis(), tempDir('warden-temporal-crash'), bundleRealWorkflows('warden')]);
  bundlePath = join(dir.path, 'workflows.js');
  writeFileSync(bundlePath, code);
  sidecar = await startSidecarProcess({ redisUrl: redis.url, dataDir: join(dir.path, 'side'), queues: ['unused'], env: { WARDEN_NATS_URL: nats.url, WARDEN_CLICKHOUSE: 'off' } });
}, 180_000);

afterAll(async () => {
  await worker?.stop();
  await sidecar?.proc.stop();
  await Promise.all([temporalServer?.dispose(), nats?.dispose(), redis?.dispose()]);
  await dir?.cleanup();
});

async function ledger(): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const rec of Spool.read(join(dir.path, 'side', 'data'))) out.push(rec.event);
  return out;
}

/** The worker process; `slowMs` is how long its `slow` activity runs. */
function startWorker(name: string, slowMs: number): Promise<ManagedProcess> {
  const logDir = join(dir.path, name);
  mkdirSync(logDir, { recursive: true });
  return ManagedProcess.start({
    name: 'worker', command: process.execPath, args: [WORKER], dir: logDir, cwd: process.cwd(),
    env: {
      PATH: process.env.PATH, TEMPORAL_ADDRESS: temporalServer.address, TEMPORAL_NAMESPACE: temporalServer.namespace,
      TASK_QUEUE, WARDEN_NATS_URL: nats.url, WORKFLOW_BUNDLE: bundlePath, SLOW_MS: String(slowMs),
    },
    ready: async () => logOf(logDir).includes('worker running'),
    readyTimeoutMs: 30_000,
    stopGraceMs: 5_000,
  });
}

const logOf = (logDir: string): string => {
  try { return readFileSync(join(logDir, 'worker.log'), 'utf8'); } catch { return ''; }
};

describe('a real worker killed mid-workflow and restarted', () => {
  it('completes without nondeterminism; the ledger has every record once and matches history', async () => {
    const connection = await Connection.connect({ address: temporalServer.address });
    // A client without Warden: the workflow records its own start (a record the new worker replays past).
    const client = new Client({ connection, namespace: temporalServer.namespace });
    worker = await startWorker('w1', 120_000);
    const wid = 'long-1';
    const handle = await client.workflow.start('longWorkflow', { taskQueue: TASK_QUEUE, workflowId: wid, args: ['job-1'] });
    const runId = handle.firstExecutionRunId;

    // Mid-workflow: `slow` runs and its start reached the sidecar. Then the worker dies.
    await until(async () => (await ledger()).some((e) => e.kind === 'activity.started' && e.activity_type === 'slow' && e.run_id === runId), 30_000, 'slow activity started');
    await worker.kill9();
    const firstLog = logOf(join(dir.path, 'w1'));
    expect(firstLog).toContain('slow started 1');

    // A new worker process: the heartbeat timeout (2 s) ends the lost attempt, the next one runs here.
    worker = await startWorker('w2', 300);
    await expect(handle.result()).resolves.toBe('archived-job-1-b');
    await worker.stop();
    const secondLog = logOf(join(dir.path, 'w2'));
    expect(secondLog).toContain('slow started 2');
    expect(`${firstLog}\n${secondLog}`).not.toMatch(/nondetermin|TMPRL1100/i);

    const history = await historyView(client.workflow.getHandle(wid, runId));
    expect(history).toMatchObject({ workflowType: 'longWorkflow', started: 1, closed: 'completed' });
    expect(Object.values(history.activities)).toEqual([
      { type: 'archive', finalAttempt: 1, outcome: 'completed' }, { type: 'slow', finalAttempt: 2, outcome: 'completed' }, { type: 'archive', finalAttempt: 1, outcome: 'completed' },
    ]);
    const expected = 2 /* start, end */ + 2 + 1 + 2 + 2 /* archive, slow#1 (no end), slow#2, archive */;
    let events: WardenEvent[] = [];
    await until(async () => {
      events = (await ledger()).filter((e) => e.source === 'temporal' && e.workflow_id === wid);
      return events.length >= expected && events.some((e) => e.kind === 'workflow.completed');
    }, 20_000, 'the workflow in the ledger');
    expect(ledgerView(events, wid, runId)).toEqual(history);
    expect(attemptsOf(events, wid, runId)).toEqual({
      '1#1': ['activity.started', 'activity.completed'],
      '2#1': ['activity.started'], // the attempt the kill ended: started, never finished
      '2#2': ['activity.started', 'activity.completed'],
      '3#1': ['activity.started', 'activity.completed'],
    });
    expect(events.map((e) => e.kind).filter((k) => k.startsWith('workflow.'))).toEqual(['workflow.started', 'workflow.completed']);
    expect(events).toHaveLength(expected);
    expect(new Set(events.map((e) => e.event_id)).size).toBe(expected);
    await connection.close();
  }, 120_000);
});
