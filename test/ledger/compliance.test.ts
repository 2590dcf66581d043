/**
 * The compliance queries (ledger/compliance/queries.ts) on both stores: the server store against ClickHouse
 * 18.16 (harness) and the embedded store against chdb 26.x. One realistic ledger (approvals by several
 * actors over several days, jobs and workflows with model and policy versions, policy decisions with
 * and without the approval they required, hostile strings) is inserted into both; each query's result
 * is checked exactly against an oracle computed here from the records, and the two stores' results
 * are compared with each other. Then the streaming export and the `warden ledger ...` commands.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeEvent, type EventInit, type WardenEvent } from '../../core/event.js';
import { csvHeader, csvRow } from '../../ledger/compliance/format.js';
import {
  APPROVAL_KINDS, COMPLETION_KINDS, RUN_KINDS, approvals, approvalsPerDay, approvalsPerDaySql, approvalsSql, countEvents, decisionCounts, decisionCountsSql,
  decisions, decisionsSql, eventsSql, lineage, lineageSql, queryEvents, unapproved, unapprovedSql, versions, versionsSql,
  type ApprovalRow, type ApprovalsPerDayRow, type DecisionCountRow, type DecisionRow, type EventFilter, type UnapprovedRow,
  type VersionRow,
} from '../../ledger/compliance/queries.js';
import { exportEvents, jsonlLine } from '../../ledger/compliance/export.js';
import { InvalidFilterError } from '../../ledger/errors.js';
import { GENESIS_HASH, recordHash, type LedgerRecord } from '../../ledger/spool/record.js';
import { openStore, UnrepresentableValueError, type LedgerStore } from '../../ledger/store/index.js';
import { startClickHouse, type ClickHouseServer } from '../harness/index.js';
import { HOSTILE } from './store/helpers.js';

// ---------------------------------------------------------------------------------------------------
// The ledger

const D0 = Date.UTC(2024, 4, 1); // 2024-05-01, a Wednesday
const DAY = 86_400_000;
const H = 3_600_000;
const MIN = 60_000;
const INJECTION = "x'; DROP TABLE warden_ledger; --";

function buildEvents(): WardenEvent[] {
  const evs: WardenEvent[] = [];
  const add = (init: EventInit): void => { evs.push(makeEvent(init)); };

  // Ordinary jobs over three days: two queues, model versions that change on day 1, a policy on one queue.
  for (let d = 0; d < 3; d++) {
    for (let i = 0; i < 24; i++) {
      const queue = i % 2 === 0 ? 'emails' : 'summaries';
      const jobId = `job-${d}-${i}`;
      const cid = `bullmq:${queue}:${jobId}`;
      const t = D0 + d * DAY + i * 37 * MIN + (i * 137) % 1000; // odd milliseconds
      const common = {
        source: 'bullmq' as const, queue, job_id: jobId, job_name: queue === 'emails' ? 'send' : 'summarize', correlation_id: cid,
        model: queue === 'summaries' ? (i % 3 === 0 ? 'claude-3-5-sonnet' : 'gpt-4o') : null,
        model_version: queue === 'summaries' ? (i % 3 === 0 ? '20240620' : d === 0 ? '2024-05-13' : '2024-08-06') : null,
        policy: queue === 'summaries' ? 'pii-redaction' : null,
        policy_version: queue === 'summaries' ? (d < 2 ? '3' : '4') : null,
      };
      add({ ...common, kind: 'job.added', ts: t });
      add({ ...common, kind: 'job.started', ts: t + 150, attempt: 1 });
      add({ ...common, kind: i % 7 === 3 ? 'job.failed' : 'job.completed', ts: t + 900 + i, attempt: 1, duration_ms: 750 + i * 0.25, error: i % 7 === 3 ? 'rate limited' : null });
    }
  }

  // Gated work: a policy decision on the loans queue, then maybe an approval, then maybe completion.
  const gated = (o: {
    cid: string; at: number; decision?: string; policy?: string; policyVersion?: string; queue?: string;
    approval?: { kind: 'approval.granted' | 'approval.denied'; actor: string | null; after: number }[];
    complete?: { kind: 'job.completed' | 'job.failed'; after: number };
  }): void => {
    const queue = o.queue ?? 'loans';
    const base = { source: 'bullmq' as const, queue, job_id: `job-${o.cid}`, job_name: 'disburse', correlation_id: o.cid, model: 'gpt-4o', model_version: '2024-08-06' };
    add({ ...base, kind: 'job.added', ts: o.at });
    add({
      source: 'warden', kind: 'policy.decision', ts: o.at + 1000, queue, correlation_id: o.cid, job_id: base.job_id,
      policy: o.policy ?? 'credit-limit', policy_version: o.policyVersion ?? '1', decision: o.decision ?? 'require_approval',
      reason: 'amount > 10000', actor: 'policy-engine',
    });
    for (const a of o.approval ?? []) {
      add({ source: 'warden', kind: a.kind, ts: o.at + a.after, queue, correlation_id: o.cid, job_id: base.job_id, actor: a.actor, policy: o.policy ?? 'credit-limit', policy_version: o.policyVersion ?? '1', reason: a.kind === 'approval.denied' ? 'insufficient collateral' : null });
    }
    if (o.complete) {
      add({ ...base, kind: 'job.started', ts: o.at + o.complete.after - 500, attempt: 1 });
      add({ ...base, kind: o.complete.kind, ts: o.at + o.complete.after, attempt: 1, duration_ms: 500 });
    }
  };
  gated({ cid: 'loan-1', at: D0 + 10 * H, approval: [{ kind: 'approval.granted', actor: 'alice', after: 5 * MIN }], complete: { kind: 'job.completed', after: 10 * MIN } });
  gated({ cid: 'loan-2', at: D0 + 11 * H, approval: [{ kind: 'approval.granted', actor: 'bob', after: 20 * MIN }], complete: { kind: 'job.completed', after: 10 * MIN } });
  gated({ cid: 'loan-3', at: D0 + DAY + 9 * H, approval: [{ kind: 'approval.denied', actor: 'alice', after: 5 * MIN }], complete: { kind: 'job.completed', after: 30 * MIN } });
  gated({ cid: 'loan-4', at: D0 + DAY + 12 * H, complete: { kind: 'job.failed', after: 3 * MIN } });
  gated({ cid: 'loan-5', at: D0 + DAY + 13 * H, decision: 'allow', complete: { kind: 'job.completed', after: 3 * MIN } });
  gated({ cid: 'loan-6', at: D0 + DAY + 14 * H, policyVersion: '2', approval: [{ kind: 'approval.denied', actor: 'bob', after: MIN }, { kind: 'approval.granted', actor: 'carol', after: 2 * MIN }], complete: { kind: 'job.completed', after: 3 * MIN } });
  gated({ cid: 'loan-7', at: D0 + 2 * DAY + 8 * H, policyVersion: '2', approval: [{ kind: 'approval.granted', actor: null, after: MIN }], complete: { kind: 'job.completed', after: 2 * MIN } });
  gated({ cid: 'loan-8', at: D0 + 2 * DAY + 9 * H, policyVersion: '2', decision: 'deny', complete: { kind: 'job.failed', after: MIN } });
  gated({ cid: INJECTION, queue: INJECTION, at: D0 + 2 * DAY + 10 * H, complete: { kind: 'job.completed', after: MIN } });

  // Temporal: a workflow whose approval lands in the same millisecond as the activity completing (approved),
  // and one whose activity completed with no approval at all.
  const wf = (id: string, at: number, grantAt: number | null): void => {
    const base = { source: 'temporal' as const, workflow_id: id, run_id: `run-${id}`, correlation_id: `temporal:${id}` };
    add({ ...base, kind: 'workflow.started', ts: at });
    add({ ...base, kind: 'policy.decision', source: 'warden', ts: at + 10, policy: 'kyc', policy_version: '2', decision: 'require_approval', actor: 'policy-engine', reason: 'new customer' });
    if (grantAt !== null) add({ ...base, kind: 'approval.granted', source: 'warden', ts: at + grantAt, actor: 'dave', policy: 'kyc', policy_version: '2' });
    add({ ...base, kind: 'activity.started', ts: at + 20, activity_type: 'verifyIdentity', model: 'claude-3-5-sonnet', model_version: '20240620', attempt: 1 });
    add({ ...base, kind: 'activity.completed', ts: at + 2 * MIN, activity_type: 'verifyIdentity', model: 'claude-3-5-sonnet', model_version: '20240620', attempt: 1, duration_ms: 119_980 });
    add({ ...base, kind: 'workflow.completed', ts: at + 3 * MIN });
  };
  wf('kyc-1', D0 + 15 * H + 123, 2 * MIN);
  wf('kyc-2', D0 + DAY + 15 * H + 456, null);

  // Hostile strings as actor, queue and correlation ID of approvals (one each, a minute apart on day 2).
  Object.values(HOSTILE).forEach((s, k) => {
    add({ source: 'warden', kind: k % 3 === 2 ? 'approval.denied' : 'approval.granted', ts: D0 + 2 * DAY + 20 * H + k * MIN, actor: s, queue: s, correlation_id: s, reason: s, policy: s, policy_version: s, decision: s });
    add({ source: 'warden', kind: 'policy.decision', ts: D0 + 2 * DAY + 20 * H + k * MIN + 1, actor: s, queue: s, correlation_id: s, policy: s, policy_version: s, decision: s, reason: s });
  });

  // Recorded in time order, except a reconciled completion that arrives late with its original time.
  const sorted = evs.sort((a, b) => a.ts - b.ts);
  sorted.push(makeEvent({ source: 'bullmq', kind: 'job.completed', ts: D0 + 10 * H + 10 * MIN + 1, queue: 'loans', job_id: 'job-loan-1', correlation_id: 'loan-1', attrs: { reconciled: true } }));
  return sorted;
}

function chain(events: readonly WardenEvent[]): LedgerRecord[] {
  let prev = GENESIS_HASH;
  return events.map((event, i) => {
    const hash = recordHash(prev, i + 1, event);
    const r = { seq: i + 1, prev, hash, event };
    prev = hash;
    return r;
  });
}

const RECORDS = chain(buildEvents());
const EVENTS = RECORDS.map((r) => r.event);

// ---------------------------------------------------------------------------------------------------
// The oracle: what each query must answer, computed from the records

/** ClickHouse compares strings as UTF-8 bytes and puts NULL last. */
function cmp(a: string | number | null, b: string | number | null): number {
  if (a === b) return 0;
  if (a === null) return 1;
  if (b === null) return -1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return Buffer.compare(Buffer.from(String(a)), Buffer.from(String(b)));
}
const byKeys = <T>(keys: (keyof T)[]) => (a: T, b: T): number => {
  for (const k of keys) {
    const c = cmp(a[k] as never, b[k] as never);
    if (c !== 0) return c;
  }
  return 0;
};
const inRange = (ts: number, f: { since?: number; until?: number }): boolean => (f.since === undefined || ts >= f.since) && (f.until === undefined || ts < f.until);
const day = (ts: number): string => new Date(ts).toISOString().slice(0, 10);
const q = (e: WardenEvent): string => e.queue ?? ''; // a null queue is stored as '' (the spill column keeps the null)

function oracleEvents(f: EventFilter): LedgerRecord[] {
  const kinds = f.kind === undefined ? null : typeof f.kind === 'string' ? [f.kind] : f.kind;
  const out = RECORDS.filter((r) => (f.correlationId === undefined || r.event.correlation_id === f.correlationId)
    && (f.jobId === undefined || r.event.job_id === f.jobId) && (f.queue === undefined || q(r.event) === f.queue)
    && (!kinds || kinds.includes(r.event.kind)) && inRange(r.event.ts, f) && (f.afterSeq === undefined || r.seq > f.afterSeq))
    // Event ID order: the one order that spans ledgers (each has its own seqs).
    .sort((a, b) => (a.event.event_id < b.event.event_id ? -1 : a.event.event_id > b.event.event_id ? 1 : 0));
  return f.limit === undefined ? out : out.slice(0, f.limit);
}

function oracleApprovals(f: { actor?: string; queue?: string; since?: number; until?: number }): ApprovalRow[] {
  return RECORDS.filter((r) => (APPROVAL_KINDS as readonly string[]).includes(r.event.kind) && (f.actor === undefined || r.event.actor === f.actor)
    && (f.queue === undefined || q(r.event) === f.queue) && inRange(r.event.ts, f))
    .sort((a, b) => a.event.ts - b.event.ts || a.seq - b.seq)
    .map(({ seq, event: e }) => ({
      seq, ts_ms: e.ts, kind: e.kind as ApprovalRow['kind'], actor: e.actor, correlation_id: e.correlation_id, queue: q(e), job_id: e.job_id,
      workflow_id: e.workflow_id, policy: e.policy, policy_version: e.policy_version, reason: e.reason,
    }));
}

function oracleApprovalsPerDay(f: { actor?: string; since?: number; until?: number }): ApprovalsPerDayRow[] {
  const groups = new Map<string, ApprovalsPerDayRow>();
  for (const a of oracleApprovals(f)) {
    const k = JSON.stringify([day(a.ts_ms), a.actor]);
    const g = groups.get(k) ?? { day: day(a.ts_ms), actor: a.actor, granted: 0, denied: 0 };
    if (a.kind === 'approval.granted') g.granted++;
    else g.denied++;
    groups.set(k, g);
  }
  return [...groups.values()].sort(byKeys<ApprovalsPerDayRow>(['day', 'actor']));
}

const VERSION_KEYS = ['day', 'queue', 'workflow_id', 'activity_type', 'model', 'model_version', 'policy', 'policy_version'] as const;
function oracleVersions(f: { queue?: string; since?: number; until?: number }): VersionRow[] {
  const groups = new Map<string, VersionRow & { cids: Set<string> }>();
  for (const { event: e } of RECORDS) {
    if (e.model === null && e.policy === null) continue;
    if ((f.queue !== undefined && q(e) !== f.queue) || !inRange(e.ts, f)) continue;
    const key = { day: day(e.ts), queue: q(e), workflow_id: e.workflow_id, activity_type: e.activity_type, model: e.model, model_version: e.model_version, policy: e.policy, policy_version: e.policy_version };
    const k = JSON.stringify(key);
    const g = groups.get(k) ?? { ...key, events: 0, runs: 0, correlations: 0, cids: new Set<string>() };
    g.events++;
    if ((RUN_KINDS as readonly string[]).includes(e.kind)) g.runs++;
    if (e.correlation_id !== null) g.cids.add(e.correlation_id);
    groups.set(k, g);
  }
  return [...groups.values()].map(({ cids, ...g }) => ({ ...g, correlations: cids.size })).sort(byKeys<VersionRow>([...VERSION_KEYS]));
}

function oracleUnapproved(f: { queue?: string; since?: number; until?: number }): UnapprovedRow[] {
  const out: UnapprovedRow[] = [];
  const byCid = new Map<string, LedgerRecord[]>();
  for (const r of RECORDS) if (r.event.correlation_id !== null) byCid.set(r.event.correlation_id, [...(byCid.get(r.event.correlation_id) ?? []), r]);
  const first = (rs: LedgerRecord[]) => [...rs].sort((a, b) => a.event.ts - b.event.ts || a.seq - b.seq)[0];
  for (const [cid, rs] of byCid) {
    const required = rs.filter((r) => r.event.kind === 'policy.decision' && r.event.decision === 'require_approval');
    const completions = rs.filter((r) => (COMPLETION_KINDS as readonly string[]).includes(r.event.kind) && (f.queue === undefined || q(r.event) === f.queue) && inRange(r.event.ts, f));
    const grants = rs.filter((r) => r.event.kind === 'approval.granted');
    if (required.length === 0 || completions.length === 0) continue;
    const c = first(completions);
    const g = grants.length ? first(grants) : null;
    if (g && g.event.ts <= c.event.ts) continue;
    const req = first(required);
    out.push({
      correlation_id: cid, required_at: req.event.ts, policy: req.event.policy, policy_version: req.event.policy_version,
      completed_at: c.event.ts, completed_kind: c.event.kind, queue: q(c.event), job_id: c.event.job_id, workflow_id: c.event.workflow_id,
      first_granted_at: g ? g.event.ts : null, denied: rs.filter((r) => r.event.kind === 'approval.denied').length,
    });
  }
  return out.sort(byKeys<UnapprovedRow>(['completed_at', 'correlation_id']));
}

function oracleDecisions(f: { actor?: string; queue?: string; since?: number; until?: number }): DecisionRow[] {
  return RECORDS.filter((r) => r.event.kind === 'policy.decision' && (f.actor === undefined || r.event.actor === f.actor)
    && (f.queue === undefined || q(r.event) === f.queue) && inRange(r.event.ts, f))
    .sort((a, b) => a.event.ts - b.event.ts || a.seq - b.seq)
    .map(({ seq, event: e }) => ({
      seq, ts_ms: e.ts, correlation_id: e.correlation_id, queue: q(e), policy: e.policy, policy_version: e.policy_version, decision: e.decision, reason: e.reason, actor: e.actor,
    }));
}

function oracleDecisionCounts(f: { actor?: string; queue?: string; since?: number; until?: number }): DecisionCountRow[] {
  const groups = new Map<string, DecisionCountRow>();
  for (const d of oracleDecisions(f)) {
    const k = JSON.stringify([d.policy, d.policy_version, d.decision]);
    const g = groups.get(k) ?? { policy: d.policy, policy_version: d.policy_version, decision: d.decision, decisions: 0 };
    g.decisions++;
    groups.set(k, g);
  }
  return [...groups.values()].sort(byKeys<DecisionCountRow>(['policy', 'policy_version', 'decision']));
}

function oracleLineage(cid: string): LedgerRecord[] {
  return RECORDS.filter((r) => r.event.correlation_id === cid).sort((a, b) => a.event.ts - b.event.ts || a.seq - b.seq);
}

// ---------------------------------------------------------------------------------------------------
// Stores

let clickhouse: ClickHouseServer;
let serverStore: LedgerStore;
let embeddedStore: LedgerStore;
let dataDir: string;
const DATABASE = 'compliance_test';

beforeAll(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'warden-compliance-'));
  [clickhouse, embeddedStore] = await Promise.all([startClickHouse(), openStore({ dataDir })]);
  serverStore = await openStore({ url: clickhouse.url, dataDir, database: DATABASE });
  await Promise.all([serverStore.migrate(), embeddedStore.migrate()]);
  await Promise.all([serverStore.insert(RECORDS), embeddedStore.insert(RECORDS)]);
});

afterAll(async () => {
  await Promise.allSettled([serverStore?.close(), embeddedStore?.close()]);
  await clickhouse?.dispose();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

const ENGINES = [
  { name: 'server store on ClickHouse 18.16', get: () => serverStore },
  { name: 'embedded store on chdb', get: () => embeddedStore },
];

/** The time window used below: from an exact event time (inclusive) to another (exclusive), mid-range. */
const SINCE = EVENTS.find((e) => e.ts >= D0 + DAY + 9 * H)!.ts;
const UNTIL = EVENTS.find((e) => e.ts >= D0 + 2 * DAY + 9 * H)!.ts;
const RANGE = { since: SINCE, until: UNTIL };

const hashes = (rs: LedgerRecord[]) => rs.map((r) => [r.seq, r.hash]);

describe.each(ENGINES)('compliance queries: $name', ({ get }) => {
  it('events by filters: correlation, job, queue, kinds, exact ms range, limit; event ID order', async () => {
    const store = get();
    const filters: EventFilter[] = [
      {},
      { correlationId: 'loan-2' },
      { jobId: 'job-1-5' },
      { queue: 'summaries', kind: ['job.completed', 'job.failed'] },
      { kind: 'policy.decision', ...RANGE },
      { since: SINCE, until: SINCE + 1 }, // exactly one millisecond
      { queue: 'emails', limit: 7 },
      { queue: 'emails', afterSeq: 100, limit: 3 },
      { kind: 'approval.granted', queue: 'nope' },
    ];
    for (const f of filters) {
      const got = await queryEvents(store, f);
      const want = oracleEvents(f);
      expect(hashes(got), JSON.stringify(f)).toEqual(hashes(want));
      expect(got).toEqual(want);
      expect(await countEvents(store, f)).toBe(want.length);
    }
    expect(await queryEvents(store, { since: SINCE, until: SINCE + 1 })).toHaveLength(1);
    expect(await queryEvents(store, { limit: 0 })).toEqual([]);
  });

  it('lineage: one correlation ID by event time then seq (a late reconciled record sorts by its time)', async () => {
    const got = await lineage(get(), 'loan-1');
    expect(got).toEqual(oracleLineage('loan-1'));
    expect(got.map((r) => r.event.kind)).toEqual(['job.added', 'policy.decision', 'approval.granted', 'job.started', 'job.completed', 'job.completed']);
    expect(got.at(-1)!.event.attrs.reconciled).toBe(true);
    expect(got.at(-1)!.seq).toBe(RECORDS.length); // recorded last
    expect(await lineage(get(), 'temporal:kyc-1')).toEqual(oracleLineage('temporal:kyc-1'));
  });

  it('approvals by actor and time range, and per actor per day', async () => {
    const store = get();
    const all = await approvals(store);
    expect(all).toEqual(oracleApprovals({}));
    expect(all.length).toBe(7 + Object.keys(HOSTILE).length);
    const alice = await approvals(store, { actor: 'alice' });
    expect(alice.map((a) => [a.kind, a.correlation_id, new Date(a.ts_ms).toISOString()])).toEqual([
      ['approval.granted', 'loan-1', '2024-05-01T10:05:00.000Z'],
      ['approval.denied', 'loan-3', '2024-05-02T09:05:00.000Z'],
    ]);
    expect(await approvals(store, { actor: 'bob', ...RANGE })).toEqual(oracleApprovals({ actor: 'bob', ...RANGE }));
    expect((await approvals(store, { actor: 'bob', ...RANGE })).map((a) => a.correlation_id)).toEqual(['loan-6']);
    expect(await approvals(store, { limit: 2 })).toEqual(oracleApprovals({}).slice(0, 2));

    const perDay = await approvalsPerDay(store);
    expect(perDay).toEqual(oracleApprovalsPerDay({}));
    expect(perDay.filter((r) => ['alice', 'bob', 'carol', 'dave', null].includes(r.actor))).toEqual([
      { day: '2024-05-01', actor: 'alice', granted: 1, denied: 0 },
      { day: '2024-05-01', actor: 'bob', granted: 1, denied: 0 },
      { day: '2024-05-01', actor: 'dave', granted: 1, denied: 0 },
      { day: '2024-05-02', actor: 'alice', granted: 0, denied: 1 },
      { day: '2024-05-02', actor: 'bob', granted: 0, denied: 1 },
      { day: '2024-05-02', actor: 'carol', granted: 1, denied: 0 },
      { day: '2024-05-03', actor: null, granted: 1, denied: 0 },
    ]);
    expect(await approvalsPerDay(store, RANGE)).toEqual(oracleApprovalsPerDay(RANGE));
  });

  it('model and policy versions in use, per queue / workflow / activity and day', async () => {
    const store = get();
    const all = await versions(store);
    expect(all).toEqual(oracleVersions({}));
    const summaries = await versions(store, { queue: 'summaries', since: D0 + DAY, until: D0 + 2 * DAY });
    expect(summaries).toEqual([
      { day: '2024-05-02', queue: 'summaries', workflow_id: null, activity_type: null, model: 'claude-3-5-sonnet', model_version: '20240620', policy: 'pii-redaction', policy_version: '3', events: 12, runs: 4, correlations: 4 },
      { day: '2024-05-02', queue: 'summaries', workflow_id: null, activity_type: null, model: 'gpt-4o', model_version: '2024-08-06', policy: 'pii-redaction', policy_version: '3', events: 24, runs: 8, correlations: 8 },
    ]);
    expect(all.filter((r) => r.workflow_id !== null)).toEqual([
      // NULL sorts last on both engines; a temporal event has no queue (stored as '').
      { day: '2024-05-01', queue: '', workflow_id: 'kyc-1', activity_type: 'verifyIdentity', model: 'claude-3-5-sonnet', model_version: '20240620', policy: null, policy_version: null, events: 2, runs: 1, correlations: 1 },
      { day: '2024-05-01', queue: '', workflow_id: 'kyc-1', activity_type: null, model: null, model_version: null, policy: 'kyc', policy_version: '2', events: 2, runs: 0, correlations: 1 },
      { day: '2024-05-02', queue: '', workflow_id: 'kyc-2', activity_type: 'verifyIdentity', model: 'claude-3-5-sonnet', model_version: '20240620', policy: null, policy_version: null, events: 2, runs: 1, correlations: 1 },
      { day: '2024-05-02', queue: '', workflow_id: 'kyc-2', activity_type: null, model: null, model_version: null, policy: 'kyc', policy_version: '2', events: 1, runs: 0, correlations: 1 },
    ]);
    expect(await versions(store, RANGE)).toEqual(oracleVersions(RANGE));
  });

  it('work that ran without a required approval', async () => {
    const store = get();
    const got = await unapproved(store);
    expect(got).toEqual(oracleUnapproved({}));
    expect(got.map((r) => [r.correlation_id, r.completed_kind, r.first_granted_at === null ? null : new Date(r.first_granted_at).toISOString(), r.denied])).toEqual([
      ['loan-2', 'job.completed', '2024-05-01T11:20:00.000Z', 0], // approved 10 minutes too late
      ['loan-3', 'job.completed', null, 1], // denied, ran anyway
      ['temporal:kyc-2', 'activity.completed', null, 0], // a workflow activity, never approved
      [INJECTION, 'job.completed', '2024-05-03T20:04:00.000Z', 0], // the hostile approvals include a late grant for it
    ]);
    expect(got[0]).toMatchObject({ policy: 'credit-limit', policy_version: '1', queue: 'loans', job_id: 'job-loan-2', workflow_id: null });
    expect(got[2]).toMatchObject({ queue: '', job_id: null, workflow_id: 'kyc-2', policy: 'kyc' });
    // loan-1 (granted first), loan-6 (denied then granted), loan-7 (granted by an unnamed actor), kyc-1 (granted
    // in the same millisecond as the completion), loan-4 (never completed), loan-5 (allowed) are all absent.
    expect(await unapproved(store, RANGE)).toEqual(oracleUnapproved(RANGE));
    expect((await unapproved(store, RANGE)).map((r) => r.correlation_id)).toEqual(['loan-3', 'temporal:kyc-2']);
    expect(await unapproved(store, { queue: 'loans' })).toEqual(oracleUnapproved({ queue: 'loans' }));
    expect(await unapproved(store, { queue: INJECTION })).toEqual(oracleUnapproved({ queue: INJECTION }));
    expect((await unapproved(store, { queue: INJECTION })).map((r) => r.correlation_id)).toEqual([INJECTION]);
  });

  it('policy decisions in a time range, and counts per policy and decision', async () => {
    const store = get();
    expect(await decisions(store)).toEqual(oracleDecisions({}));
    expect(await decisions(store, RANGE)).toEqual(oracleDecisions(RANGE));
    expect(await decisions(store, { actor: 'policy-engine', queue: 'loans' })).toEqual(oracleDecisions({ actor: 'policy-engine', queue: 'loans' }));
    const counts = await decisionCounts(store);
    expect(counts).toEqual(oracleDecisionCounts({}));
    expect(counts.filter((c) => ['credit-limit', 'kyc'].includes(c.policy!))).toEqual([
      { policy: 'credit-limit', policy_version: '1', decision: 'allow', decisions: 1 },
      { policy: 'credit-limit', policy_version: '1', decision: 'require_approval', decisions: 5 }, // loan-1..4 and the injection queue's
      { policy: 'credit-limit', policy_version: '2', decision: 'deny', decisions: 1 },
      { policy: 'credit-limit', policy_version: '2', decision: 'require_approval', decisions: 2 },
      { policy: 'kyc', policy_version: '2', decision: 'require_approval', decisions: 2 },
    ]);
    expect(await decisionCounts(store, RANGE)).toEqual(oracleDecisionCounts(RANGE));
  });

  it('hostile actor, queue and correlation filters round-trip and never change what a query means', async () => {
    const store = get();
    for (const [name, s] of Object.entries(HOSTILE)) {
      const a = await approvals(store, { actor: s });
      expect(a, name).toEqual(oracleApprovals({ actor: s }));
      expect(a.length, name).toBe(1);
      expect(a[0].actor).toBe(s);
      expect(await approvals(store, { queue: s })).toEqual(oracleApprovals({ queue: s }));
      expect(await decisions(store, { actor: s, queue: s })).toEqual(oracleDecisions({ actor: s, queue: s }));
      expect(await queryEvents(store, { correlationId: s })).toEqual(oracleEvents({ correlationId: s }));
      expect(await queryEvents(store, { queue: s, jobId: s })).toEqual([]);
      expect(await lineage(store, s)).toEqual(oracleLineage(s));
      expect(await versions(store, { queue: s })).toEqual(oracleVersions({ queue: s }));
      expect(await unapproved(store, { queue: s })).toEqual(oracleUnapproved({ queue: s }));
    }
    const [{ n }] = await store.query<{ n: string }>('SELECT count() AS n FROM warden_ledger');
    expect(Number(n)).toBe(RECORDS.length);
    // A string with no UTF-8 form cannot be a literal: refused, not silently changed.
    expect(() => approvalsSql({ actor: 'lone \ud800' })).toThrow(UnrepresentableValueError);
  });
});

describe('both stores', () => {
  it('return identical results for every query', async () => {
    const run = (s: LedgerStore) => Promise.all([
      queryEvents(s), queryEvents(s, { kind: ['approval.granted', 'approval.denied'], ...RANGE }), lineage(s, 'loan-1'), lineage(s, INJECTION),
      approvals(s), approvals(s, { actor: HOSTILE.nul }), approvalsPerDay(s), versions(s), versions(s, RANGE), unapproved(s), unapproved(s, RANGE),
      decisions(s), decisionCounts(s), decisionCounts(s, RANGE), countEvents(s, { queue: 'emails' }),
    ]);
    const [a, b] = await Promise.all([run(serverStore), run(embeddedStore)]);
    expect(a).toEqual(b);
    expect(a.every((x) => typeof x === 'number' || x.length > 0)).toBe(true);
  });

  it('get the same SQL text (values inlined by sql.ts only)', () => {
    const text = unapprovedSql({ queue: INJECTION, ...RANGE });
    expect(text).toContain("queue = 'x\\'; DROP TABLE warden_ledger; --'");
    expect(approvalsSql({ actor: 'a\u0000b\nc' })).toContain("actor = 'a\\x00b\\x0ac'");
    expect(eventsSql({ since: 1714521600123, until: 1714521601000 })).toContain('WHERE ts >= toDateTime(1714521600)\n  AND ts_ms >= 1714521600123\n  AND ts <= toDateTime(1714521600)\n  AND ts_ms < 1714521601000\n');
    for (const t of [versionsSql(), decisionsSql(), approvalsPerDaySql()]) expect(t).not.toMatch(/\{|\?/);
  });

  it('the README shows the very SQL the module runs', async () => {
    const readme = await fs.readFile(path.resolve('README.md'), 'utf8');
    const r = { since: Date.UTC(2024, 4, 1), until: Date.UTC(2024, 5, 1) };
    for (const text of [
      approvalsSql({ ...r, actor: 'alice@example.com' }), approvalsPerDaySql(r), versionsSql(r), unapprovedSql(r), decisionsSql(r),
      decisionCountsSql(r), lineageSql('order-42'),
    ]) expect(readme).toContain(`\`\`\`sql\n${text}\n\`\`\``);
  });

  it('refuse bad filters before any SQL is built', () => {
    expect(() => eventsSql({ kind: 'job.exploded' })).toThrow(InvalidFilterError);
    expect(() => eventsSql({ since: 1.5 })).toThrow(InvalidFilterError);
    expect(() => eventsSql({ limit: -1 })).toThrow(InvalidFilterError);
    expect(() => approvalsSql({ actor: 5 as unknown as string })).toThrow(InvalidFilterError);
  });
});

// ---------------------------------------------------------------------------------------------------
// Export

describe.each(ENGINES)('streaming export: $name', ({ get }) => {
  it('pages through the table and writes what the CLI writes, with progress', async () => {
    const store = get();
    const seen: string[] = [];
    const progress: [number, number][] = [];
    const r = await exportEvents(store, { queue: 'emails' }, 'jsonl', (s) => { seen.push(s); }, {
      pageSize: 10, onProgress: (p) => progress.push([p.done, p.total]),
    });
    const want = oracleEvents({ queue: 'emails' });
    expect(r).toEqual({ rows: want.length, total: want.length, lastSeq: want.at(-1)!.seq });
    expect(seen.join('')).toBe(want.map(jsonlLine).join(''));
    expect(seen.length).toBe(Math.ceil(want.length / 10));
    expect(progress[0]).toEqual([0, want.length]);
    expect(progress.at(-1)).toEqual([want.length, want.length]);
    expect(progress.map(([d]) => d)).toEqual([0, ...Array.from({ length: seen.length }, (_, i) => Math.min((i + 1) * 10, want.length))]);

    const csv: string[] = [];
    const c = await exportEvents(store, { kind: 'policy.decision', limit: 5 }, 'csv', async (s) => { csv.push(s); }, { pageSize: 2 });
    expect(c.rows).toBe(5);
    expect(csv.join('')).toBe(csvHeader() + oracleEvents({ kind: 'policy.decision', limit: 5 }).map(csvRow).join(''));

    const none: string[] = [];
    expect(await exportEvents(store, { queue: 'nope' }, 'csv', (s) => { none.push(s); })).toEqual({ rows: 0, total: 0, lastSeq: 0 });
    expect(none).toEqual([csvHeader()]);
  });
});

// ---------------------------------------------------------------------------------------------------
// The commands

const CLI = path.resolve('dist/agent/cli.js');
function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH }, timeout: 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('warden ledger approvals|versions|unapproved|decisions|export (ClickHouse server)', () => {
  const store = () => ['--clickhouse-url', clickhouse.url, '--clickhouse-database', DATABASE, '--data-dir', dataDir];
  const jsonl = (s: string) => s.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown);

  it('prints each query as jsonl, csv and table', async () => {
    const since = new Date(SINCE).toISOString();
    const until = new Date(UNTIL).toISOString();
    const [a, perDay, v, u, d, dc, table, csv] = await Promise.all([
      warden(['ledger', 'approvals', '--actor', 'alice', '--format', 'jsonl', ...store()]),
      warden(['ledger', 'approvals', '--per-day', '--format', 'jsonl', ...store()]),
      warden(['ledger', 'versions', '--queue', 'summaries', '--format', 'jsonl', ...store()]),
      warden(['ledger', 'unapproved', '--since', since, '--until', until, '--format', 'jsonl', ...store()]),
      warden(['ledger', 'decisions', '--since', since, '--until', until, '--format', 'jsonl', ...store()]),
      warden(['ledger', 'decisions', '--counts', '--format', 'jsonl', ...store()]),
      warden(['ledger', 'unapproved', ...store()]),
      warden(['ledger', 'approvals', '--actor', INJECTION, '--format', 'csv', ...store()]),
    ]);
    for (const r of [a, perDay, v, u, d, dc, table, csv]) expect(r.stderr + r.code).toBe('0');
    expect(jsonl(a.stdout)).toEqual(oracleApprovals({ actor: 'alice' }));
    expect(jsonl(perDay.stdout)).toEqual(oracleApprovalsPerDay({}));
    expect(jsonl(v.stdout)).toEqual(oracleVersions({ queue: 'summaries' }));
    expect(jsonl(u.stdout)).toEqual(oracleUnapproved(RANGE));
    expect(jsonl(d.stdout)).toEqual(oracleDecisions(RANGE));
    expect(jsonl(dc.stdout)).toEqual(oracleDecisionCounts({}));
    expect(table.stdout.split('\n')[0]).toMatch(/^correlation_id\s+required_at\s+policy/);
    expect(table.stdout).toContain('loan-3');
    expect(table.stdout).toContain('2024-05-02T09:30:00.000Z');
    expect(csv.stdout.split('\r\n')[0]).toBe('seq,ts_ms,kind,actor,correlation_id,queue,job_id,workflow_id,policy,policy_version,reason');
    expect(csv.stdout).toContain(`"${INJECTION}"`.replace(/^"|"$/g, ''));
  });

  it('export --out writes the file in pages and reports progress on stderr', async () => {
    const out = path.join(dataDir, 'export.jsonl');
    const outCsv = path.join(dataDir, 'export.csv');
    const [j, c] = await Promise.all([
      warden(['ledger', 'export', '--out', out, '--page-size', '50', ...store()]),
      warden(['ledger', 'export', '--out', outCsv, '--kind', 'approval.granted', 'approval.denied', ...store()]),
    ]);
    expect(j.code).toBe(0);
    expect(await fs.readFile(out, 'utf8')).toBe(oracleEvents({}).map(jsonlLine).join(''));
    expect(j.stderr).toMatch(new RegExp(`exported ${RECORDS.length} / ${RECORDS.length} events`));
    expect(j.stderr.split('\n').filter((l) => l.startsWith('export:')).length).toBeGreaterThan(1);
    expect(c.code).toBe(0);
    expect(await fs.readFile(outCsv, 'utf8')).toBe(csvHeader() + oracleEvents({ kind: ['approval.granted', 'approval.denied'] }).map(csvRow).join(''));
  });

  it('a missing table or an unreachable server is a clear error (exit 2)', async () => {
    const r = await warden(['ledger', 'approvals', '--clickhouse-url', clickhouse.url, '--clickhouse-database', 'no_such_db', '--data-dir', dataDir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^warden: /);
  });
});
