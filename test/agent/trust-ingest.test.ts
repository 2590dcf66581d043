/**
 * The ingest trust boundary on a real `warden start` process (real Redis with a real BullMQ queue, a
 * real ClickHouse the ledger ships to, the example policy file): what an ingest token can and cannot
 * do. Each `it` reproduces one observation of issue 12 (a worker's claims became the sidecar's facts)
 * and fails on the code before the fix.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import { newEventId } from '../../core/ids.js';
import { Spool } from '../../ledger/spool/spool.js';
import { startClickHouse, startRedis, sumMetric, tempDir, type ClickHouseServer, type RedisServer, type TempDir } from '../harness/index.js';
import { connectionFor, until } from '../harness/bullmq.js';
import { startSidecarProcess, type SidecarProcess } from '../harness/sidecar.js';

const INGEST = 'ingest-token-0123456789abcdef0123';
const SCOPED = 'scoped-token-0123456789abcdef01234';
const AUDITOR = 'audit-token-0123456789abcdef012345';
const FLOOD = 'flood-token-0123456789abcdef0123456';
const POLICY_FILE = resolve('policies/examples/default.yaml');

let redis: RedisServer;
let clickhouse: ClickHouseServer;
let dir: TempDir;
let sidecar: SidecarProcess;
let dataDir: string;
let victim: Queue;

beforeAll(async () => {
  [redis, clickhouse, dir] = await Promise.all([startRedis(), startClickHouse(), tempDir('warden-trust-ingest')]);
  // A real queue the sidecar's collector reads (discovery: every queue under the prefix).
  victim = new Queue('victim', { connection: connectionFor(redis.url) });
  await victim.add('work', { n: 1 });
  const config = join(dir.path, 'warden.yaml');
  writeFileSync(config, `
bullmq: { blockMs: 100, discoverIntervalMs: 200, countsIntervalMs: 300 }
clickhouse: { mode: server, url: ${clickhouse.url}, flushIntervalMs: 100 }
policies: { file: ${POLICY_FILE}, evaluateIntervalMs: 100 }
api:
  maxBodyBytes: 8388608
  ratePerMinute: 600
  refusedSummaryIntervalMs: 300
  tokens:
    - { name: pipeline, role: ingest, token: ${INGEST} }
    - { name: ocr-worker, role: ingest, token: ${SCOPED}, scopes: { systems: [temporal], queues: [ocr] } }
    - { name: auditor, role: compliance, token: ${AUDITOR} }
    - { name: flood, role: compliance, token: ${FLOOD} }
`);
  sidecar = await startSidecarProcess({ redisUrl: redis.url, dataDir: dir.path, config });
  dataDir = join(dir.path, 'data');
  await until(async () => sumMetric(await sidecar.metrics(), 'warden_queue_jobs', { queue: 'victim' }) > 0, 20_000, 'the collector reads victim');
}, 120_000);

afterAll(async () => {
  await victim?.close();
  await sidecar?.proc.stop();
  await Promise.all([redis?.dispose(), clickhouse?.dispose()]);
  await dir?.cleanup();
});

async function post(events: unknown[], token = INGEST): Promise<{ status: number; body: any }> {
  const res = await fetch(`${sidecar.url}/v1/events`, {
    method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ events }),
  });
  return { status: res.status, body: await res.json() };
}

async function get(path: string, token: string | null = AUDITOR): Promise<{ status: number; body: any; text: string }> {
  const res = await fetch(`${sidecar.url}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  const text = await res.text();
  let body: unknown = text;
  try { body = JSON.parse(text); } catch { /* JSON lines or text */ }
  return { status: res.status, body, text };
}

async function ledger(): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const rec of Spool.read(dataDir)) out.push(rec.event);
  return out;
}

/** 60 jobs x 4 attempts, each failing with "boom" but the last: a retry storm by any measure. */
function storm(o: { source: 'bullmq' | 'temporal'; queue: string }): WardenEvent[] {
  const out: WardenEvent[] = [];
  const t0 = Date.now() - 5000;
  for (let j = 0; j < 60; j++) {
    for (let a = 1; a <= 4; a++) {
      const ts = t0 + j * 50 + a * 10;
      const common = o.source === 'bullmq'
        ? { source: 'bullmq' as const, queue: o.queue, job_id: `${o.queue}-${j}`, job_name: 'work' }
        : { source: 'temporal' as const, queue: o.queue, workflow_id: `wf-${j}`, activity_type: 'callModel' };
      out.push(makeEvent({ ...common, kind: o.source === 'bullmq' ? 'job.started' : 'activity.started', ts, attempt: a }));
      if (a < 4) out.push(makeEvent({ ...common, kind: o.source === 'bullmq' ? 'job.attempt_failed' : 'activity.attempt_failed', ts: ts + 5, attempt: a, error: 'boom' }));
    }
  }
  return out;
}

describe('what an ingest token cannot do', () => {
  it('(1) cannot pause a queue the sidecar collects: 420 fabricated attempts are recorded but move no breaker; claims in scope still drive Temporal breakers', async () => {
    const fake = storm({ source: 'bullmq', queue: 'victim' });
    expect(fake).toHaveLength(420);
    expect((await post(fake)).status).toBe(200);
    // The same storm about a Temporal task queue (no collector reads it): the example policy trips.
    // Decisions are recorded in order, so once that one is in the ledger a victim decision would be too.
    expect((await post(storm({ source: 'temporal', queue: 'llm' }))).status).toBe(200);
    await until(async () => (await ledger()).some((e) => e.kind === 'policy.decision' && e.policy === 'llm-activity-storm'), 20_000, 'the Temporal breaker opens');
    const events = await ledger();
    expect(events.filter((e) => e.kind.startsWith('breaker.') || e.kind === 'policy.decision').filter((e) => e.queue === 'victim' || String(e.attrs.scope ?? '').includes('victim'))).toEqual([]);
    expect(await victim.isPaused()).toBe(false);
    const breakers = await get('/v1/breakers');
    expect(JSON.stringify(breakers.body)).not.toContain('bullmq.queue.victim');
    // The claims are in the ledger, saying who made them.
    const claims = events.filter((e) => e.queue === 'victim' && e.kind === 'job.attempt_failed');
    expect(claims).toHaveLength(180);
    expect(new Set(claims.map((e) => e.attrs.received_via))).toEqual(new Set(['http:pipeline']));
  });

  it('(2) cannot write sidecar-owned records (400 naming the kind), and its approvals say who sent them', async () => {
    for (const kind of ['policy.decision', 'breaker.opened', 'breaker.closed', 'ledger.read', 'ledger.verified'] as const) {
      for (const source of ['bullmq', 'temporal'] as const) {
        const r = await post([makeEvent({ kind, source, queue: 'victim', decision: 'require_approval', actor: 'mallory' })]);
        expect(r.status).toBe(400);
        expect(r.body).toMatchObject({ field: 'kind' });
        expect(r.body.error).toContain(`"${kind}"`);
      }
    }
    const gap = await post([makeEvent({ kind: 'collector.gap', source: 'warden', queue: 'victim', reason: 'nothing to see' })]);
    expect(gap.status).toBe(400);
    expect(gap.body).toMatchObject({ field: 'source' });

    // A backdated approval by the CEO, claiming to come from elsewhere: recorded as a claim of this token.
    const ts = Date.now() - 30 * 86_400_000;
    const approval = makeEvent({ kind: 'approval.granted', source: 'temporal', ts, event_id: newEventId(ts), actor: 'ceo@example.com', correlation_id: 'loan-7', queue: 'approvals', attrs: { received_via: 'warden-collector' } });
    expect((await post([approval])).status).toBe(200);
    const stored = (await ledger()).find((e) => e.event_id === approval.event_id)!;
    expect(stored.attrs.received_via).toBe('http:pipeline');
    const since = encodeURIComponent(new Date(ts - 1000).toISOString());
    await until(async () => {
      const r = await get(`/v1/ledger/approvals?since=${since}&format=json`);
      return r.status === 200 && JSON.stringify(r.body).includes('loan-7');
    }, 30_000, 'the approval reaches ClickHouse');
    const claimed = await get(`/v1/ledger/approvals?since=${since}&received_via=http:pipeline&format=json`);
    expect(JSON.stringify(claimed.body)).toContain('loan-7');
    const facts = await get(`/v1/ledger/approvals?since=${since}&received_via=none&format=json`);
    expect(facts.status).toBe(200);
    expect(JSON.stringify(facts.body)).not.toContain('loan-7');
    const events = await get(`/v1/ledger/events?source=temporal&received_via=http:pipeline&kind=approval.granted`);
    expect(events.status).toBe(200);
    expect(events.text).toContain('loan-7');
    expect((await get('/v1/ledger/events?received_via=mallory')).status).toBe(400);
    expect((await get('/v1/ledger/events?source=kafka')).status).toBe(400);
  });

  it('(scopes) a scoped token may send only for its systems and queues (400 naming the scope)', async () => {
    const bull = await post([makeEvent({ kind: 'job.completed', source: 'bullmq', queue: 'ocr' })], SCOPED);
    expect(bull.status).toBe(400);
    expect(bull.body).toMatchObject({ field: 'source' });
    expect(bull.body.error).toContain('systems=temporal');
    const other = await post([makeEvent({ kind: 'activity.completed', source: 'temporal', queue: 'claims' })], SCOPED);
    expect(other.status).toBe(400);
    expect(other.body).toMatchObject({ field: 'queue' });
    expect(other.body.error).toContain('queues=ocr');
    const ok = makeEvent({ kind: 'activity.completed', source: 'temporal', queue: 'ocr' });
    expect((await post([ok], SCOPED)).status).toBe(200);
    expect((await ledger()).find((e) => e.event_id === ok.event_id)!.attrs.received_via).toBe('http:ocr-worker');
  });

  it('(5) unauthenticated and rate-limited requests are counted and summarized, not written one by one', async () => {
    const before = (await ledger()).filter((e) => e.kind === 'ledger.read').length;
    for (let i = 0; i < 700; i += 50) {
      await Promise.all(Array.from({ length: 50 }, () => get('/v1/ledger/verify', null).then((r) => expect(r.status).toBe(401))));
    }
    let limited = 0;
    for (let i = 0; i < 660; i += 60) {
      const rs = await Promise.all(Array.from({ length: 60 }, () => get('/v1/breakers', FLOOD)));
      limited += rs.filter((r) => r.status === 429).length;
    }
    expect(limited).toBeGreaterThan(0);
    const summaries = async () => (await ledger()).filter((e) => e.kind === 'ledger.read' && typeof e.attrs.summary === 'string');
    const counted = async (cause: string) => (await summaries()).filter((e) => e.attrs.summary === cause).reduce((n, e) => n + Number(e.attrs.count), 0);
    await until(async () => (await counted('unauthenticated')) === 700 && (await counted('rate_limited')) === limited, 20_000, 'the summaries are written');
    const reads = (await ledger()).filter((e) => e.kind === 'ledger.read');
    // A handful of summary records, not 700 + the rate-limited ones.
    expect(reads.length - before).toBeLessThan(30);
    expect(reads.filter((e) => e.attrs.status === 401 && e.attrs.summary === undefined)).toEqual([]);
    const text = await sidecar.metrics();
    expect(sumMetric(text, 'warden_api_refused_requests_total', { cause: 'unauthenticated' })).toBe(700);
    expect(sumMetric(text, 'warden_api_refused_requests_total', { cause: 'rate_limited' })).toBe(limited);
  });

  it('(6) refuses a ts no date can hold and event IDs beyond the ULID range, naming the field', async () => {
    const ts = await post([{ ...makeEvent({ kind: 'activity.completed', source: 'temporal' }), ts: 8640000000000001 }]);
    expect(ts.status).toBe(400);
    expect(ts.body).toMatchObject({ field: 'ts' });
    const id = await post([{ ...makeEvent({ kind: 'activity.completed', source: 'temporal' }), event_id: '8ZZZZZZZZZZZZZZZZZZZZZZZZZ' }]);
    expect(id.status).toBe(400);
    expect(id.body).toMatchObject({ field: 'event_id' });
  });

  it('(7) one request with 2 000 queues cannot grow /metrics without bound: series per family are capped, the rest folded and counted', async () => {
    const before = (await sidecar.metrics()).length;
    const events = Array.from({ length: 2000 }, (_, i) => makeEvent({ kind: 'activity.completed', source: 'temporal', queue: `q-${i}`, activity_type: 'spam', duration_ms: 5 }));
    expect((await post(events)).status).toBe(200);
    const text = await sidecar.metrics();
    const series = text.split('\n').filter((l) => l.startsWith('warden_jobs_total{'));
    expect(series.length).toBeLessThanOrEqual(1001);
    expect(series.some((l) => l.includes('queue="__overflow__"'))).toBe(true);
    expect(sumMetric(text, 'warden_metrics_label_overflow_total', { family: 'warden_jobs_total' })).toBeGreaterThanOrEqual(1000);
    // The duration histogram folds the same way (the uncapped sidecar grew 49 KB -> 4.1 MB here).
    const histogramSets = new Set(text.split('\n').filter((l) => l.startsWith('warden_job_duration_seconds_count{')));
    expect(histogramSets.size).toBeLessThanOrEqual(1001);
    expect(text.length - before).toBeLessThan(3_000_000);
  });

  it('(9) ingested input is capped as the collector caps it; oversized attrs are refused naming the field', async () => {
    const big = makeEvent({ kind: 'activity.completed', source: 'temporal', queue: 'llm', input: { prompt: 'x'.repeat(700_000) } });
    expect((await post([big])).status).toBe(200);
    const stored = (await ledger()).find((e) => e.event_id === big.event_id)!;
    expect(stored.input).toMatchObject({ $truncated: true });
    expect(JSON.stringify(stored).length).toBeLessThan(20_000);
    const attrs = await post([makeEvent({ kind: 'activity.completed', source: 'temporal', attrs: { blob: 'y'.repeat(700_000) } })]);
    expect(attrs.status).toBe(400);
    expect(attrs.body).toMatchObject({ field: 'attrs.blob' });
    const many = await post([makeEvent({ kind: 'activity.completed', source: 'temporal', attrs: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, i])) })]);
    expect(many.status).toBe(400);
    expect(many.body).toMatchObject({ field: 'attrs' });
  });

  it('leaves a ledger that verifies (hash chain and signed checkpoints) after all of it', async () => {
    const r = await get('/v1/ledger/verify');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ ok: true });
    expect(r.body.records).toBeGreaterThan(2500);
  });
});
