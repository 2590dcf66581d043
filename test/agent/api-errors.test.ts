/**
 * The API reads the status off the error: a ClickHouse server that is down is a 503 with Retry-After
 * (not a 400), and a failure that is not a WardenError is a 500 "internal error" that does not leak its
 * message. The real API and HTTP server in process, against a real ClickHouse server that is stopped.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../core/event.js';
import { Redactor } from '../../core/redact.js';
import { ComplianceApi, type LedgerReader } from '../../agent/api.js';
import { WardenMetrics } from '../../agent/metrics.js';
import { startHttpServer, type HttpServer } from '../../agent/server.js';
import { openStore, type LedgerStore } from '../../ledger/store/index.js';
import { startClickHouse, tempDir, type ClickHouseServer, type TempDir } from '../harness/index.js';

const TOKEN = 'c0mpliance-token-0123456789abcdef';

let clickhouse: ClickHouseServer;
let dir: TempDir;
let store: LedgerStore;
let http: HttpServer;
const audit: WardenEvent[] = [];

const reader: LedgerReader = {
  events: async function* () { throw new Error('secret detail from deep inside'); },
  lineage: async () => [],
  verify: async () => ({ ok: true, records: 0 }) as Awaited<ReturnType<LedgerReader['verify']>>,
};

function get(path: string): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, http.url), { headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  [clickhouse, dir] = await Promise.all([startClickHouse(), tempDir('warden-api-errors')]);
  store = await openStore({ url: clickhouse.url, dataDir: dir.path, database: 'warden_api_errors' });
  await store.migrate();
  const api = new ComplianceApi({
    tokens: [{ name: 'auditor', role: 'compliance', token: TOKEN }],
    reader,
    store,
    record: async (events) => { audit.push(...events); },
    redactor: new Redactor(),
    maxBodyBytes: 4096,
    maxUrlBytes: 4096,
    ratePerMinute: 600,
  });
  http = await startHttpServer({ host: '127.0.0.1', port: 0, metrics: new WardenMetrics({ defaultMetrics: false }), readiness: () => ({ ready: true, reasons: [] }), api });
});
afterAll(async () => {
  await http?.close();
  await store?.close();
  await clickhouse?.dispose();
  await dir?.cleanup();
});

describe('API errors', () => {
  it('answers a compliance query 503 with Retry-After while the ClickHouse server is down, and 200 again once it is back', async () => {
    expect((await get('/v1/ledger/versions?since=1d')).status).toBe(200);

    await clickhouse.stop();
    const down = await get('/v1/ledger/versions?since=1d');
    expect(down.status).toBe(503);
    expect(Number(down.headers['retry-after'])).toBeGreaterThan(0);
    expect(JSON.parse(down.body).error).toMatch(/is unavailable/);
    const decisions = await get('/v1/ledger/decisions?counts=1');
    expect(decisions.status).toBe(503);
    expect(decisions.headers['retry-after']).toBeDefined();
    // The refused read is audited with the status it got.
    expect(audit.some((e) => e.kind === 'ledger.read' && e.attrs.status === 503 && e.decision === 'denied')).toBe(true);

    await clickhouse.start();
    expect((await get('/v1/ledger/versions?since=1d')).status).toBe(200);
  });

  it('answers a bad request 400 without Retry-After, and a failure that is not a WardenError 500 "internal error" without its message', async () => {
    const bad = await get('/v1/ledger/versions?since=last-tuesday');
    expect(bad.status).toBe(400);
    expect(bad.headers['retry-after']).toBeUndefined();
    const internal = await get('/v1/ledger/events');
    expect(internal.status).toBe(500);
    expect(JSON.parse(internal.body)).toEqual({ error: 'internal error' });
    expect(internal.body).not.toContain('secret');
  });
});
