/**
 * The compliance questions, asked of the ledger in ClickHouse (`warden_ledger`, see store/schema.ts).
 *
 * Every function here has two halves: `xxxSql(...)` builds the SQL text, and `xxx(store, ...)` runs it
 * and returns typed rows. The text is the same on both stores (ClickHouse 18.16 and later servers, and
 * chdb's 26.x engine): every value is inlined by store/sql.ts (18.16 has no query parameters), and
 * every result is fully ordered, so both engines answer with the same rows in the same order. The SQL
 * is also what the README shows to analysts (run it as a read-only user).
 *
 * Conventions the queries rely on (the event is core/event.ts's WardenEvent):
 * - Time ranges are on the exact event time `ts_ms`: `since <= ts_ms < until` (epoch ms), as in the
 *   spool's queryLedger. A coarse condition on the second-precision `ts` is added beside it so the
 *   primary index (queue, ts, seq) and the monthly partitions prune what cannot match.
 * - An approval is an `approval.granted` or `approval.denied` event; `actor` is who approved.
 * - A policy decision is a `policy.decision` event with `policy`, `policy_version`, `decision`,
 *   `reason` and `actor` (the caller the policy was applied to, or the policy engine).
 * - "Approval required" is a `policy.decision` whose `decision` is exactly `require_approval`. The work
 *   it gates is everything with the same `correlation_id`; it is approved once an `approval.granted`
 *   with that correlation ID is recorded at or before (`ts_ms <=`) the work completed
 *   (`job.completed`, `activity.completed` or `workflow.completed`).
 * - Events whose `ts` the DateTime column could not hold (before 1970 or after 2105: store/rows.ts
 *   keeps them in the `spill` column with ts_ms 0) never match a time range.
 */
import { APPROVAL_KINDS, COMPLETION_KINDS, RUN_KINDS } from '../../core/kinds.js';

export { APPROVAL_KINDS, COMPLETION_KINDS, RUN_KINDS };
import { InvalidFilterError } from '../errors.js';
import { checkCount, checkKinds, checkLedgerFilter, checkProvenance, checkRange, checkString, RECEIVED_VIA_NONE, type LedgerFilter, type ProvenanceFilter, type TimeRange } from '../filter.js';
import { RECEIVED_VIA } from '../../core/kinds.js';

export type { TimeRange };


import type { LedgerRecord } from '../spool/record.js';
import { LEDGER_SELECT, LEDGER_TABLE, TS_MAX_MS, rowToRecord } from '../store/rows.js';
import { LINEAGE_TABLE } from '../store/schema.js';
import { ident, sql, sqlNumber, sqlString, type SqlValue } from '../store/sql.js';
import type { LedgerStore } from '../store/store.js';


/** Event reads from the store take the ledger's one filter, plus what only the store has. */
export interface EventFilter extends LedgerFilter {
  /** Only events whose event_id sorts after this one (the store's paging across ledgers). */
  afterEventId?: string;
  /** Only this ledger's rows (store/ledger-id.ts); default: every ledger. */
  ledgerId?: string;
}

export type { ProvenanceFilter };

export interface ApprovalFilter extends TimeRange, ProvenanceFilter {
  actor?: string;
  queue?: string;
  limit?: number;
}

export interface DecisionFilter extends TimeRange, ProvenanceFilter {
  actor?: string;
  queue?: string;
  policy?: string;
  limit?: number;
}

export interface VersionFilter extends TimeRange {
  queue?: string;
}

export interface UnapprovedFilter extends TimeRange {
  /** Only completions on this queue. */
  queue?: string;
}

/** The decision value that means "this work needs an approval first" (see the module comment). */
export const REQUIRE_APPROVAL = 'require_approval';

// ---------------------------------------------------------------------------------------------------
// Filter checks and SQL pieces

const TS_MAX_S = Math.floor(TS_MAX_MS / 1000);

/**
 * Every read spans all ledgers (one per sidecar, store/ledger-id.ts) and counts each event once: an
 * event that reached two ledgers (a NATS redelivery to another sidecar, two sidecars reading one
 * BullMQ stream during a failover, each with the same deterministic event_id) is one event, and so is a
 * record stored twice by a repeated insert (`warden ledger verify --store` fails on that one). Counts
 * are uniqExact(event_id); lists keep the first row of each event_id in their (full) order. Both run on
 * ClickHouse 18.16 and on current engines (chdb), on one server or over a cluster's Distributed tables
 * (copies of one event share its correlation ID, so they live on one shard).
 */
const ONCE_PER_EVENT = 'LIMIT 1 BY event_id';
/**
 * A subquery over warden_ledger inside a query over warden_ledger: GLOBAL IN, so on a cluster the
 * subquery runs once and its result goes to every shard (a plain IN over a Distributed table is refused
 * as a double-distributed subquery); on one server GLOBAL IN is IN.
 */
const SUBQUERY_IN = 'GLOBAL IN';

/**
 * The time conditions: exact on ts_ms, plus the same bound in whole seconds on `ts` (what the sort key
 * and the partitions are on). Seconds are clamped to what a DateTime holds; ts_ms stays exact.
 */
function timeConditions(r: TimeRange): string[] {
  const out: string[] = [];
  if (r.since !== undefined) {
    const s = Math.min(Math.floor(r.since / 1000), TS_MAX_S);
    out.push(`ts >= toDateTime(${sqlNumber(s)})`, `ts_ms >= ${sqlNumber(r.since)}`);
  }
  if (r.until !== undefined) {
    if (r.until <= 0) return ['0'];
    const s = Math.min(Math.floor((r.until - 1) / 1000), TS_MAX_S);
    out.push(`ts <= toDateTime(${sqlNumber(s)})`, `ts_ms < ${sqlNumber(r.until)}`);
  }
  return out;
}

/** `column = 'value'` (the literal from sql.ts), or nothing when the filter is absent. */
function eq(column: string, value: string | undefined): string[] {
  return value === undefined ? [] : [`${column} = ${sqlString(value)}`];
}

/**
 * `source = ...`, and the credential an ingested record came through: `attrs.received_via`, read with
 * visitParamExtractString (on 18.16 and later; attrs is canonical JSON of scalars, so the key's first
 * occurrence is the key itself); '' when absent, which is what `none` (the sidecar's own records) asks.
 */
function provenance(f: ProvenanceFilter): string[] {
  checkProvenance(f);
  return [
    ...eq('source', f.source),
    ...(f.receivedVia === undefined ? [] : [`visitParamExtractString(attrs, ${sqlString(RECEIVED_VIA)}) = ${sqlString(f.receivedVia === RECEIVED_VIA_NONE ? '' : f.receivedVia)}`]),
  ];
}

function where(conditions: string[]): string {
  return conditions.length === 0 ? '' : `WHERE ${conditions.join('\n  AND ')}\n`;
}

function limitClause(limit: number | undefined): string {
  return limit === undefined ? '' : `\nLIMIT ${sqlNumber(limit)}`;
}

const list = (values: readonly string[]): string => sql`${values as readonly SqlValue[]}`;

// Results: 64-bit integers arrive as strings (COMMON_SETTINGS), Nullable NULL as null.
const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const str = (v: unknown): string => String(v);
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

// ---------------------------------------------------------------------------------------------------
// 1. Events by filters

function eventConditions(f: EventFilter): string[] {
  const kinds = checkLedgerFilter(f);
  return [
    ...eq('queue', f.queue),
    ...timeConditions(f),
    ...eq('correlation_id', f.correlationId),
    ...eq('job_id', f.jobId),
    ...eq('workflow_id', f.workflowId),
    ...eq('actor', f.actor),
    ...eq('model_version', f.modelVersion),
    ...(kinds ? [`kind IN ${list(kinds)}`] : []),
    ...provenance(f),
    ...(f.afterSeq !== undefined ? [`seq > ${sqlNumber(f.afterSeq)}`] : []),
    ...(f.toSeq !== undefined ? [`seq <= ${sqlNumber(f.toSeq)}`] : []),
    ...(f.afterEventId !== undefined ? [`event_id > ${sqlString(f.afterEventId)}`] : []),
    ...(f.ledgerId !== undefined ? [`ledger_id = ${sqlString(f.ledgerId)}`] : []),
  ];
}

/**
 * Events matching every given filter, once each, in event ID order (ULIDs: time order; the one order
 * that spans ledgers, whose seqs are each their own): whole rows, for rowToRecord. Paging goes on from
 * the last event ID (`afterEventId`), so no page repeats an event another page had.
 */
export function eventsSql(f: EventFilter = {}): string {
  checkString(f.afterEventId, 'afterEventId');
  checkString(f.ledgerId, 'ledgerId');
  return `SELECT ${LEDGER_SELECT}\nFROM ${LEDGER_TABLE}\n${where(eventConditions(f))}ORDER BY event_id, ledger_id, seq\n${ONCE_PER_EVENT}${limitClause(f.limit)}`;
}

/** How many events match (the limit and afterSeq apply), each counted once. */
export function countEventsSql(f: EventFilter = {}): string {
  checkString(f.afterEventId, 'afterEventId');
  checkString(f.ledgerId, 'ledgerId');
  return `SELECT uniqExact(event_id) AS n\nFROM ${LEDGER_TABLE}\n${where(eventConditions(f))}`.trimEnd();
}

/**
 * The rows (not events) matching `f`, in event ID order, at most `rows` of them: what paging reads.
 * A row LIMIT over a sorted Distributed read is exact on every version; `LIMIT 1 BY ... LIMIT n` is not
 * on 18.16 (measured on a two-shard cluster: the shards cut at n rows before the initiator drops the
 * copies, so a page came back short and paging ended early). Copies of one event sort next to each other.
 */
export function eventRowsSql(f: EventFilter, rows: number): string {
  checkString(f.afterEventId, 'afterEventId');
  checkString(f.ledgerId, 'ledgerId');
  checkCount(rows, 'rows');
  return `SELECT ${LEDGER_SELECT}\nFROM ${LEDGER_TABLE}\n${where(eventConditions({ ...f, limit: undefined }))}ORDER BY event_id, ledger_id, seq\nLIMIT ${sqlNumber(rows)}`;
}

/**
 * Pages of the events matching `filter`, each event once across every ledger, in event ID order, each
 * page at most `pageSize` events; `filter.limit` caps the total and `filter.afterEventId` is where paging
 * starts. Each page reads pageSize + 1 rows: when the read comes back full, its last event may have
 * more copies beyond it, so it is left for the next page.
 */
export async function* eventPagesOf(store: LedgerStore, filter: EventFilter, pageSize = 5000): AsyncGenerator<LedgerRecord[]> {
  if (!(Number.isSafeInteger(pageSize) && pageSize > 0)) throw new InvalidFilterError('pageSize must be a positive integer');
  checkLedgerFilter(filter);
  let remaining = filter.limit ?? Number.POSITIVE_INFINITY;
  let after = filter.afterEventId;
  let extra = 1;
  while (remaining > 0) {
    const want = Math.min(pageSize, remaining);
    const limit = want + extra;
    const read = (await store.query(eventRowsSql({ ...filter, afterEventId: after }, limit))).map(rowToRecord);
    if (read.length === 0) return;
    const full = read.length === limit;
    const page: LedgerRecord[] = [];
    for (const r of read) if (page.length === 0 || page[page.length - 1].event.event_id !== r.event.event_id) page.push(r);
    if (full) {
      // The last event may have copies past the read. If it is the only one, read more rows at once.
      if (page.length === 1) { extra += limit; continue; }
      page.pop();
    }
    const out = page.slice(0, want);
    yield out;
    remaining -= out.length;
    after = out[out.length - 1].event.event_id;
    if (!full) return;
    extra = 1;
  }
}

export async function queryEvents(store: LedgerStore, f: EventFilter = {}): Promise<LedgerRecord[]> {
  if (f.limit === 0) return [];
  const out: LedgerRecord[] = [];
  for await (const page of eventPagesOf(store, f, Math.min(f.limit ?? 5000, 5000))) out.push(...page);
  return out;
}

export async function countEvents(store: LedgerStore, f: EventFilter = {}): Promise<number> {
  const [row] = await store.query<{ n: string }>(countEventsSql(f));
  const n = num(row.n);
  return f.limit === undefined ? n : Math.min(n, f.limit);
}

// ---------------------------------------------------------------------------------------------------
// 2. Lineage

/**
 * Every record of one correlation ID across the fleet's ledgers, each event once, ordered by event
 * time, then seq (as the spool's lineage()), then ledger. The narrow warden_lineage table finds the
 * (ledger_id, queue, ts, seq) keys, which the ledger's primary index then answers (see
 * store/queries.ts); the second condition keeps the answer exact if a row changed.
 */
export function lineageSql(correlationId: string): string {
  checkString(correlationId, 'correlationId');
  return (
    `SELECT ${LEDGER_SELECT}\nFROM ${LEDGER_TABLE}\n` +
    sql`WHERE (ledger_id, queue, ts, seq) IN (SELECT ledger_id, queue, ts, seq FROM ${ident(LINEAGE_TABLE)} WHERE correlation_id = ${correlationId})\n` +
    sql`  AND correlation_id = ${correlationId}\nORDER BY ts_ms, seq, ledger_id\n` + ONCE_PER_EVENT
  );
}

export async function lineage(store: LedgerStore, correlationId: string): Promise<LedgerRecord[]> {
  return (await store.query(lineageSql(correlationId))).map(rowToRecord);
}

// ---------------------------------------------------------------------------------------------------
// 3. Approvals

export interface ApprovalRow {
  seq: number;
  ts_ms: number;
  kind: (typeof APPROVAL_KINDS)[number];
  actor: string | null;
  correlation_id: string | null;
  queue: string;
  job_id: string | null;
  workflow_id: string | null;
  policy: string | null;
  policy_version: string | null;
  reason: string | null;
}
export const APPROVAL_COLUMNS = ['seq', 'ts_ms', 'kind', 'actor', 'correlation_id', 'queue', 'job_id', 'workflow_id', 'policy', 'policy_version', 'reason'] as const;

function approvalConditions(f: ApprovalFilter): string[] {
  checkString(f.actor, 'actor');
  checkString(f.queue, 'queue');
  checkRange(f);
  checkCount(f.limit, 'limit');
  return [...eq('queue', f.queue), ...timeConditions(f), `kind IN ${list(APPROVAL_KINDS)}`, ...eq('actor', f.actor), ...provenance(f)];
}

/** Approvals granted or denied, by actor and time range, in time order. */
export function approvalsSql(f: ApprovalFilter = {}): string {
  return (
    `SELECT ${APPROVAL_COLUMNS.join(', ')}, event_id\nFROM ${LEDGER_TABLE}\n${where(approvalConditions(f))}` +
    `ORDER BY ts_ms, seq, ledger_id\n${ONCE_PER_EVENT}${limitClause(f.limit)}`
  );
}

export async function approvals(store: LedgerStore, f: ApprovalFilter = {}): Promise<ApprovalRow[]> {
  if (f.limit === 0) return [];
  return (await store.query(approvalsSql(f))).map((r) => ({
    seq: num(r.seq),
    ts_ms: num(r.ts_ms),
    kind: str(r.kind) as ApprovalRow['kind'],
    actor: strOrNull(r.actor),
    correlation_id: strOrNull(r.correlation_id),
    queue: str(r.queue),
    job_id: strOrNull(r.job_id),
    workflow_id: strOrNull(r.workflow_id),
    policy: strOrNull(r.policy),
    policy_version: strOrNull(r.policy_version),
    reason: strOrNull(r.reason),
  }));
}

export interface ApprovalsPerDayRow {
  /** `YYYY-MM-DD`, UTC. */
  day: string;
  actor: string | null;
  granted: number;
  denied: number;
}
export const APPROVALS_PER_DAY_COLUMNS = ['day', 'actor', 'granted', 'denied'] as const;

/** Approvals per actor per (UTC) day. */
export function approvalsPerDaySql(f: Omit<ApprovalFilter, 'limit'> = {}): string {
  return (
    `SELECT toDate(ts) AS day, actor, uniqExactIf(event_id, kind = 'approval.granted') AS granted, uniqExactIf(event_id, kind = 'approval.denied') AS denied\n` +
    `FROM ${LEDGER_TABLE}\n${where(approvalConditions(f))}GROUP BY day, actor\nORDER BY day, actor`
  );
}

export async function approvalsPerDay(store: LedgerStore, f: Omit<ApprovalFilter, 'limit'> = {}): Promise<ApprovalsPerDayRow[]> {
  return (await store.query(approvalsPerDaySql(f))).map((r) => ({
    day: str(r.day),
    actor: strOrNull(r.actor),
    granted: num(r.granted),
    denied: num(r.denied),
  }));
}

// ---------------------------------------------------------------------------------------------------
// 4. Model and policy versions in use

export interface VersionRow {
  /** `YYYY-MM-DD`, UTC. */
  day: string;
  queue: string;
  workflow_id: string | null;
  activity_type: string | null;
  model: string | null;
  model_version: string | null;
  policy: string | null;
  policy_version: string | null;
  /** Events that carried this combination. */
  events: number;
  /** Of those, completions and failures (job/activity/workflow .completed or .failed): finished runs. */
  runs: number;
  /** Distinct correlation IDs (units of work) among them. */
  correlations: number;
}
export const VERSION_COLUMNS = ['day', 'queue', 'workflow_id', 'activity_type', 'model', 'model_version', 'policy', 'policy_version', 'events', 'runs', 'correlations'] as const;
const VERSION_KEY = 'day, queue, workflow_id, activity_type, model, model_version, policy, policy_version';

/**
 * Which models and policies, at which versions, ran where, per (UTC) day: every event that names a
 * model or a policy, grouped by queue / workflow / activity type and the four version columns.
 */
export function versionsSql(f: VersionFilter = {}): string {
  checkString(f.queue, 'queue');
  checkRange(f);
  const conditions = [...eq('queue', f.queue), ...timeConditions(f), '(model IS NOT NULL OR policy IS NOT NULL)'];
  return (
    `SELECT toDate(ts) AS day, queue, workflow_id, activity_type, model, model_version, policy, policy_version,\n` +
    `  uniqExact(event_id) AS events, uniqExactIf(event_id, kind IN ${list(RUN_KINDS)}) AS runs, uniqExact(correlation_id) AS correlations\n` +
    `FROM ${LEDGER_TABLE}\n${where(conditions)}GROUP BY ${VERSION_KEY}\nORDER BY ${VERSION_KEY}`
  );
}

export async function versions(store: LedgerStore, f: VersionFilter = {}): Promise<VersionRow[]> {
  return (await store.query(versionsSql(f))).map((r) => ({
    day: str(r.day),
    queue: str(r.queue),
    workflow_id: strOrNull(r.workflow_id),
    activity_type: strOrNull(r.activity_type),
    model: strOrNull(r.model),
    model_version: strOrNull(r.model_version),
    policy: strOrNull(r.policy),
    policy_version: strOrNull(r.policy_version),
    events: num(r.events),
    runs: num(r.runs),
    correlations: num(r.correlations),
  }));
}

// ---------------------------------------------------------------------------------------------------
// 5. Work that ran without a required approval

export interface UnapprovedRow {
  correlation_id: string;
  /** The first `require_approval` decision: when, and which policy made it. */
  required_at: number;
  policy: string | null;
  policy_version: string | null;
  /** The first completion (in the time range, on the queue if given) and what completed. */
  completed_at: number;
  completed_kind: string;
  queue: string;
  job_id: string | null;
  workflow_id: string | null;
  /** The first approval.granted for the correlation ID, if any (always after completed_at). */
  first_granted_at: number | null;
  /** approval.denied events for the correlation ID. */
  denied: number;
}
export const UNAPPROVED_COLUMNS = [
  'correlation_id', 'required_at', 'policy', 'policy_version', 'completed_at', 'completed_kind', 'queue', 'job_id', 'workflow_id', 'first_granted_at', 'denied',
] as const;

/**
 * Correlation IDs where a policy required an approval (`policy.decision` with decision
 * `require_approval`), the work completed, and no `approval.granted` for that correlation ID was
 * recorded at or before the completion. The time range and queue select the completions; approvals
 * and decisions count whenever they were recorded. One row per correlation ID, about its first such
 * completion (every later completion is then unapproved too, or came after a late approval).
 *
 * Aggregates per correlation ID rather than joins: the same text runs on 18.16, whose JOIN semantics
 * differ from later versions. argMin over (ts_ms, seq) makes ties on ts_ms deterministic. Aliases
 * never reuse a column name: ClickHouse resolves a name to the alias first, everywhere in the query.
 */
export function unapprovedSql(f: UnapprovedFilter = {}): string {
  checkString(f.queue, 'queue');
  checkRange(f);
  const required = `kind = 'policy.decision' AND ifNull(decision, '') = ${sqlString(REQUIRE_APPROVAL)}`;
  const completion = [`kind IN ${list(COMPLETION_KINDS)}`, ...eq('queue', f.queue), ...timeConditions(f)].join(' AND ');
  const granted = `kind = 'approval.granted'`;
  return [
    `SELECT`,
    `  correlation_id,`,
    `  minIf(ts_ms, is_required) AS required_at,`,
    `  argMinIf(policy, (ts_ms, seq), is_required) AS required_by_policy,`,
    `  argMinIf(policy_version, (ts_ms, seq), is_required) AS required_by_policy_version,`,
    `  minIf(ts_ms, is_completion) AS completed_at,`,
    `  argMinIf(kind, (ts_ms, seq), is_completion) AS completed_kind,`,
    `  argMinIf(queue, (ts_ms, seq), is_completion) AS completed_queue,`,
    `  argMinIf(job_id, (ts_ms, seq), is_completion) AS completed_job_id,`,
    `  argMinIf(workflow_id, (ts_ms, seq), is_completion) AS completed_workflow_id,`,
    `  uniqExactIf(event_id, kind = 'approval.granted') AS granted,`,
    `  minIf(ts_ms, kind = 'approval.granted') AS first_granted_at,`,
    `  uniqExactIf(event_id, kind = 'approval.denied') AS denied`,
    `FROM (`,
    `  SELECT event_id, correlation_id, ts_ms, seq, kind, queue, job_id, workflow_id, policy, policy_version,`,
    `    ${required} AS is_required,`,
    `    ${completion} AS is_completion`,
    `  FROM ${LEDGER_TABLE}`,
    `  WHERE correlation_id ${SUBQUERY_IN} (SELECT assumeNotNull(correlation_id) FROM ${LEDGER_TABLE} WHERE correlation_id IS NOT NULL AND ${completion})`,
    `    AND correlation_id ${SUBQUERY_IN} (SELECT assumeNotNull(correlation_id) FROM ${LEDGER_TABLE} WHERE correlation_id IS NOT NULL AND ${required})`,
    `)`,
    `GROUP BY correlation_id`,
    `HAVING granted = 0 OR first_granted_at > completed_at`,
    `ORDER BY completed_at, correlation_id`,
  ].join('\n');
}

export async function unapproved(store: LedgerStore, f: UnapprovedFilter = {}): Promise<UnapprovedRow[]> {
  return (await store.query(unapprovedSql(f))).map((r) => ({
    correlation_id: str(r.correlation_id),
    required_at: num(r.required_at),
    policy: strOrNull(r.required_by_policy),
    policy_version: strOrNull(r.required_by_policy_version),
    completed_at: num(r.completed_at),
    completed_kind: str(r.completed_kind),
    queue: str(r.completed_queue),
    job_id: strOrNull(r.completed_job_id),
    workflow_id: strOrNull(r.completed_workflow_id),
    first_granted_at: num(r.granted) === 0 ? null : numOrNull(r.first_granted_at),
    denied: num(r.denied),
  }));
}

// ---------------------------------------------------------------------------------------------------
// 6. Policy decisions

export interface DecisionRow {
  seq: number;
  ts_ms: number;
  correlation_id: string | null;
  queue: string;
  policy: string | null;
  policy_version: string | null;
  decision: string | null;
  reason: string | null;
  actor: string | null;
}
export const DECISION_COLUMNS = ['seq', 'ts_ms', 'correlation_id', 'queue', 'policy', 'policy_version', 'decision', 'reason', 'actor'] as const;

function decisionConditions(f: DecisionFilter): string[] {
  checkString(f.actor, 'actor');
  checkString(f.queue, 'queue');
  checkString(f.policy, 'policy');
  checkRange(f);
  checkCount(f.limit, 'limit');
  return [...eq('queue', f.queue), ...timeConditions(f), `kind = 'policy.decision'`, ...eq('actor', f.actor), ...eq('policy', f.policy), ...provenance(f)];
}

/** Policy decisions in a time range, in time order. */
export function decisionsSql(f: DecisionFilter = {}): string {
  return (
    `SELECT ${DECISION_COLUMNS.join(', ')}, event_id\nFROM ${LEDGER_TABLE}\n${where(decisionConditions(f))}` +
    `ORDER BY ts_ms, seq, ledger_id\n${ONCE_PER_EVENT}${limitClause(f.limit)}`
  );
}

export async function decisions(store: LedgerStore, f: DecisionFilter = {}): Promise<DecisionRow[]> {
  if (f.limit === 0) return [];
  return (await store.query(decisionsSql(f))).map((r) => ({
    seq: num(r.seq),
    ts_ms: num(r.ts_ms),
    correlation_id: strOrNull(r.correlation_id),
    queue: str(r.queue),
    policy: strOrNull(r.policy),
    policy_version: strOrNull(r.policy_version),
    decision: strOrNull(r.decision),
    reason: strOrNull(r.reason),
    actor: strOrNull(r.actor),
  }));
}

export interface DecisionCountRow {
  policy: string | null;
  policy_version: string | null;
  decision: string | null;
  decisions: number;
}
export const DECISION_COUNT_COLUMNS = ['policy', 'policy_version', 'decision', 'decisions'] as const;

/** Decisions per policy, policy version and decision. */
export function decisionCountsSql(f: Omit<DecisionFilter, 'limit'> = {}): string {
  return (
    `SELECT policy, policy_version, decision, uniqExact(event_id) AS decisions\nFROM ${LEDGER_TABLE}\n${where(decisionConditions(f))}` +
    `GROUP BY policy, policy_version, decision\nORDER BY policy, policy_version, decision`
  );
}

export async function decisionCounts(store: LedgerStore, f: Omit<DecisionFilter, 'limit'> = {}): Promise<DecisionCountRow[]> {
  return (await store.query(decisionCountsSql(f))).map((r) => ({
    policy: strOrNull(r.policy),
    policy_version: strOrNull(r.policy_version),
    decision: strOrNull(r.decision),
    decisions: num(r.decisions),
  }));
}
