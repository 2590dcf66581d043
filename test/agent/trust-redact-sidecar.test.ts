/**
 * Issue 12 (redaction and robustness half) against the real `warden start` process: secrets never
 * reach the ledger, /metrics or the audit record on any path (BullMQ collector, HTTP ingest, API
 * audit); join keys stay joinable; API hardening; private file modes; and a SIGTERM that ends within
 * its deadline with Redis, NATS and ClickHouse killed -9 a moment before, the ledger still verifying.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import { Spool } from '../../ledger/spool/spool.js';
import { startClickHouse, startNats, startRedis, tempDir, type ClickHouseServer, type NatsServer, type RedisServer, type TempDir } from '../harness/index.js';
import { connectionFor, runWorkload, until } from '../harness/bullmq.js';
import { startSidecarProcess, sumMetric } from '../harness/sidecar.js';

const CLI = resolve('dist/agent/cli.js');
const ADMIN = 'admin-token-0123456789abcdef0123';
const AUDITOR = 'audit-token-0123456789abcdef01234';
const INGEST = 'ingest-token-0123456789abcdef0123';
const SK = 'sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX';
/** Strings that must appear nowhere: not in a file under the data dir, not in /metrics. */
const SECRETS = [SK, 'hunter2', 'jane.doe@example.com', 'bob@example.com', 'ceo@example.com', 'carol@example.com', 'abcAPIKEY999', 'tok123SECRETtok', 'cs999SECRETcs', 'abcDEF1234567890xyzBEARER'];

function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH }, timeout: 60_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

function http(url: string, o: { method?: string; token?: string; body?: unknown } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((res, rej) => {
    const data = o.body === undefined ? undefined : Buffer.from(JSON.stringify(o.body));
    const req = request(url, {
      method: o.method ?? 'GET',
      headers: { ...(o.token ? { authorization: `Bearer ${o.token}` } : {}), ...(data ? { 'content-type': 'application/json', 'content-length': data.length } : {}) },
    }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => res({ status: r.statusCode ?? 0, headers: r.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', rej);
    req.end(data);
  });
}

function filesUnder(d: string): string[] {
  return readdirSync(d).flatMap((n) => {
    const p = join(d, n);
    return statSync(p).isDirectory() ? [p, ...filesUnder(p)] : [p];
  });
}

async function ledgerEvents(dataDir: string): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const rec of Spool.read(dataDir)) out.push(rec.event);
  return out;
}

const jsonl = (s: string) => s.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as WardenEvent & { seq: number });

let redis: RedisServer;
let dir: TempDir;
beforeAll(async () => { [redis, dir] = await Promise.all([startRedis(), tempDir('warden-trust-redact')]); });
afterAll(async () => {
  await redis?.dispose();
  await dir?.cleanup();
});

describe('secrets never reach the record (observations 3, 4, 9)', () => {
  it('collector, ingest and audit paths are redacted; lineage still joins; API hardening; private files', async () => {
    const base = join(dir.path, 'redact');
    const dataDir = join(base, 'data');
    const policyFile = join(dir.path, 'policies.yaml');
    writeFileSync(policyFile, `apiVersion: warden/v1
policies:
  - name: storm
    version: 1
    scope: { system: bullmq, queue: tr-q }
    retryStorm: { windowMs: 3000, budgetRatio: 0.2, budgetPerSecond: 1, minRetries: 3 }
    breaker: { action: pause, resetTimeoutMs: 60000 }
`);
    const config = join(dir.path, 'warden.yaml');
    writeFileSync(config, `
bullmq: { blockMs: 100, discoverIntervalMs: 200, countsIntervalMs: 300 }
clickhouse: { mode: off }
policies: { file: ${policyFile}, evaluateIntervalMs: 200 }
api:
  tokens:
    - { name: ops-admin, role: admin, token: ${ADMIN} }
    - { name: auditor, role: compliance, token: ${AUDITOR} }
    - { name: worker, role: ingest, token: ${INGEST} }
`);
    const sidecar = await startSidecarProcess({ redisUrl: redis.url, dataDir: base, queues: ['tr-q'], config });
    const url = sidecar.url;
    try {
      // 1. The BullMQ collector: a job ID with an email, a secret in the job name and in the data.
      const queue = new Queue('tr-q', { connection: connectionFor(redis.url) });
      const worker = new Worker('tr-q', async () => ({ ok: true }), { connection: connectionFor(redis.url) });
      await queue.add(`summarize ${SK}`, { db_password: 'hunter2', userPassword: 'hunter2', prompt_tokens: 12 }, { jobId: 'jane.doe@example.com' });
      await queue.add('plain', { n: 1 }, { jobId: '8c0e4b5e-6a8b-4a57-9d8c-2f4b1a8e9c10' });
      await until(async () => (await ledgerEvents(dataDir)).filter((e) => e.kind === 'job.completed').length >= 2, 20_000, 'both jobs completed in the ledger');
      await worker.close();
      await queue.close();

      // 2. HTTP ingest: every string field and attrs key/value carrying a secret.
      const claimed = makeEvent({
        kind: 'activity.completed', source: 'temporal', queue: 'tq', correlation_id: 'order for carol@example.com',
        workflow_id: 'wf bob@example.com', run_id: 'run-1', activity_type: `call ${SK}`, job_name: `job ${SK}`,
        model: `gpt with ${SK}`, actor: 'ceo@example.com', error: 'password=hunter2', reason: 'token=hunter2',
        attrs: { userPassword: 'hunter2', 'x-api-key': 'abcAPIKEY999', aws_secret_access_key: 'hunter2', note: `see ${SK}`, [`k-${SK}`]: 1, tokens_in: 42 },
      });
      const posted = await http(`${url}/v1/events`, { method: 'POST', token: INGEST, body: { events: [claimed] } });
      expect(posted.status, posted.body).toBe(200);

      // 3. The read audit: secrets in the query string, percent-encoded too, and a POST.
      await http(`${url}/v1/ledger/events?access_token=tok123SECRETtok&client_secret=cs999SECRETcs&queue=Bearer%20abcDEF1234567890xyzBEARER`, { token: AUDITOR });
      const post = await http(`${url}/v1/ledger/events?limit=1`, { method: 'POST', token: AUDITOR });
      expect(post.status).toBe(405);

      // API hardening: headers on every answer, 400 for bad percent-encoding, 404 for a breaker on no queue.
      for (const r of [post, await http(`${url}/v1/ledger/verify`, { token: AUDITOR }), await http(`${url}/metrics`)]) {
        expect(r.headers['x-content-type-options']).toBe('nosniff');
        expect(r.headers['cache-control']).toBe('no-store');
      }
      const badPct = await http(`${url}/v1/ledger/lineage/%E0%A4%A`, { token: AUDITOR });
      expect(badPct.status, badPct.body).toBe(400);
      const ghost = await http(`${url}/v1/breakers/bullmq.queue.ghost/open?actor=ops`, { method: 'POST', token: ADMIN });
      expect(ghost.status, ghost.body).toBe(404);
      expect(JSON.parse(ghost.body).error).toMatch(/no BullMQ queue "ghost"/);
      const conn = new Redis(redis.url);
      expect(await conn.keys('bull:ghost*')).toEqual([]);
      // A real queue can still be forced (this writes the breaker state file checked below).
      const forced = await http(`${url}/v1/breakers/bullmq.queue.tr-q/open?actor=ops`, { method: 'POST', token: ADMIN });
      expect(forced.status, forced.body).toBe(200);
      const closed = await http(`${url}/v1/breakers/bullmq.queue.tr-q/close?actor=ops`, { method: 'POST', token: ADMIN });
      expect(closed.status, closed.body).toBe(200);
      await conn.quit();

      await until(async () => (await ledgerEvents(dataDir)).filter((e) => e.kind === 'ledger.read').length >= 3, 10_000, 'audit records');
      const events = await ledgerEvents(dataDir);

      // Nothing secret in any file under the data dir, nor in /metrics.
      const metrics = await sidecar.metrics();
      for (const f of filesUnder(dataDir)) {
        if (statSync(f).isDirectory()) continue;
        const text = readFileSync(f, 'latin1');
        for (const s of SECRETS) expect(text.includes(s), `${s} in ${f}`).toBe(false);
      }
      for (const s of SECRETS) expect(metrics.includes(s), `${s} in /metrics`).toBe(false);
      expect(sumMetric(metrics, 'warden_jobs_total', {})).toBeGreaterThanOrEqual(2);

      // The collected job: redacted ID, the same on every record of the job; numeric IDs unchanged.
      const jobEvents = events.filter((e) => e.queue === 'tr-q' && e.job_id !== '8c0e4b5e-6a8b-4a57-9d8c-2f4b1a8e9c10' && e.kind.startsWith('job.'));
      expect(new Set(jobEvents.map((e) => e.job_id)).size).toBe(1);
      expect(jobEvents[0].job_id).toMatch(/^\[REDACTED:email\]~h:[0-9a-f]{12}$/);
      expect(jobEvents.map((e) => e.kind)).toEqual(expect.arrayContaining(['job.added', 'job.started', 'job.completed']));
      const added = jobEvents.find((e) => e.kind === 'job.added')!;
      expect(added.input).toMatchObject({ db_password: '[REDACTED]', userPassword: '[REDACTED]', prompt_tokens: 12 });
      expect(events.filter((e) => e.job_id === '8c0e4b5e-6a8b-4a57-9d8c-2f4b1a8e9c10').length).toBeGreaterThanOrEqual(3);

      // Lineage joins asking with the raw correlation ID (the collector's default and the ingested one).
      const lin = jsonl((await http(`${url}/v1/ledger/lineage/${encodeURIComponent('bullmq:tr-q:jane.doe@example.com')}`, { token: AUDITOR })).body);
      expect(lin.map((r) => r.kind)).toEqual(expect.arrayContaining(['job.added', 'job.started', 'job.completed']));
      const linIngested = jsonl((await http(`${url}/v1/ledger/lineage/${encodeURIComponent('order for carol@example.com')}`, { token: AUDITOR })).body);
      expect(linIngested.map((r) => r.event_id)).toEqual([claimed.event_id]);

      // The ingested event: every field redacted, non-secrets kept.
      const got = events.find((e) => e.event_id === claimed.event_id)!;
      expect(got.attrs).toMatchObject({ userPassword: '[REDACTED]', 'x-api-key': '[REDACTED]', aws_secret_access_key: '[REDACTED]', tokens_in: 42 });
      expect(got.run_id).toBe('run-1');

      // The audit records: method, path and parameter names, never the values.
      const reads = events.filter((e) => e.kind === 'ledger.read').map((e) => e.reason ?? '');
      const withSecrets = reads.find((r) => r.includes('access_token='))!;
      expect(withSecrets).toMatch(/^GET \/v1\/ledger\/events\?access_token=\[REDACTED\]&client_secret=\[REDACTED\]&queue=/);
      expect(reads.some((r) => r.startsWith('POST /v1/ledger/events?limit=1'))).toBe(true);

      // Private files: 0600 files (segments, checkpoints, breaker state), 0700 directories.
      const paths = filesUnder(dataDir);
      const mode = (p: string) => statSync(p).mode & 0o777;
      expect(paths.some((p) => p.endsWith('breakers.json'))).toBe(true);
      expect(paths.some((p) => p.endsWith('.jsonl') && p.includes('ledger'))).toBe(true);
      for (const p of paths.filter((x) => !x.endsWith('.pub.pem') && !x.includes('chdb'))) {
        expect([p, mode(p)]).toEqual([p, statSync(p).isDirectory() ? 0o700 : 0o600]);
      }
      expect(mode(dataDir)).toBe(0o700);
    } finally {
      await sidecar.proc.stop();
    }
    const v = await warden(['ledger', 'verify', '--data-dir', dataDir]);
    expect(v.stdout).toMatch(/ledger intact/);
    expect(v.code).toBe(0);
  });
});

describe('bounded shutdown', () => {
  let nats: NatsServer;
  let clickhouse: ClickHouseServer;
  let redis2: RedisServer;
  beforeAll(async () => { [nats, clickhouse, redis2] = await Promise.all([startNats(), startClickHouse(), startRedis()]); });
  afterAll(async () => { await Promise.allSettled([nats?.dispose(), clickhouse?.dispose(), redis2?.dispose()]); });

  it('SIGTERM ends within shutdownTimeoutMs with Redis, NATS and ClickHouse killed -9 just before; the ledger verifies', async () => {
    const DEADLINE = 4000;
    const base = join(dir.path, 'shutdown');
    const dataDir = join(base, 'data');
    const queues = ['sd-a', 'sd-b'];
    const sidecar = await startSidecarProcess({
      redisUrl: redis2.url, dataDir: base, queues,
      env: { WARDEN_NATS_URL: nats.url, WARDEN_CLICKHOUSE_URL: clickhouse.url, WARDEN_SHUTDOWN_TIMEOUT_MS: String(DEADLINE), WARDEN_API_TOKENS: `w:ingest:${INGEST}` },
    });
    const w = await runWorkload(redis2.url, { queues, jobsPerQueue: 400, seed: 3, failRate: 0.2, workMs: 20 });
    await until(async () => sumMetric(await sidecar.metrics(), 'warden_jobs_total', {}) > 100, 30_000, 'some progress');
    // Hook events in flight too.
    await http(`${sidecar.url}/v1/events`, { method: 'POST', token: INGEST, body: { events: [makeEvent({ kind: 'activity.started', source: 'temporal', queue: 'tq', activity_type: 'a' })] } });

    await w.close(); // the workload's own clients stop first; the sidecar's stay connected
    await Promise.all([redis2.kill9(), nats.kill9(), clickhouse.kill9()]);
    const t0 = performance.now();
    process.kill(sidecar.proc.pid!, 'SIGTERM');
    await until(async () => !sidecar.proc.running, DEADLINE + 10_000, 'the sidecar exited after SIGTERM');
    const elapsed = performance.now() - t0;
    console.log(`shutdown with Redis, NATS and ClickHouse gone: ${Math.round(elapsed)} ms (deadline ${DEADLINE} ms)`);
    const log = readFileSync(join(base, 'warden.log'), 'utf8');
    expect(log).not.toMatch(/shutdown overran its deadline/); // the stop's own deadline ended it, not the backstop
    expect(log).toMatch(/final ledger checkpoint|did not stop within/);

    const v = await warden(['ledger', 'verify', '--data-dir', dataDir]);
    expect(v.stdout).toMatch(/ledger intact: \d+ records/);
    expect(v.code).toBe(0);
    const events = await ledgerEvents(dataDir);
    expect(events.filter((e) => e.kind === 'job.completed' || e.kind === 'job.failed').length).toBeGreaterThan(50);
    expect(events.some((e) => e.kind === 'activity.started')).toBe(true);
  });
});
