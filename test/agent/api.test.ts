/** The compliance API on a real sidecar process: roles, refusals, streaming formats, and the audit of reads. */
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../core/event.js';
import { Spool } from '../../ledger/spool/spool.js';
import { startRedis, tempDir, type RedisServer, type TempDir } from '../harness/index.js';
import { runWorkload, until, waitFinished } from '../harness/bullmq.js';
import { startSidecarProcess, sumMetric, type SidecarProcess } from '../harness/sidecar.js';

const COMPLIANCE = 'c0mpliance-token-0123456789abcdef';
const INGEST = 'ingest-token-0123456789abcdef0123';
const ADMIN = 'admin-token-0123456789abcdef01234';

let redis: RedisServer;
let dir: TempDir;
let sidecar: SidecarProcess;

function call(path: string, opts: { token?: string; method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const u = new URL(path, sidecar.url);
  return new Promise((resolve, reject) => {
    const req = request(u, {
      method: opts.method ?? 'GET',
      headers: { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedis(), tempDir('warden-api')]);
  const config = join(dir.path, 'warden.yaml');
  // Model metadata read from the jobs by JSON path (the workload's producers know nothing of Warden).
  writeFileSync(config, 'api:\n  ratePerMinute: 40\n  maxBodyBytes: 2048\nbullmq:\n  metadata:\n    model: opts.backoff.type\n    model_version: opts.attempts\n');
  sidecar = await startSidecarProcess({
    redisUrl: redis.url, dataDir: dir.path, queues: ['api-q'], config,
    env: { WARDEN_API_TOKENS: `auditor:compliance:${COMPLIANCE},pipeline:ingest:${INGEST},ops:admin:${ADMIN}` },
  });
  const w = await runWorkload(redis.url, { queues: ['api-q'], jobsPerQueue: 30, seed: 2, failRate: 0.2 });
  await waitFinished(w);
  await w.close();
  await until(async () => (await call('/v1/ledger/events?kind=job.completed,job.failed', { token: COMPLIANCE })).body.trim().split('\n').length >= 30, 10_000, 'records');
});
afterAll(async () => {
  await sidecar?.proc.stop();
  await redis?.dispose();
  await dir?.cleanup();
});

describe('compliance API', () => {
  it('refuses without a token, with an unknown token, and with a role that may not read', async () => {
    expect((await call('/v1/ledger/events')).status).toBe(401);
    expect((await call('/v1/ledger/events', { token: 'not-a-real-token-at-all-xxxxxxxx' })).status).toBe(401);
    const ingest = await call('/v1/ledger/events', { token: INGEST });
    expect(ingest.status).toBe(403);
    expect(JSON.parse(ingest.body).error).toMatch(/role "ingest" may not GET/);
    // Health and metrics stay open.
    expect((await call('/healthz')).status).toBe(200);
    expect((await call('/metrics')).status).toBe(200);
  });

  it('serves filtered events as JSON lines and CSV, and lineage in order, to compliance and admin', async () => {
    const r = await call('/v1/ledger/events?queue=api-q&kind=job.completed&limit=5', { token: COMPLIANCE });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe('application/x-ndjson');
    const rows = r.body.trim().split('\n').map((l) => JSON.parse(l) as WardenEvent & { seq: number });
    expect(rows).toHaveLength(5);
    expect(rows.every((e) => e.kind === 'job.completed' && e.queue === 'api-q')).toBe(true);
    const csv = await call('/v1/ledger/events?kind=job.added&format=csv', { token: ADMIN });
    expect(csv.status).toBe(200);
    expect(csv.body.split('\r\n')[0]).toMatch(/^seq,hash,event_id,ts,kind/);
    expect(csv.body.split('\r\n').filter(Boolean)).toHaveLength(31);
    const cid = rows[0].correlation_id!;
    const lin = await call(`/v1/ledger/lineage/${encodeURIComponent(cid)}`, { token: COMPLIANCE });
    const story = lin.body.trim().split('\n').map((l) => JSON.parse(l) as WardenEvent);
    expect(story[0].kind).toBe('job.added');
    expect(story.at(-1)!.kind).toBe('job.completed');
    expect(story.map((e) => e.ts)).toEqual([...story.map((e) => e.ts)].sort((a, b) => a - b));
  });

  it('answers bad filters with a 400 that names the problem, and an over-large body with 413', async () => {
    const unknown = await call('/v1/ledger/events?queu=x', { token: COMPLIANCE });
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.body).error).toContain('unknown filter "queu"');
    const time = await call('/v1/ledger/events?since=last-tuesday', { token: COMPLIANCE });
    expect(time.status).toBe(400);
    expect(JSON.parse(time.body).error).toContain('last-tuesday');
    const limit = await call('/v1/ledger/events?limit=-3', { token: COMPLIANCE });
    expect(limit.status).toBe(400);
    const big = await call('/v1/ledger/events', { token: COMPLIANCE, body: 'x'.repeat(10_000), headers: { 'content-length': '10000' } });
    expect(big.status).toBe(413);
  });

  it('records every ledger read, allowed or denied, in the ledger itself', async () => {
    const verify = await call('/v1/ledger/verify', { token: COMPLIANCE });
    expect(verify.status).toBe(200);
    const status = JSON.parse(verify.body) as { ok: boolean; records: number; checkpoints?: { ok: boolean; checkpoints: number } };
    expect(status.ok).toBe(true);
    expect(status.records).toBeGreaterThan(100);
    expect(status.checkpoints?.ok).toBe(true); // the signed checkpoints were checked against the spool too
    // The audit record is appended once the response is complete: wait for it to be durable.
    let audit: WardenEvent[] = [];
    await until(async () => {
      const reads = await call('/v1/ledger/events?kind=ledger.read', { token: ADMIN });
      audit = reads.body.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as WardenEvent); // none durable yet: empty
      return audit.some((e) => e.reason?.includes('/v1/ledger/verify') ?? false);
    }, 5_000, 'audit of the verify call');
    expect(audit.some((e) => e.actor === 'auditor' && e.decision === 'allowed' && e.reason!.includes('/v1/ledger/verify'))).toBe(true);
    expect(audit.some((e) => e.actor === 'pipeline' && e.decision === 'denied' && e.attrs.status === 403)).toBe(true);
    // Requests without a valid token are counted and summarized once per interval (trust-ingest.test.ts), not recorded one by one.
    expect(audit.some((e) => e.attrs.status === 401 && e.attrs.summary === undefined)).toBe(false);
    expect(sumMetric(await sidecar.metrics(), 'warden_api_refused_requests_total', { cause: 'unauthenticated' })).toBeGreaterThan(0);
    expect(audit.some((e) => e.actor === 'auditor' && e.attrs.rows === 5)).toBe(true);
  });

  it('answers the compliance queries from the ClickHouse store the ledger is shipped to (same code as the CLI)', async () => {
    await until(async () => /warden_ledger_backlog_events 0\b/.test(await sidecar.metrics()), 20_000, 'ledger shipped');
    const versions = await call('/v1/ledger/versions?since=1d', { token: COMPLIANCE });
    expect(versions.status).toBe(200);
    const rows = JSON.parse(versions.body) as { queue: string; runs: number | string }[];
    const mine = rows.filter((r) => r.queue === 'api-q') as unknown as { model: string; model_version: string; runs: number }[];
    expect([...new Set(mine.map((r) => `${r.model}@${r.model_version}`))]).toEqual(['fixed@3']); // (a run across UTC midnight has two day rows)
    expect(mine.reduce((n, r) => n + Number(r.runs), 0)).toBe(30); // every job's terminal record
    const decisions = await call('/v1/ledger/decisions?counts=1&format=csv', { token: COMPLIANCE });
    expect(decisions.status).toBe(200);
    expect(decisions.body.split('\r\n')[0]).toBe('policy,policy_version,decision,decisions');
    expect(JSON.parse((await call('/v1/ledger/unapproved', { token: ADMIN })).body)).toEqual([]);
    expect((await call('/v1/ledger/approvals?actor=nobody&colour=red', { token: COMPLIANCE })).status).toBe(400);
    // The export pages through the store and agrees with the spool's own answer.
    const fromStore = (await call('/v1/ledger/export?queue=api-q&kind=job.completed', { token: COMPLIANCE })).body.trim().split('\n');
    const fromSpool = (await call('/v1/ledger/events?queue=api-q&kind=job.completed', { token: COMPLIANCE })).body.trim().split('\n');
    expect(fromStore.map((l) => JSON.parse(l).event_id).sort()).toEqual(fromSpool.map((l) => JSON.parse(l).event_id).sort());
    expect(fromStore.length).toBeGreaterThan(20);
  });

  it('rate-limits per token with 429 and Retry-After', async () => {
    let limited: { status: number; headers: Record<string, unknown> } | undefined;
    for (let i = 0; i < 60 && !limited; i++) {
      const r = await call('/v1/ledger/events?limit=1', { token: ADMIN });
      if (r.status === 429) limited = r;
    }
    expect(limited?.status).toBe(429);
    expect(Number(limited?.headers['retry-after'])).toBeGreaterThan(0);
    // Another token has its own budget.
    expect((await call('/v1/ledger/events?limit=1', { token: COMPLIANCE })).status).toBe(200);
  });
});
