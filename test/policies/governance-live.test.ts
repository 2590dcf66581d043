/**
 * Governance that does not cry wolf, end to end: the real `warden start` with the shipped example
 * policy (time compressed in a test copy: windows and reset timeouts / 10, every threshold as
 * shipped), real BullMQ workers on a real Redis. A noisy queue (6 % failing with one message,
 * jittered exponential retries) runs beside a queue that goes through a real storm and heals with
 * the same noise. The noisy queue trips nothing; the storm opens within the window, pauses the queue,
 * its failing probes re-open it, and after healing the queue resumes on its own. Then, with the
 * sidecar stopped, `warden policy backtest` over that run's ledger gives exactly the decisions the
 * live engine took (scope, policy, decision, time, key evidence), and leaves the data dir
 * byte-for-byte unchanged; the shipped file itself, unmodified, trips on the storm only.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Queue, Worker, type Job } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import pino from 'pino';
import { DEMO_QUEUES, runDemo } from '../../agent/demo.js';
import type { WardenEvent } from '../../core/event.js';
import { Spool } from '../../ledger/spool/spool.js';
import type { BacktestDecision } from '../../policies/backtest.js';
import { startRedis, tempDir, type RedisServer, type TempDir } from '../harness/index.js';
import { connectionFor, until } from '../harness/bullmq.js';
import { startSidecarProcess, sumMetric, type SidecarProcess } from '../harness/sidecar.js';

const run = promisify(execFile);
const CLI = resolve('dist/agent/cli.js');
const SHIPPED = resolve('policies/examples/default.yaml');
const TOKEN = 'audit-token-0123456789abcdef01234';
const NOISY = 'g-noisy';
const STORMY = 'g-storm';
const SCALE = 10; // time compression of the test copy
// Long enough that the close comes while the noise still runs even when one more probe window fails
// under load (the reset timeout doubles: half-open at +9, +15 and then +27 s): seen once in a full run.
const RUN_MS = 40_000;
const STORM = { from: 6_000, to: 12_000 };

let redis: RedisServer;
let dir: TempDir;
let sidecar: SidecarProcess;
let dataDir: string;
let policyCopy: string;
let windowMs: number;
let t0 = 0;
let sawPaused = false;
const open: { close(): Promise<void> }[] = [];

/** The shipped file with every window and timeout divided by SCALE; thresholds and counts untouched. */
function compressed(): string {
  const doc = parseYaml(readFileSync(SHIPPED, 'utf8')) as { policies: Array<{ name: string; retryStorm?: Record<string, number>; breaker?: Record<string, number> }> };
  const p = doc.policies.find((x) => x.name === 'bullmq-retry-storm')!;
  p.retryStorm!.windowMs /= SCALE;
  for (const k of ['resetTimeoutMs', 'maxResetTimeoutMs'] as const) p.breaker![k] /= SCALE;
  windowMs = p.retryStorm!.windowMs;
  return stringifyYaml(doc);
}

const inStorm = () => Date.now() - t0 >= STORM.from && Date.now() - t0 < STORM.to;

beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedis(), tempDir('warden-governance')]);
  policyCopy = join(dir.path, 'policies.yaml');
  writeFileSync(policyCopy, compressed());
  const config = join(dir.path, 'warden.yaml');
  writeFileSync(config, `
bullmq: { blockMs: 100, discoverIntervalMs: 200, countsIntervalMs: 300 }
clickhouse: { mode: off }
policies: { file: ${policyCopy}, evaluateIntervalMs: 200 }
api:
  tokens:
    - { name: auditor, role: compliance, token: ${TOKEN} }
`);
  sidecar = await startSidecarProcess({ redisUrl: redis.url, dataDir: join(dir.path, 'side'), config, queues: [NOISY, STORMY] });
  dataDir = join(dir.path, 'side', 'data');

  const connection = connectionFor(redis.url);
  const queues = [NOISY, STORMY].map((n) => new Queue(n, { connection }));
  open.push(...queues);
  const opts = { attempts: 4, backoff: { type: 'exponential', delay: 100, jitter: 0.5 } } as const;
  const work = (msg: string, storm: boolean) => async (_job: Job) => {
    await new Promise((r) => setTimeout(r, 5 + Math.random() * 10));
    if (storm && inStorm()) throw new Error('model provider rate limited (429)');
    if (Math.random() < 0.06) throw new Error(msg);
    return { ok: true };
  };
  open.push(new Worker(NOISY, work('embedding service 503', false), { connection, concurrency: 10 }));
  open.push(new Worker(STORMY, work('model call timed out', true), { connection, concurrency: 10 }));

  t0 = Date.now();
  let i = 0;
  while (Date.now() - t0 < RUN_MS) {
    for (const q of queues) await q.addBulk(Array.from({ length: 10 }, () => ({ name: 'call', data: { i: ++i }, opts })));
    if (!sawPaused && inStorm()) sawPaused = await queues[1].isPaused();
    await new Promise((r) => setTimeout(r, 250));
  }
  // The healed queue resumes on its own and drains.
  await until(async () => !(await queues[1].isPaused()), 30_000, 'the stormy queue resumed');
  await until(async () => {
    const c = await Promise.all(queues.map((q) => q.getJobCounts('wait', 'active', 'delayed', 'prioritized')));
    return c.every((x) => Object.values(x).every((n) => n === 0));
  }, 30_000, 'both queues drained');
  await new Promise((r) => setTimeout(r, 1500)); // the sidecar has read the tail
}, 120_000);

afterAll(async () => {
  for (const o of open.reverse()) await o.close().catch(() => undefined);
  await sidecar?.proc.stop();
  await redis?.dispose();
  await dir?.cleanup();
});

async function ledger(): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const rec of Spool.read(dataDir)) out.push(rec.event);
  return out;
}

/** Every file under `root` with its sha256 (the data dir, byte for byte). */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const f = join(d, name);
      if (statSync(f).isDirectory()) walk(f);
      else out[f.slice(root.length)] = createHash('sha256').update(readFileSync(f)).digest('hex');
    }
  };
  walk(root);
  return out;
}

/** The comparable part of a decision: scope, policy, decision, transition, time, key evidence. */
const key = (d: { ts: number; policy: string; scope: string; decision: string; transition: string; retries: unknown; first: unknown; signals: unknown; probesOk: unknown }) =>
  `${d.ts} ${d.policy} ${d.scope} ${d.decision} ${d.transition} retries=${String(d.retries ?? '')} first=${String(d.first ?? '')} signals=${String(d.signals ?? '')} probes_ok=${String(d.probesOk ?? '')}`;

describe('the shipped example policy on a live sidecar: noise trips nothing, a storm beside it opens, pauses and heals', () => {
  let breakerRecords: WardenEvent[] = [];

  it('the noisy queue: retries and one dominant reason, and no decision at all', async () => {
    const events = await ledger();
    breakerRecords = events.filter((e) => e.source === 'warden' && e.kind.startsWith('breaker.'));
    const noisyFailures = events.filter((e) => e.queue === NOISY && e.kind === 'job.attempt_failed');
    expect(noisyFailures.length).toBeGreaterThan(20);
    expect(new Set(noisyFailures.map((e) => e.error))).toEqual(new Set(['embedding service 503']));
    expect(events.filter((e) => e.queue === NOISY && e.kind === 'job.started' && (e.attempt ?? 1) > 1).length).toBeGreaterThan(20);
    expect(events.filter((e) => e.source === 'warden' && (e.attrs.scope === `bullmq.queue.${NOISY}` || e.queue === NOISY))).toEqual([]);
    const metrics = await sidecar.metrics();
    expect(sumMetric(metrics, 'warden_breaker_state', { scope: `bullmq.queue.${NOISY}` })).toBe(0);
  });

  it('the storm opens within the window (pause), failing probes re-open it, and after healing (noise still there) it closes and the queue resumes', async () => {
    expect(breakerRecords.length).toBeGreaterThanOrEqual(3);
    expect(new Set(breakerRecords.map((e) => e.attrs.scope))).toEqual(new Set([`bullmq.queue.${STORMY}`]));
    const [opened] = breakerRecords;
    expect(opened).toMatchObject({ kind: 'breaker.opened', decision: 'pause', policy: 'bullmq-retry-storm' });
    expect(opened.ts - (t0 + STORM.from)).toBeLessThan(windowMs);
    expect(opened.ts).toBeGreaterThanOrEqual(t0 + STORM.from);
    expect(sawPaused).toBe(true); // BullMQ itself said the queue was paused during the storm
    const last = breakerRecords.at(-1)!;
    expect(last).toMatchObject({ kind: 'breaker.closed', decision: 'restore' });
    expect(last.ts).toBeGreaterThan(t0 + STORM.to);
    // Nothing re-opened after the close, though the noise went on.
    expect(last.ts).toBeLessThan(t0 + RUN_MS);
    const q = new Queue(STORMY, { connection: connectionFor(redis.url) });
    open.push(q);
    expect(await q.isPaused()).toBe(false);
    console.log(`live breaker: ${breakerRecords.map((e) => `${e.kind}@+${e.ts - t0}ms ${e.reason}`).join(' | ')}`);
  });

  it('warden policy explain on the live sidecar: window counts, budget, baseline, the signal closest to tripping', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'policy', 'explain', `bullmq.queue.${NOISY}`, '--url', sidecar.url, '--json'], { env: { ...process.env, WARDEN_API_TOKEN: TOKEN } });
    const body = JSON.parse(stdout) as { policies: Array<Record<string, any>> };
    const p = body.policies.find((x) => x.policy === 'bullmq-retry-storm')!;
    expect(p).toMatchObject({ phase: 'closed', window: { window_ms: windowMs }, budget: { allowed: expect.any(Number) } });
    expect(p.baseline.failure_rate).toBeGreaterThan(0);
    expect(p.baseline.failure_rate).toBeLessThan(0.2);
    expect(typeof p.closest === 'string' || p.closest === null).toBe(true);
    const text = (await run(process.execPath, [CLI, 'policy', 'explain', `bullmq.queue.${NOISY}`, '--url', sidecar.url], { env: { ...process.env, WARDEN_API_TOKEN: TOKEN } })).stdout;
    expect(text).toMatch(/retry budget: \d+ retries of [\d.]+ allowed/);
    expect(text).toMatch(/baseline failure rate [\d.]+ %/);
    expect(text).toMatch(/qualifies\s+dominant_reason/);
  });

  it('warden policy backtest over that run\'s ledger: exactly the live decisions, nothing for the noisy queue, the data dir byte-for-byte unchanged', async () => {
    await sidecar.proc.stop();
    const before = snapshot(dataDir);
    expect(Object.keys(before).some((f) => f.includes('ledger'))).toBe(true);
    const { stdout } = await run(process.execPath, [CLI, 'policy', 'backtest', policyCopy, '--data-dir', dataDir, '--format', 'jsonl'], { cwd: dir.path });
    const decisions = stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as BacktestDecision);
    const table = (await run(process.execPath, [CLI, 'policy', 'backtest', policyCopy, '--data-dir', dataDir, '--since', String(t0 - 60_000)], { cwd: dir.path })).stdout;
    expect(snapshot(dataDir)).toEqual(before); // no byte changed, no file created or removed
    expect(readdirSync(dir.path).sort()).toEqual(['policies.yaml', 'side', 'warden.yaml']); // nothing written beside it either

    const live = breakerRecords.map((e) => key({
      ts: e.ts, policy: e.policy!, scope: String(e.attrs.scope), decision: e.decision!, transition: `${String(e.attrs.from)}->${String(e.attrs.to)}`,
      retries: e.attrs['evidence.retries'], first: e.attrs['evidence.first_attempts'], signals: e.attrs['evidence.signals'], probesOk: e.attrs['evidence.probes_ok'],
    }));
    const replayed = decisions.filter((d) => d.transition !== null).map((d) => key({
      ts: d.ts, policy: d.policy, scope: d.scope, decision: d.decision, transition: d.transition!,
      retries: d.evidence.retries, first: d.evidence.first_attempts, signals: d.evidence.signals, probesOk: d.evidence.probes_ok,
    }));
    expect(replayed).toEqual(live);
    expect(decisions.filter((d) => d.scope.includes(NOISY))).toEqual([]);
    expect(table).toContain(`bullmq.queue.${STORMY}`);
    expect(table).toMatch(/closed->open/);
    expect(table).not.toContain(NOISY);

    // The shipped file itself (windows of 30 s) over the same ledger: nothing on the noisy queue. (The
    // storm in this ledger was cut short by the pause; the shipped file on a whole storm is below.)
    const shipped = (await run(process.execPath, [CLI, 'policy', 'backtest', SHIPPED, '--data-dir', dataDir, '--format', 'jsonl'], { cwd: dir.path })).stdout
      .trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as BacktestDecision);
    expect(shipped.filter((d) => d.scope.includes(NOISY))).toEqual([]);
    expect(snapshot(dataDir)).toEqual(before);
  });
});

describe('the shipped example policy, unmodified, over the demo\'s storm: it trips on the storm and on nothing else', () => {
  let demoSidecar: SidecarProcess;
  let demoData: string;

  beforeAll(async () => {
    // Dry-run, so the storm runs its whole course (nothing pauses it) and every decision is still recorded.
    const config = join(dir.path, 'demo-warden.yaml');
    writeFileSync(config, `
bullmq: { blockMs: 100, discoverIntervalMs: 200, countsIntervalMs: 300 }
clickhouse: { mode: off }
policies: { file: ${SHIPPED}, dryRun: true, evaluateIntervalMs: 200 }
`);
    demoSidecar = await startSidecarProcess({ redisUrl: redis.url, dataDir: join(dir.path, 'demo'), config, queues: [...DEMO_QUEUES] });
    demoData = join(dir.path, 'demo', 'data');
    await runDemo({ redisUrl: redis.url, prefix: 'bull', durationSec: 18, rate: 20, storm: true, logger: pino({ level: 'silent' }) });
    await new Promise((r) => setTimeout(r, 1500));
    await demoSidecar.proc.stop();
  }, 90_000);

  afterAll(async () => demoSidecar?.proc.stop());

  it('live (dry-run) and in a backtest: demo-model-call opens, the noisy demo queues (5-8 % failing, one message each) never do', async () => {
    const events: WardenEvent[] = [];
    for await (const rec of Spool.read(demoData)) events.push(rec.event);
    const live = events.filter((e) => e.source === 'warden' && e.kind.startsWith('breaker.'));
    expect(live.find((e) => e.kind === 'breaker.opened')).toMatchObject({ decision: 'dry_run:pause', attrs: { scope: 'bullmq.queue.demo-model-call' } });
    expect(new Set(live.map((e) => e.attrs.scope))).toEqual(new Set(['bullmq.queue.demo-model-call']));
    // The noise was there: embed failed with its one message, and was retried.
    expect(events.filter((e) => e.queue === 'demo-embed' && e.kind === 'job.attempt_failed' && e.error === 'embedding service 503').length).toBeGreaterThan(5);
    const { stdout } = await run(process.execPath, [CLI, 'policy', 'backtest', SHIPPED, '--data-dir', demoData, '--format', 'jsonl'], { cwd: dir.path });
    const decisions = stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as BacktestDecision).filter((d) => d.transition !== null);
    expect(decisions.find((d) => d.transition === 'closed->open')).toMatchObject({ scope: 'bullmq.queue.demo-model-call' });
    expect(new Set(decisions.map((d) => d.scope))).toEqual(new Set(['bullmq.queue.demo-model-call']));
    // Exactly the live decisions (the live ones are named dry_run:<action>: the sidecar ran in dry-run).
    expect(decisions.map((d) => `${d.ts} dry_run:${d.decision} ${d.transition}`)).toEqual(live.map((e) => `${e.ts} ${e.decision} ${String(e.attrs.from)}->${String(e.attrs.to)}`));
    console.log(`demo storm, shipped policy (dry-run): ${live.map((e) => `${e.kind} ${e.reason}`).join(' | ')}`);
  });
});
