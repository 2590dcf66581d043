/** The `warden` command as a user runs it: exit codes, messages that name what is wrong, output formats. */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import { Spool } from '../../ledger/spool/spool.js';
import { startRedis, tempDir, type RedisServer, type TempDir } from '../harness/index.js';

const CLI = resolve('dist/agent/cli.js');
let dir: TempDir;

function warden(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const T0 = Date.parse('2026-11-20T10:00:00Z');
function story(cid: string, queue: string, jobId: string, start: number): WardenEvent[] {
  const base = { source: 'bullmq' as const, correlation_id: cid, queue, job_id: jobId, job_name: 'gen', model: 'llm', model_version: '3' };
  return [
    makeEvent({ ...base, kind: 'job.added', ts: start, input: { q: 'a "quoted", comma\nline' } }),
    makeEvent({ ...base, kind: 'job.started', ts: start + 10, attempt: 1 }),
    makeEvent({ ...base, kind: 'job.attempt_failed', ts: start + 20, attempt: 1, error: 'timeout' }),
    makeEvent({ ...base, kind: 'job.started', ts: start + 30, attempt: 2 }),
    makeEvent({ ...base, kind: 'job.completed', ts: start + 40, attempt: 2, duration_ms: 10 }),
  ];
}

async function writeLedger(dataDir: string): Promise<WardenEvent[]> {
  const spool = await Spool.open({ dir: dataDir });
  // Appended out of time order on purpose: lineage orders by time.
  const events = [...story('order-2', 'embed', '7', T0 + 1000), ...story('order-1', 'embed', '5', T0), ...story('order-1', 'model', '9', T0 + 100)];
  await spool.append(events);
  await spool.close();
  return events;
}

beforeAll(async () => { dir = await tempDir('warden-cli'); });
afterAll(async () => { await dir.cleanup(); });

describe('warden CLI', () => {
  it('is reachable as `npx warden` from the repository (the package bin entry)', async () => {
    const r = await new Promise<{ code: number; stdout: string }>((res) => {
      execFile('npx', ['--no-install', 'warden', '--help'], { env: { ...process.env, npm_config_yes: 'false' } }, (err, stdout) => res({ code: err ? 1 : 0, stdout }));
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Usage: warden/);
    expect(r.stdout).toMatch(/ledger/);
  });

  it('config check prints the resolved config, or names the bad key with exit 2', async () => {
    const ok = await warden(['config', 'check'], { WARDEN_QUEUES: 'a,b' });
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout.slice(0, ok.stdout.lastIndexOf('}') + 1)).bullmq.queues).toEqual(['a', 'b']);
    const file = join(dir.path, 'bad.yaml');
    writeFileSync(file, 'bullmq:\n  batchSize: lots\n');
    const bad = await warden(['config', 'check', '--config', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('bullmq.batchSize');
    expect(bad.stderr).not.toMatch(/at .*\.js:\d+/); // a message, not a stack trace
  });

  it('ledger query filters and prints table, jsonl and csv; lineage is the ordered story', async () => {
    const dataDir = join(dir.path, 'q');
    await writeLedger(dataDir);
    const jsonl = await warden(['ledger', 'query', '--data-dir', dataDir, '--queue', 'embed', '--kind', 'job.completed', 'job.attempt_failed', '--format', 'jsonl']);
    expect(jsonl.code).toBe(0);
    const rows = jsonl.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toHaveLength(4);
    expect(rows.every((r) => r.queue === 'embed' && ['job.completed', 'job.attempt_failed'].includes(r.kind))).toBe(true);
    expect(rows[0].seq).toBeGreaterThan(0);
    expect(rows[0].hash).toMatch(/^[0-9a-f]{64}$/);

    const since = await warden(['ledger', 'query', '--data-dir', dataDir, '--since', new Date(T0 + 500).toISOString(), '--format', 'jsonl']);
    expect(since.stdout.trim().split('\n').map((l) => JSON.parse(l).correlation_id)).toEqual(Array(5).fill('order-2'));

    const csv = await warden(['ledger', 'query', '--data-dir', dataDir, '--kind', 'job.added', '--format', 'csv']);
    const lines = csv.stdout.split('\r\n');
    expect(lines[0].startsWith('seq,hash,event_id,ts,kind')).toBe(true);
    expect(csv.stdout).toContain('"{""q"":""a \\""quoted\\"", comma\\nline""}"'); // RFC 4180 quoting of a JSON cell

    const table = await warden(['ledger', 'query', '--data-dir', dataDir, '--job-id', '9']);
    expect(table.stdout.split('\n')[0]).toMatch(/^seq\s+time\s+kind/);
    expect(table.stdout.trim().split('\n')).toHaveLength(6);

    const lin = await warden(['ledger', 'lineage', 'order-1', '--data-dir', dataDir, '--format', 'jsonl']);
    const story1 = lin.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(story1).toHaveLength(10);
    expect(story1.map((r) => r.ts)).toEqual([...story1.map((r) => r.ts)].sort((a, b) => a - b));
    expect(story1[0]).toMatchObject({ kind: 'job.added', job_id: '5' });
  });

  it('prints the ClickHouse schema, and its cluster form on request', async () => {
    const single = await warden(['ledger', 'schema']);
    expect(single.code).toBe(0);
    expect(single.stdout).toMatch(/CREATE TABLE IF NOT EXISTS .*warden_ledger/);
    expect(single.stdout).toContain('MergeTree');
    expect(single.stdout).not.toContain('ON CLUSTER');
    const cluster = await warden(['ledger', 'schema', '--cluster', 'prod_cluster']);
    expect(cluster.code).toBe(0);
    expect(cluster.stdout).toContain('ON CLUSTER');
    expect(cluster.stdout).toContain('ReplicatedMergeTree');
    expect(cluster.stdout).toMatch(/Distributed\(/);
    expect(cluster.stdout).toContain('prod_cluster');
  });

  it('rejects a bad time filter with a message that says what is accepted', async () => {
    const dataDir = join(dir.path, 'q');
    const r = await warden(['ledger', 'query', '--data-dir', dataDir, '--since', 'yesterday-ish']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('yesterday-ish');
  });

  it('ledger verify: exit 0 on an intact ledger, exit 1 naming the first bad seq when a byte is flipped', async () => {
    const dataDir = join(dir.path, 'v');
    await writeLedger(dataDir);
    const ok = await warden(['ledger', 'verify', '--data-dir', dataDir]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/ledger intact: 15 records/);
    const seg = join(dataDir, 'ledger', readdirSync(join(dataDir, 'ledger')).find((f) => f.endsWith('.jsonl'))!);
    const lines = readFileSync(seg, 'utf8').split('\n');
    lines[6] = lines[6].replace('"attempt":1', '"attempt":2'); // record seq 7
    writeFileSync(seg, lines.join('\n'));
    const bad = await warden(['ledger', 'verify', '--data-dir', dataDir]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/first bad record seq 7\b/);
  });
});

describe('warden demo', () => {
  let redis: RedisServer;
  beforeAll(async () => { redis = await startRedis(); });
  afterAll(async () => { await redis?.dispose(); });

  it('runs the pipeline beside the sidecar: the ledger fills with every stage, inputs redacted', async () => {
    const dataDir = join(dir.path, 'demo');
    const r = await warden(['demo', '--duration', '4', '--rate', '25', '--data-dir', dataDir], { WARDEN_REDIS_URL: redis.url, WARDEN_METRICS_ADDR: '127.0.0.1:0', WARDEN_LOG_LEVEL: 'warn' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const q = await warden(['ledger', 'query', '--data-dir', dataDir, '--kind', 'job.completed', '--format', 'jsonl']);
    const done = q.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(new Set(done.map((e) => e.queue))).toEqual(new Set(['demo-ingest', 'demo-embed', 'demo-model-call', 'demo-post-process']));
    // One document's lineage crosses all four queues under one correlation ID.
    const lin = await warden(['ledger', 'lineage', 'demo-doc-3', '--data-dir', dataDir, '--format', 'jsonl']);
    const queues = lin.stdout.trim().split('\n').map((l) => JSON.parse(l).queue);
    expect(queues[0]).toBe('demo-ingest');
    expect(new Set(queues).size).toBeGreaterThanOrEqual(3);
    const all = await warden(['ledger', 'query', '--data-dir', dataDir, '--kind', 'job.added', '--format', 'jsonl']);
    expect(all.stdout).not.toContain('@example.com');
    expect(all.stdout).toContain('[REDACTED:email]');
  });
});
