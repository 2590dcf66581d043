/**
 * Compliance queries at scale: the lineage of one correlation ID and one day's approvals, on 1 M and
 * 10 M ledger rows, on a ClickHouse server (18.16) and on the embedded store (chdb).
 *
 *   npm run bench -- query
 *
 * Rows are generated where they are stored, with `INSERT INTO warden_ledger ... SELECT ... FROM
 * numbers(N)` over the real schema (ledger/store/schema.ts, migrated as the sidecar does, lineage
 * view included), so setup takes seconds: 30 days of events, 10 per correlation ID (three jobs on
 * `ingest`, `embed` and `model-call`, a policy decision, and for one correlation in ten an approval
 * by one of 20 approvers; 1% of rows are approvals). The 10 M table is the 1 M table plus 9 M rows.
 *
 * Queries are the library's own (ledger/compliance/queries.ts): `lineage(store, cid)` (through the
 * warden_lineage table), `approvals(store, {since, until})` for one UTC day and
 * `approvalsPerDay(store, {since, until})` for the same day. Each runs once cold, then 5 times;
 * the median of those 5 is reported.
 */
import { approvals, approvalsPerDay, lineage } from '../ledger/compliance/queries.js';
import { LEDGER_INSERT_COLUMNS, LEDGER_TABLE } from '../ledger/store/rows.js';
import { ServerStore } from '../ledger/store/server.js';
import type { LedgerStore } from '../ledger/store/store.js';
import { startClickHouse } from '../test/harness/index.js';
import { DEFAULT_OPTIONS, fmt, median, printSummary, ratio, round, scaled, type ScenarioOptions, type ScenarioResult } from './lib/report.js';
import { openEmbedded } from './lib/stores.js';

const BASE_MS = Date.UTC(2026, 0, 1);
const SPAN_MS = 30 * 86_400_000;
const DAY = { since: Date.UTC(2026, 0, 15), until: Date.UTC(2026, 0, 16) };

/**
 * `count` rows with seq `offset + 1 ...`; row n's time is `BASE_MS + (n mod period) / period * 30 days`,
 * so every `period` consecutive rows spread evenly over the 30 days (and inserts can be chunked). Same text on 18.16
 * and chdb: only functions both have, aliases that name no column, columns in LEDGER_INSERT_COLUMNS
 * order (duration_ms is computed by the table from duration_bits).
 */
export function generateRowsSql(offset: number, count: number, period: number): string {
  const pos = 'n % 10';
  const cid = 'intDiv(n, 10)';
  const approves = `(${cid} % 10 = 0)`;
  const kind = `multiIf(${pos} IN (0, 3), 'job.added', ${pos} IN (1, 4, 8), 'job.started', ${pos} = 6, 'policy.decision', ${pos} = 7 AND ${approves}, if(${cid} % 7 = 0, 'approval.denied', 'approval.granted'), ${pos} = 7, 'job.added', 'job.completed')`;
  const queue = `multiIf(${pos} < 3, 'ingest', ${pos} < 6, 'embed', 'model-call')`;
  const isJob = `(${pos} != 6 AND NOT (${pos} = 7 AND ${approves}))`;
  const values: Record<string, string> = {
    seq: 'n + 1',
    prev: 'lower(hex(SHA256(toString(n))))',
    hash: 'lower(hex(SHA256(toString(n + 1))))',
    ts: "toDateTime(intDiv(t, 1000), 'UTC')",
    ts_ms: 't',
    event_id: 'substring(concat(hex(cityHash64(n)), hex(cityHash64(n + 1))), 1, 26)',
    kind,
    source: "'bullmq'",
    queue,
    correlation_id: `concat('wc_bench_', toString(${cid}))`,
    trace_id: `lower(hex(MD5(concat('wc_bench_', toString(${cid})))))`,
    span_id: 'substring(lower(hex(MD5(toString(n)))), 1, 16)',
    job_id: `if(${isJob}, toString(intDiv(n, 3)), NULL)`,
    job_name: `if(${isJob}, 'summarize', NULL)`,
    workflow_id: 'CAST(NULL AS Nullable(String))',
    run_id: 'CAST(NULL AS Nullable(String))',
    activity_type: 'CAST(NULL AS Nullable(String))',
    input_digest: `if(${pos} IN (0, 3), lower(hex(SHA256(toString(${cid})))), NULL)`,
    model: `if(${pos} >= 6, 'llm-x', NULL)`,
    model_version: `if(${pos} >= 6, '7', NULL)`,
    policy: `if(${pos} = 6 OR (${pos} = 7 AND ${approves}), 'pii-gate', NULL)`,
    policy_version: `if(${pos} = 6 OR (${pos} = 7 AND ${approves}), '3', NULL)`,
    actor: `if(${pos} = 7 AND ${approves}, concat('approver-', toString(intDiv(${cid}, 10) % 20)), NULL)`,
    decision: `if(${pos} = 6, if(${approves}, 'require_approval', 'allow'), NULL)`,
    reason: 'CAST(NULL AS Nullable(String))',
    error: 'CAST(NULL AS Nullable(String))',
    attempt: `if(${isJob}, toUInt64(1), NULL)`,
    duration_bits: `if(${pos} IN (2, 5, 9), toUInt64(4623507967449235456), NULL)`, // 12.5 ms
    attrs: `concat('{"stream_id":"', toString(t), '-0","tenant":"acme"}')`,
    input: `if(${pos} IN (0, 3), concat('{"docId":"doc-', toString(${cid}), '","prompt":"Summarize the quarterly report for the board.","user":"[REDACTED:email]"}'), 'null')`,
    spill: "''",
  };
  const columns = LEDGER_INSERT_COLUMNS;
  const missing = columns.filter((c) => !(c in values));
  if (missing.length) throw new Error(`generateRowsSql has no value for ${missing.join(', ')}`);
  return (
    `INSERT INTO ${LEDGER_TABLE} (${columns.join(', ')})\n` +
    `SELECT ${columns.map((c) => values[c]).join(',\n  ')}\n` +
    `FROM (SELECT number + ${offset} AS n, ${BASE_MS} + intDiv((n % ${period}) * ${SPAN_MS}, ${period}) AS t FROM numbers(${count}))`
  );
}

interface Timing { coldMs: number; medianMs: number; rows: number }

async function timed(fn: () => Promise<unknown[]>): Promise<Timing> {
  let t = performance.now();
  const rows = (await fn()).length;
  const coldMs = performance.now() - t;
  const warm: number[] = [];
  for (let i = 0; i < 5; i++) {
    t = performance.now();
    await fn();
    warm.push(performance.now() - t);
  }
  return { coldMs: round(coldMs, 1), medianMs: round(median(warm), 1), rows };
}

async function measure(store: LedgerStore, cid: string) {
  return {
    lineage: await timed(() => lineage(store, cid)),
    dayApprovals: await timed(() => approvals(store, DAY)),
    dayApprovalsPerActor: await timed(() => approvalsPerDay(store, DAY)),
  };
}

/** Inserts rows from..to in chunks of `period` (one INSERT each stays well inside a request timeout). */
async function grow(store: LedgerStore, from: number, to: number, period: number): Promise<number> {
  const t = performance.now();
  for (let at = from; at < to; at += period) await store.exec(generateRowsSql(at, Math.min(period, to - at), period));
  const ms = performance.now() - t;
  const [row] = await store.query<{ n: string }>(`SELECT count() AS n FROM ${LEDGER_TABLE}`);
  if (Number(row.n) !== to) throw new Error(`${store.target} holds ${row.n} rows, expected ${to}`);
  return ms;
}

export async function run(opts: ScenarioOptions = DEFAULT_OPTIONS): Promise<ScenarioResult> {
  const log = opts.log;
  const small = scaled(1_000_000, opts, 10_000);
  const large = scaled(10_000_000, opts, 100_000);
  const cid = `wc_bench_${Math.floor(small / 20)}`; // in the first rows: present at both sizes
  const clickhouse = await startClickHouse();
  const figures: Record<string, unknown> = { rows: { small, large }, correlationId: cid, day: new Date(DAY.since).toISOString().slice(0, 10) };
  const ratios: Record<string, number> = {};
  try {
    const engines: [string, () => Promise<LedgerStore>][] = [
      ['server', async () => { const s = new ServerStore({ url: clickhouse.url, requestTimeoutMs: 300_000 }); await s.migrate(); return s; }],
      ['chdb', openEmbedded],
    ];
    const results: Record<string, Record<string, Awaited<ReturnType<typeof measure>>>> = {};
    for (const [name, open] of engines) {
      const store = await open();
      try {
        results[name] = {};
        const setup: Record<string, number> = {};
        let rows = 0;
        for (const size of [small, large]) {
          setup[size] = round((await grow(store, rows, size, small)) / 1000, 1);
          rows = size;
          const m = await measure(store, cid);
          results[name][size] = m;
          log(`${name.padEnd(6)} ${fmt(size).padStart(10)} rows (generated in ${setup[size]} s): lineage ${m.lineage.medianMs} ms (${m.lineage.rows} rows, cold ${m.lineage.coldMs}), ` +
            `day's approvals ${m.dayApprovals.medianMs} ms (${m.dayApprovals.rows} rows, cold ${m.dayApprovals.coldMs}), per actor ${m.dayApprovalsPerActor.medianMs} ms (${m.dayApprovalsPerActor.rows} rows)`);
        }
        figures[name] = { ...results[name], generateSeconds: setup };
      } finally {
        await store.close();
      }
    }
    for (const size of [small, large]) {
      const label = size === small ? 'small' : 'large';
      ratios[`chdb/server lineage ms (${label})`] = ratio(results.chdb[size].lineage.medianMs, results.server[size].lineage.medianMs);
      ratios[`chdb/server day approvals ms (${label})`] = ratio(results.chdb[size].dayApprovals.medianMs, results.server[size].dayApprovals.medianMs);
    }
    for (const name of ['server', 'chdb']) {
      ratios[`${name} lineage ms large/small`] = ratio(results[name][large].lineage.medianMs, results[name][small].lineage.medianMs);
      ratios[`${name} day approvals ms large/small`] = ratio(results[name][large].dayApprovals.medianMs, results[name][small].dayApprovals.medianMs);
    }
    const result: ScenarioResult = {
      figures,
      ratios,
      notes: [
        'times are wall-clock from the library call to typed rows (SQL text, HTTP or worker-thread round trip, JSON parse, rowToRecord for lineage)',
        'ratios < 1 for chdb/server mean chdb answered faster; large/small shows how a query grows with 10x rows',
      ],
    };
    printSummary(result, log);
    return result;
  } finally {
    await clickhouse.dispose();
  }
}
