/**
 * The pieces of the ingest trust boundary, one by one: scoped tokens in WARDEN_API_TOKENS and YAML,
 * provenance set by the sidecar, claims that never move a collected queue's breaker (open or closed),
 * the per-family series cap, and the provenance filter in both readers (spool and store SQL).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, parseTokens } from '../../agent/config.js';
import { EventIngest, outOfScope, RecentEventIds } from '../../agent/ingest.js';
import { WardenMetrics } from '../../agent/metrics.js';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import { Redactor } from '../../core/redact.js';
import { approvalsSql, decisionsSql, eventsSql } from '../../ledger/compliance/queries.js';
import { queryLedger } from '../../ledger/spool/query.js';
import { Spool } from '../../ledger/spool/spool.js';
import { Decider } from '../../policies/detect/decider.js';
import { parsePolicies } from '../../policies/loader.js';
import { sumMetric } from '../harness/index.js';
import { readAll, removeDir, tempDir } from '../harness/ledger.js';

let dir: string | undefined;
afterEach(async () => { if (dir) await removeDir(dir); dir = undefined; });

const T = 'x'.repeat(24);

describe('scoped ingest tokens', () => {
  it('WARDEN_API_TOKENS keeps name:role:token and takes scopes after it (commas inside scopes belong to the entry)', () => {
    expect(parseTokens(`a:compliance:${T},b:ingest:${T}y:systems=temporal;queues=claims,ocr,c:admin:${T}z`)).toEqual([
      { name: 'a', role: 'compliance', token: T },
      { name: 'b', role: 'ingest', token: `${T}y`, scopes: { systems: ['temporal'], queues: ['claims', 'ocr'] } },
      { name: 'c', role: 'admin', token: `${T}z` },
    ]);
    const cfg = loadConfig({ env: { WARDEN_API_TOKENS: `w:ingest:${T}:queues=ocr` } });
    expect(cfg.api.tokens[0]).toEqual({ name: 'w', role: 'ingest', token: T, scopes: { queues: ['ocr'] } });
  });

  it('refuses scopes on other roles, unknown systems, and one secret under two names', () => {
    expect(() => loadConfig({ env: { WARDEN_API_TOKENS: `a:admin:${T}:systems=temporal` } })).toThrow(/api\.tokens\.0\.scopes: scopes apply to ingest tokens only/);
    expect(() => loadConfig({ env: { WARDEN_API_TOKENS: `a:ingest:${T}:systems=celeryx` } })).toThrow(/api\.tokens\.0\.scopes\.systems\.0/);
    expect(() => loadConfig({ env: { WARDEN_API_TOKENS: `a:ingest:${T},b:compliance:${T}` } })).toThrow(/api\.tokens\.1\.token: the same token as api\.tokens\.0/);
  });

  it('outOfScope names the scope an event falls outside of', () => {
    const ev = makeEvent({ kind: 'activity.completed', source: 'temporal', queue: 'ocr' });
    expect(outOfScope(ev, undefined)).toBeNull();
    expect(outOfScope(ev, { systems: ['temporal'], queues: ['ocr'] })).toBeNull();
    expect(outOfScope(ev, { systems: ['bullmq'] })).toMatchObject({ field: 'source' });
    expect(outOfScope({ ...ev, queue: null }, { queues: ['ocr'] })).toMatchObject({ field: 'queue' });
  });
});

describe('provenance and caps at ingest', () => {
  it('sets attrs.received_via to the credential (replacing the client\'s) and caps input as the collector does', async () => {
    dir = await tempDir();
    const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0 });
    const ingest = new EventIngest({ record: async (evs) => { await spool.append(evs); }, ids: new RecentEventIds(100), redactor: new Redactor({ paths: [], maxDepth: 32 }), inputLimits: { maxInputBytes: 1024 } });
    const small = makeEvent({ kind: 'activity.completed', source: 'temporal', input: { a: 1 }, attrs: { received_via: 'warden-collector', n: 1 } });
    const big = makeEvent({ kind: 'activity.completed', source: 'temporal', input: { text: 'y'.repeat(10_000) } });
    await ingest.ingest([small, big], { transport: 'http', via: 'http:pipeline' });
    await spool.close();
    const [a, b] = (await readAll(dir)).map((r) => r.event);
    expect(a.attrs).toEqual({ received_via: 'http:pipeline', n: 1 });
    expect(a.input).toEqual({ a: 1 });
    expect(b.input).toMatchObject({ $truncated: true, bytes: 10_011 });
    expect(JSON.stringify(b.input).length).toBeLessThan(1024);
    expect(b.input_digest).toBe(big.input_digest);
  });
});

describe('claims and breakers', () => {
  const POLICIES = parsePolicies(`apiVersion: warden/v1
policies:
  - name: guard
    version: 1
    scope: { system: bullmq }
    retryStorm: { windowMs: 2000, budgetRatio: 0.2, budgetPerSecond: 1, minRetries: 3, synchronized: null }
    breaker: { action: pause, resetTimeoutMs: 1000, probes: 2 }
`, 'p.yaml');
  const T0 = 1_800_000_000_000;
  const storm = (queue: string, via?: string): WardenEvent[] => {
    const attrs: Record<string, string> = via ? { received_via: via } : {};
    const evs: WardenEvent[] = [];
    for (let i = 0; i < 10; i++) {
      evs.push(makeEvent({ kind: 'job.started', source: 'bullmq', queue, job_id: `j${i}`, attempt: 1, ts: T0 + i, attrs }));
      evs.push(makeEvent({ kind: 'job.attempt_failed', source: 'bullmq', queue, job_id: `j${i}`, attempt: 1, ts: T0 + i + 1, error: 'boom', attrs }));
      evs.push(makeEvent({ kind: 'job.started', source: 'bullmq', queue, job_id: `j${i}`, attempt: 2, ts: T0 + 100 + i, attrs }));
    }
    return evs;
  };
  const collected = (s: { system: string; name: string }) => s.system === 'bullmq' && s.name === 'victim';

  it('a claim about a collected queue opens nothing; the same claim about another queue, or the sidecar\'s own reading, does', () => {
    const d = new Decider({ policies: POLICIES, collected });
    expect(d.observe(storm('victim', 'http:pipeline'), T0 + 200).filter((o) => o.type === 'transition')).toEqual([]);
    expect(d.breakerOf('guard', 'bullmq.queue.victim')).toBeUndefined();
    expect(d.observe(storm('elsewhere', 'http:pipeline'), T0 + 200).some((o) => o.type === 'transition')).toBe(true);
    expect(d.observe(storm('victim'), T0 + 200).some((o) => o.type === 'transition')).toBe(true);
  });

  it('claims cannot close a collected queue\'s breaker either: half-open probes count only what the sidecar read', () => {
    const d = new Decider({ policies: POLICIES, collected });
    d.observe(storm('victim'), T0 + 200);
    expect(d.breakerOf('guard', 'bullmq.queue.victim')?.phase).toBe('open');
    d.tick(T0 + 1300);
    expect(d.breakerOf('guard', 'bullmq.queue.victim')?.phase).toBe('half_open');
    const probes = [0, 1].map((i) => makeEvent({ kind: 'job.completed', source: 'bullmq', queue: 'victim', job_id: `p${i}`, attempt: 1, ts: T0 + 1310 + i, attrs: { received_via: 'http:pipeline' } }));
    d.observe(probes, T0 + 1320);
    expect(d.breakerOf('guard', 'bullmq.queue.victim')?.phase).toBe('half_open');
    d.observe(probes.map((p) => ({ ...p, attrs: {} })), T0 + 1330);
    expect(d.breakerOf('guard', 'bullmq.queue.victim')?.phase).toBe('closed');
  });
});

describe('metric cardinality', () => {
  it('keeps the first N series of a family and folds the rest into __overflow__, counted per family', async () => {
    const m = new WardenMetrics({ defaultMetrics: false, maxSeriesPerFamily: 10 });
    for (let i = 0; i < 25; i++) m.observe(makeEvent({ kind: 'activity.completed', source: 'temporal', queue: `q${i}`, duration_ms: 3 }));
    m.observe(makeEvent({ kind: 'activity.completed', source: 'temporal', queue: 'q0', duration_ms: 3 }));
    const text = (await m.render()).body;
    const series = text.split('\n').filter((l) => l.startsWith('warden_jobs_total{'));
    expect(series).toHaveLength(11);
    expect(sumMetric(text, 'warden_jobs_total', { queue: '__overflow__' })).toBe(15);
    expect(sumMetric(text, 'warden_jobs_total', { queue: 'q0' })).toBe(2);
    expect(sumMetric(text, 'warden_metrics_label_overflow_total', { family: 'warden_jobs_total' })).toBe(15);
    expect(sumMetric(text, 'warden_metrics_label_overflow_total', { family: 'warden_job_duration_seconds' })).toBe(15);
  });
});

describe('provenance filter', () => {
  it('selects by source and received_via in the spool and in the store SQL (none: the sidecar\'s own records)', async () => {
    dir = await tempDir();
    const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0 });
    await spool.append([
      makeEvent({ kind: 'job.completed', source: 'bullmq', queue: 'q' }),
      makeEvent({ kind: 'job.completed', source: 'bullmq', queue: 'q', attrs: { received_via: 'http:pipeline' } }),
      makeEvent({ kind: 'approval.granted', source: 'temporal', attrs: { received_via: 'nats:WARDEN_EVENTS' } }),
    ]);
    await spool.close();
    const seqs = async (f: object) => { const out: number[] = []; for await (const r of queryLedger(dir!, f)) out.push(r.seq); return out; };
    expect(await seqs({ receivedVia: 'none' })).toEqual([1]);
    expect(await seqs({ receivedVia: 'http:pipeline' })).toEqual([2]);
    expect(await seqs({ source: 'temporal' })).toEqual([3]);
    await expect(seqs({ source: 'kafka' })).rejects.toThrow(/unknown source "kafka"/);
    await expect(seqs({ receivedVia: 'pipeline' })).rejects.toThrow(/received_via must be/);
    expect(eventsSql({ source: 'bullmq', receivedVia: 'none' })).toContain(`source = 'bullmq'\n  AND visitParamExtractString(attrs, 'received_via') = ''`);
    expect(approvalsSql({ receivedVia: "http:o'brien" })).toContain(`visitParamExtractString(attrs, 'received_via') = 'http:o\\'brien'`);
    expect(decisionsSql({ source: 'warden' })).toContain(`source = 'warden'`);
  });
});
