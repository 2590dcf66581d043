/**
 * Policies end to end, as a user runs them: the real `warden start` process with a policy file,
 * beside real BullMQ producers and workers on a real Redis. A processor that starts failing becomes
 * a retry storm, the breaker pauses the queue (BullMQ says so), survives kill -9 of the sidecar, and
 * resumes the queue on its own once half-open probes succeed. Ordinary jittered retries trip nothing.
 * An unapproved model version and a shifted score distribution produce drift decisions.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Queue, Worker, type Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../core/event.js';
import { Spool } from '../../ledger/spool/spool.js';
import { connect } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { BREAKER_BUCKET, type BreakerStatus } from '../../core/breakers.js';
import { httpGet, startNats, startRedis, tempDir, type NatsServer, type RedisServer, type TempDir } from '../harness/index.js';
import { connectionFor, rng, until } from '../harness/bullmq.js';
import { startSidecarProcess, sumMetric, type SidecarProcess } from '../harness/sidecar.js';

const run = promisify(execFile);
const CLI = resolve('dist/agent/cli.js');
const ADMIN = 'admin-token-0123456789abcdef0123';
const AUDITOR = 'audit-token-0123456789abcdef01234';

const WINDOW_MS = 3000;
const POLICY_FILE = `apiVersion: warden/v1
policies:
  - name: storm
    version: 7
    scope: { system: bullmq, queue: p-storm }
    # The retry budget alone, so the evidence checked below is the budget's on any machine: on a loaded
    # one the other signals (synchronized retries, one dominant reason) can win the race to trip first.
    # They have their own tests (test/policies/detectors.test.ts); 'calm' keeps every default signal.
    retryStorm: { windowMs: ${WINDOW_MS}, budgetRatio: 0.2, budgetPerSecond: 1, minRetries: 3, synchronized: null, dominantReason: null }
    breaker: { action: pause, resetTimeoutMs: 6000, probes: 3, probeConcurrency: 1 }
  - name: calm
    version: 1
    scope: { system: bullmq, queue: p-calm }
    retryStorm: { windowMs: ${WINDOW_MS}, budgetRatio: 0.2, budgetPerSecond: 1, minRetries: 3 }
    breaker: { action: pause, resetTimeoutMs: 60000 }
  - name: models
    version: 2
    scope: { system: bullmq, queue: p-drift }
    drift:
      approvedModels: { scorer: ["1"] }
      metrics: [{ name: score, baselineSize: 60, windowSize: 40 }]
      action: require_approval
`;

let redis: RedisServer;
let nats: NatsServer;
let dir: TempDir;
let sidecar: SidecarProcess;
let dataDir: string;
let policyDigest: string;
const open: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  [redis, nats, dir] = await Promise.all([startRedis(), startNats(), tempDir('warden-policies')]);
  const policyFile = join(dir.path, 'policies.yaml');
  writeFileSync(policyFile, POLICY_FILE);
  policyDigest = createHash('sha256').update(readFileSync(policyFile)).digest('hex');
  const config = join(dir.path, 'warden.yaml');
  writeFileSync(config, `
bullmq:
  blockMs: 100
  discoverIntervalMs: 200
  countsIntervalMs: 300
  metadata: { model: data.model, model_version: data.model_version, served_model: returnvalue.served_model }
  outputs: { score: returnvalue.score }
clickhouse: { mode: off }
nats: { url: ${nats.url} }
policies: { file: ${policyFile}, evaluateIntervalMs: 200 }
api:
  tokens:
    - { name: ops-admin, role: admin, token: ${ADMIN} }
    - { name: auditor, role: compliance, token: ${AUDITOR} }
`);
  dataDir = join(dir.path, 'side', 'data');
  sidecar = await startSidecarProcess({ redisUrl: redis.url, dataDir: join(dir.path, 'side'), config, queues: ['p-storm', 'p-calm', 'p-drift'] });
});

afterAll(async () => {
  for (const o of open.reverse()) await o.close().catch(() => undefined);
  await sidecar?.proc.stop();
  await nats?.dispose();
  await redis?.dispose();
  await dir?.cleanup();
});

async function ledger(): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const rec of Spool.read(dataDir)) out.push(rec.event);
  return out;
}

const mine = (policy: string) => (e: WardenEvent) => e.source === 'warden' && e.policy === policy;

async function api(method: string, path: string, token: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${sidecar.url}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: await res.json() };
}

describe('retry storm on BullMQ, end to end', () => {
  const connection = () => connectionFor(redis.url);
  let queue: Queue;
  let worker: Worker;
  let failing = false;
  let openedAt = 0;

  it('a failing processor becomes a retry storm: the breaker opens within the window, BullMQ reports the queue paused, the ledger holds the decision with its evidence', async () => {
    queue = new Queue('p-storm', { connection: connection() });
    open.push(queue);
    worker = new Worker('p-storm', async (job: Job) => {
      await new Promise((r) => setTimeout(r, 5));
      if (failing) throw new Error('model backend returned 503');
      return { ok: job.id };
    }, { connection: connection(), concurrency: 8, settings: { backoffStrategy: () => 200 + Math.floor(Math.random() * 200) } });
    open.push(worker);
    // Healthy traffic first: nothing trips.
    await queue.addBulk(Array.from({ length: 10 }, (_, i) => ({ name: 'call', data: { i }, opts: { attempts: 30, backoff: { type: 'custom' } } })));
    await until(async () => (await queue.getJobCounts('completed')).completed === 10, 10_000, 'healthy jobs');
    // Then the processor starts failing (retries are jittered: this is a budget storm, not a synchronized one).
    failing = true;
    const t0 = Date.now();
    await queue.addBulk(Array.from({ length: 30 }, (_, i) => ({ name: 'call', data: { i }, opts: { attempts: 30, backoff: { type: 'custom' } } })));

    await until(async () => queue.isPaused(), 15_000, 'BullMQ queue paused by the breaker');
    const events = await ledger();
    const firstFailure = events.find((e) => e.kind === 'job.attempt_failed' && e.queue === 'p-storm')!;
    const opened = events.find((e) => e.kind === 'breaker.opened' && e.policy === 'storm')!;
    expect(opened, 'breaker.opened in the ledger').toBeDefined();
    openedAt = opened.ts;
    // Within the configured window of the storm's first failure, in event time (BullMQ's own
    // timestamps), so a loaded machine delaying the workers does not change the verdict.
    expect(opened.ts - firstFailure.ts).toBeLessThanOrEqual(WINDOW_MS);
    expect(opened.ts).toBeGreaterThanOrEqual(t0);
    expect(opened).toMatchObject({ decision: 'pause', policy_version: '7', queue: 'p-storm', actor: 'warden' });
    expect(opened.attrs.scope).toBe('bullmq.queue.p-storm');
    expect(opened.attrs.policy_digest).toBe(policyDigest);
    const retries = opened.attrs['evidence.retries'] as number;
    const budget = opened.attrs['evidence.retry_budget'] as number;
    expect(retries).toBeGreaterThan(budget);
    expect(budget).toBeCloseTo(0.2 * (opened.attrs['evidence.first_attempts'] as number) + 1 * (WINDOW_MS / 1000), 1);
    expect(String(opened.attrs['evidence.signals'])).toContain('retry_budget');
    expect(opened.attrs['evidence.top_reason']).toBe('model backend returned 503');
    const decision = events.find((e) => e.kind === 'policy.decision' && e.policy === 'storm' && e.decision === 'pause')!;
    expect(decision.attrs['evidence.retries']).toBe(retries);
    expect(decision.reason).toMatch(/retry storm on bullmq\.queue\.p-storm: .*retry_budget/);

    // The state is also in the NATS KV bucket the in-process hooks (Temporal activity interceptor) watch.
    const nc = await connect({ servers: nats.url });
    try {
      await until(async () => {
        const entry = await (await new Kvm(nc).open(BREAKER_BUCKET)).get('bullmq.queue.p-storm').catch(() => null);
        return (entry?.json() as BreakerStatus | undefined)?.phase === 'open';
      }, 10_000, 'open breaker in the KV bucket');
    } finally {
      await nc.close();
    }

    const metrics = await sidecar.metrics();
    expect(sumMetric(metrics, 'warden_breaker_state', { policy: 'storm', scope: 'bullmq.queue.p-storm' })).toBe(2);
    expect(sumMetric(metrics, 'warden_policy_decisions_total', { policy: 'storm', decision: 'pause' })).toBe(1);
    expect(sumMetric(metrics, 'warden_retry_ratio', { policy: 'storm' })).toBeGreaterThan(sumMetric(metrics, 'warden_retry_budget_ratio', { policy: 'storm' }));
  });

  it('kill -9 of the sidecar while the breaker is open: it comes back open, the queue is still paused, and the ledger says so', async () => {
    await sidecar.proc.kill9();
    // While Warden is down nothing resumes the queue.
    expect(await queue.isPaused()).toBe(true);
    await sidecar.proc.start();
    await until(async () => (await ledger()).some((e) => mine('storm')(e) && e.decision === 'restore'), 10_000, 'restore decision after restart');
    const restore = (await ledger()).find((e) => mine('storm')(e) && e.decision === 'restore')!;
    expect(restore.attrs).toMatchObject({ scope: 'bullmq.queue.p-storm', phase: 'open', queue_paused: true });
    expect(await queue.isPaused()).toBe(true);
    const list = await api('GET', '/v1/breakers', AUDITOR);
    expect(list.status).toBe(200);
    expect(list.body.breakers.find((b: { key: string }) => b.key === 'bullmq.queue.p-storm')).toMatchObject({ phase: 'open', policy: 'storm', applied: { kind: 'pause', wasPaused: false } });
    expect(sumMetric(await sidecar.metrics(), 'warden_breaker_state', { policy: 'storm', scope: 'bullmq.queue.p-storm' })).toBe(2);
    // Still open: no attempts run on the paused queue (nothing active, no new starts).
    const before = (await ledger()).filter((e) => e.kind === 'job.started' && e.queue === 'p-storm').length;
    await new Promise((r) => setTimeout(r, 500));
    expect((await ledger()).filter((e) => e.kind === 'job.started' && e.queue === 'p-storm').length).toBe(before);
  });

  it('when the processor heals, half-open probes succeed and the queue resumes on its own', async () => {
    failing = false;
    await until(async () => (await ledger()).some((e) => e.kind === 'breaker.closed' && e.policy === 'storm'), 25_000, 'breaker closed');
    const events = (await ledger()).filter(mine('storm'));
    const half = events.find((e) => e.kind === 'breaker.half_opened')!;
    const closed = events.find((e) => e.kind === 'breaker.closed')!;
    expect(half.decision).toBe('probe');
    expect(half.ts - openedAt).toBeGreaterThanOrEqual(6000); // the reset timeout
    expect(closed.decision).toBe('restore');
    expect(closed.reason).toMatch(/3 probe\(s\) succeeded/);
    // Probes ran one at a time (global concurrency 1) between half-open and close.
    const probes = (await ledger()).filter((e) => e.kind === 'job.completed' && e.queue === 'p-storm' && e.ts >= half.ts && e.ts <= closed.ts);
    expect(probes.length).toBeGreaterThanOrEqual(3);
    await until(async () => !(await queue.isPaused()), 5_000, 'queue resumed');
    await until(async () => (await queue.getGlobalConcurrency()) === null, 5_000, 'probe concurrency removed');
    await until(async () => (await queue.getJobCounts('completed')).completed === 40, 15_000, 'every job completed after the storm');
    expect(sumMetric(await sidecar.metrics(), 'warden_breaker_state', { policy: 'storm', scope: 'bullmq.queue.p-storm' })).toBe(0);
  });
});

describe('no false positive, and admin control', () => {
  it('ordinary jittered retries below the budget trip nothing', async () => {
    const random = rng(7);
    const queue = new Queue('p-calm', { connection: connectionFor(redis.url) });
    open.push(queue);
    const failOnce = new Set<number>();
    const worker = new Worker('p-calm', async (job: Job) => {
      await new Promise((r) => setTimeout(r, 5));
      if (failOnce.has(job.data.i) && job.attemptsMade === 0) throw new Error(`transient ${job.data.i % 3}`);
      return { ok: true };
    }, { connection: connectionFor(redis.url), concurrency: 4, settings: { backoffStrategy: () => 100 + Math.floor(Math.random() * 900) } });
    open.push(worker);
    // 20 jobs/s for 4 s, ~12 % failing once with jittered backoff: ~7 retries per 3 s window, budget 0.2 x 60 + 3 = 15.
    for (let s = 0; s < 8; s++) {
      const batch = Array.from({ length: 10 }, (_, k) => s * 10 + k);
      for (const i of batch) if (random() < 0.12) failOnce.add(i);
      await queue.addBulk(batch.map((i) => ({ name: 'call', data: { i }, opts: { attempts: 3, backoff: { type: 'custom' } } })));
      await new Promise((r) => setTimeout(r, 500));
    }
    await until(async () => (await queue.getJobCounts('completed')).completed === 80, 15_000, 'calm jobs');
    await new Promise((r) => setTimeout(r, 800)); // the sidecar has read the tail
    const events = await ledger();
    const retries = events.filter((e) => e.kind === 'job.started' && e.queue === 'p-calm' && (e.attempt ?? 1) > 1).length;
    expect(retries).toBeGreaterThanOrEqual(3); // there were retries; they stayed within the budget
    expect(events.filter(mine('calm'))).toEqual([]);
    expect(await queue.isPaused()).toBe(false);
    const metrics = await sidecar.metrics();
    expect(sumMetric(metrics, 'warden_retry_ratio', { policy: 'calm' })).toBeLessThan(sumMetric(metrics, 'warden_retry_budget_ratio', { policy: 'calm' }));
  });

  it('an admin forces a breaker open and closed through the CLI, recorded with the actor; compliance may list but not force', async () => {
    const queue = new Queue('p-calm', { connection: connectionFor(redis.url) });
    open.push(queue);
    const env = { ...process.env, WARDEN_API_TOKEN: ADMIN };
    const denied = await api('POST', '/v1/breakers/bullmq.queue.p-calm/open?actor=mallory', AUDITOR);
    expect(denied.status).toBe(403);
    const unknown = await api('POST', '/v1/breakers/bullmq.queue.nope/open?actor=alice', ADMIN);
    expect(unknown.status).toBe(404);

    const opened = await run(process.execPath, [CLI, 'breaker', 'open', 'bullmq.queue.p-calm', '--actor', 'alice', '--url', sidecar.url], { env });
    expect(opened.stdout).toMatch(/bullmq\.queue\.p-calm {2}open {2}policy calm@1 .* forced open by alice/);
    await until(async () => queue.isPaused(), 5_000, 'forced open pauses the queue');
    const ev = (await ledger()).filter(mine('calm'));
    expect(ev.find((e) => e.kind === 'breaker.opened')).toMatchObject({ actor: 'alice', decision: 'pause' });
    expect(ev.find((e) => e.kind === 'policy.decision' && e.decision === 'force_open')).toMatchObject({ actor: 'alice' });
    // The token that asked is kept beside the person it names.
    expect(ev.find((e) => e.kind === 'breaker.opened')!.attrs['evidence.via_token']).toBe('ops-admin');

    const listed = await run(process.execPath, [CLI, 'breaker', 'list', '--url', sidecar.url, '--token', AUDITOR]);
    expect(listed.stdout).toContain('bullmq.queue.p-calm  open');

    await run(process.execPath, [CLI, 'breaker', 'close', 'bullmq.queue.p-calm', '--actor', 'bob', '--url', sidecar.url], { env });
    await until(async () => !(await queue.isPaused()), 5_000, 'forced close resumes the queue');
    await run(process.execPath, [CLI, 'breaker', 'auto', 'bullmq.queue.p-calm', '--actor', 'bob', '--url', sidecar.url], { env });
    const after = (await ledger()).filter(mine('calm'));
    expect(after.find((e) => e.kind === 'breaker.closed')).toMatchObject({ actor: 'bob', decision: 'restore' });
    expect(after.some((e) => e.decision === 'force_auto' && e.actor === 'bob')).toBe(true);
    const { body } = await api('GET', '/v1/breakers', ADMIN);
    expect(body.breakers.find((b: { key: string }) => b.key === 'bullmq.queue.p-calm')).toMatchObject({ phase: 'closed', forced: null });
  });
});

describe('drift on BullMQ job data and results', () => {
  it('an unapproved model version produces a require_approval decision for that work', async () => {
    const queue = new Queue('p-drift', { connection: connectionFor(redis.url) });
    open.push(queue);
    const ok = await queue.add('score', { model: 'scorer', model_version: '1', x: 0.5 });
    const bad = await queue.add('score', { model: 'scorer', model_version: '9', x: 0.5 });
    await until(async () => (await ledger()).some((e) => mine('models')(e) && e.decision === 'require_approval'), 10_000, 'drift decision');
    const d = (await ledger()).filter((e) => mine('models')(e) && e.decision === 'require_approval');
    expect(d).toHaveLength(1);
    expect(d[0]).toMatchObject({ kind: 'policy.decision', job_id: bad.id, model: 'scorer', model_version: '9', correlation_id: `bullmq:p-drift:${bad.id}`, policy_version: '2' });
    expect(d[0].attrs).toMatchObject({ finding: 'unapproved_model_version', approved: '1', policy_digest: policyDigest });
    expect(d.some((e) => e.job_id === ok.id)).toBe(false);
  });

  it('a shifted score distribution trips the statistical detector; a same-distribution sample does not', async () => {
    const queue = new Queue('p-drift', { connection: connectionFor(redis.url) });
    open.push(queue);
    const worker = new Worker('p-drift', async (job: Job) => ({ score: job.data.score, served_model: 'scorer' }), { connection: connectionFor(redis.url), concurrency: 1 });
    open.push(worker);
    const random = rng(42);
    const normal = (mean: number) => mean + 0.1 * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    const add = async (n: number, mean: number) => {
      await queue.addBulk(Array.from({ length: n }, () => ({ name: 'score', data: { model: 'scorer', model_version: '1', score: normal(mean) } })));
    };
    const completedWithScore = async () => (await ledger()).filter((e) => e.kind === 'job.completed' && e.queue === 'p-drift' && typeof e.attrs['output.score'] === 'number').length;
    await add(60, 0.5); // baseline
    await add(40, 0.5); // same distribution
    await until(async () => (await completedWithScore()) >= 100, 15_000, 'baseline and same-distribution scores');
    await new Promise((r) => setTimeout(r, 300));
    expect((await ledger()).filter((e) => mine('models')(e) && e.decision === 'drift')).toEqual([]);
    const sameP = sumMetric(await sidecar.metrics(), 'warden_drift_score', { model: 'scorer', metric: 'score' });
    expect(sameP).toBeGreaterThan(0.05);

    await add(40, 0.75); // shifted
    await until(async () => (await ledger()).some((e) => mine('models')(e) && e.decision === 'drift'), 15_000, 'statistical drift decision');
    const drift = (await ledger()).find((e) => mine('models')(e) && e.decision === 'drift')!;
    expect(drift.attrs).toMatchObject({ finding: 'statistical_drift', metric: 'score', method: 'ks', threshold: 0.05, reference_n: 60 });
    expect(drift.attrs.score as number).toBeLessThanOrEqual(0.05);
    expect(drift.model).toBe('scorer');
    expect(sumMetric(await sidecar.metrics(), 'warden_drift_score', { model: 'scorer', metric: 'score' })).toBeLessThanOrEqual(0.05);
  });
});

describe('policy file reload without a restart', () => {
  it('a valid change applies (digest recorded); a bad change is rejected, recorded with the key, and the old policies stay', async () => {
    const policyFile = join(dir.path, 'policies.yaml');
    writeFileSync(policyFile, POLICY_FILE.replace('version: 7', 'version: 8'));
    const digest = createHash('sha256').update(readFileSync(policyFile)).digest('hex');
    await until(async () => (await ledger()).some((e) => e.decision === 'reload' && e.attrs.policy_digest === digest), 10_000, 'reload decision');
    writeFileSync(policyFile, POLICY_FILE.replace('budgetRatio: 0.2', 'budgetRatio: lots'));
    await until(async () => (await ledger()).some((e) => e.decision === 'reload_rejected'), 10_000, 'rejected reload');
    const rejected = (await ledger()).find((e) => e.decision === 'reload_rejected')!;
    expect(rejected.reason).toContain('policies[0].retryStorm.budgetRatio: expected number, received string');
    expect(rejected.attrs.policy_digest).toBe(digest); // still the last good file
    const { body } = await api('GET', '/v1/breakers', AUDITOR);
    expect(body.breakers.length).toBeGreaterThan(0);
  });
});

describe('health of the sidecar with policies', () => {
  it('serves /metrics with the policy metrics', async () => {
    const r = await httpGet(`${sidecar.url}/metrics`);
    for (const name of ['warden_breaker_state', 'warden_policy_decisions_total', 'warden_drift_score', 'warden_retry_ratio', 'warden_retry_budget_ratio']) {
      expect(r.body).toContain(`# TYPE ${name}`);
    }
  });
});
