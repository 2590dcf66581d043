/**
 * The ClickHouse schema of the ledger, as versioned migrations that run unchanged on ClickHouse 18.16
 * (Debian's server), 23-25 (what users run) and chdb's 26.x engine.
 *
 * Tables:
 * - `warden_ledger`: one row per record (columns in rows.ts). Plain append-only MergeTree, never
 *   Replacing/Collapsing: a merge must not drop or fold rows. Partitioned by month of the event time
 *   (`toYYYYMM(ts)`), so retention drops whole months.
 *   ORDER BY (queue, ts, seq): serves "a time range of one queue" from the primary index, and keeps
 *   one queue's similar inputs next to each other, which is what the compressor sees.
 * - `warden_lineage` (correlation_id, queue, ts, seq), ORDER BY (correlation_id, seq), filled by the
 *   materialized view `warden_lineage_mv` on every insert into warden_ledger. One ORDER BY cannot serve
 *   both reads: with correlation_id first, a queue's time range reads every granule of the months in
 *   range; with queue first, one correlation ID reads every granule. 18.16 has no skip indexes (no
 *   INDEX clause, no setting to enable one), so the lineage read goes through this narrow table:
 *   `(queue, ts, seq) IN (SELECT queue, ts, seq FROM warden_lineage WHERE correlation_id = ...)` is
 *   answered from both primary indexes (see queries.ts; measured in test/ledger/store/layout.test.ts).
 *   The view sees inserts only: the lineage query also filters warden_ledger on correlation_id, so a
 *   row changed afterwards is never attributed to the wrong correlation ID.
 * - `warden_checkpoints`: signed tree heads (size, root, ts, last_seq, key_id, sig), written by the
 *   checkpoint code.
 * - `warden_migrations`: which migrations ran (version, name, checksum of their SQL, when).
 *
 * Compression: 18.16 has no per-column CODEC (a syntax error) and no table-level codec setting; its
 * parts use the server's `<compression>` config (LZ4 unless the operator sets `method zstd` there). So
 * migration 4 gives `input` and `attrs` `CODEC(ZSTD(3))` only on engines that have codecs (19.1+:
 * every supported production version and chdb). It is skipped, and not recorded, on older servers, so
 * it applies by itself after an upgrade; until then the server config is the only lever.
 *
 * Types: nothing either end lacks. DateTime('UTC') plus ts_ms UInt64 (no DateTime64), Nullable for
 * absent numbers and strings (except sort-key columns), String for JSON (no JSON/Map type), no
 * LowCardinality (experimental on 18.16), no Bool.
 */
import { createHash } from 'node:crypto';
import { LEDGER_COLUMNS, LEDGER_TABLE } from './rows.js';
import { MigrationError, StoreQueryError } from './errors.js';
import { LEDGER_ID_COLUMN, LEGACY_LEDGER_ID } from './ledger-id.js';
import { ident, sql, sqlIdent } from './sql.js';

export { LEDGER_TABLE };
export const LINEAGE_TABLE = 'warden_lineage';
export const LINEAGE_VIEW = 'warden_lineage_mv';
export const CHECKPOINTS_TABLE = 'warden_checkpoints';
export const MIGRATIONS_TABLE = 'warden_migrations';

/** What an engine can do beyond the common ground; migrations that need more are skipped. */
export interface EngineCapabilities {
  /** Server version as reported by `SELECT version()`. */
  version: string;
  /** Per-column compression codecs (`CODEC(...)`), ClickHouse 19.1 and later. */
  codecs: boolean;
}

export interface Migration {
  version: number;
  name: string;
  /** Statements, run in order. Each is idempotent (IF NOT EXISTS), so a half-applied migration re-runs safely. */
  statements: readonly string[];
  /** Runs only where the engine has this capability; elsewhere it is skipped and not recorded. */
  requires?: 'codecs';
  /**
   * A query answering one row `{done}`: non-zero means the migration's effect is already there (a run
   * cut off after its last statement, before it was recorded), so it is recorded without running.
   */
  appliedIf?: string;
  /** Tables dropped after the migration ran, when they hold no rows (a rebuild's old table on a fresh install). */
  dropIfEmpty?: readonly string[];
}

/** The parts of a table definition that are shared by the single-node and cluster schemas. */
interface TableSpec {
  name: string;
  columns: ReadonlyArray<readonly [string, string]>;
  partitionBy?: string;
  orderBy: string;
}

// Migrations 1-3 created these single-ledger forms; their text must stay as it was (checksums).
const LEDGER_SPEC_V1: TableSpec = {
  name: LEDGER_TABLE,
  columns: LEDGER_COLUMNS,
  partitionBy: 'toYYYYMM(ts)',
  orderBy: '(queue, ts, seq)',
};

const LINEAGE_SPEC_V2: TableSpec = {
  name: LINEAGE_TABLE,
  columns: [['correlation_id', 'String'], ['queue', 'String'], ['ts', "DateTime('UTC')"], ['seq', 'UInt64']],
  partitionBy: 'toYYYYMM(ts)',
  orderBy: '(correlation_id, seq)',
};

const CHECKPOINT_COLUMNS: ReadonlyArray<readonly [string, string]> = [
    ['size', 'UInt64'],
    ['root', 'String'],
    ['ts', "DateTime('UTC')"],
    ['ts_ms', 'UInt64'],
    ['last_seq', 'UInt64'],
    ['key_id', 'String'],
    ['sig', 'String'],
];

const CHECKPOINTS_SPEC_V3: TableSpec = {
  name: CHECKPOINTS_TABLE,
  columns: CHECKPOINT_COLUMNS,
  orderBy: '(size, last_seq)',
};

/** A row inserted without a ledger ID (a tool that predates them) belongs to the legacy ledger. */
const LEDGER_ID: readonly [string, string] = [LEDGER_ID_COLUMN, `String DEFAULT '${LEGACY_LEDGER_ID}'`];

/**
 * The fleet forms (migrations 5-7): every row names its ledger (ledger-id.ts), and the ledger ID
 * leads each key. It has few distinct values (one per sidecar), so a query on one queue's time range
 * still prunes by (queue, ts) inside each ledger's range of the index, and a per-ledger read (store
 * verify, the shipper's resync: `ledger_id = X AND seq in a window`) reads only that ledger's granules.
 */
const LEDGER_SPEC: TableSpec = {
  name: LEDGER_TABLE,
  columns: [LEDGER_ID, ...LEDGER_COLUMNS],
  partitionBy: 'toYYYYMM(ts)',
  orderBy: '(ledger_id, queue, ts, seq)',
};

const LINEAGE_SPEC: TableSpec = {
  name: LINEAGE_TABLE,
  columns: [['correlation_id', 'String'], LEDGER_ID, ['queue', 'String'], ['ts', "DateTime('UTC')"], ['seq', 'UInt64']],
  partitionBy: 'toYYYYMM(ts)',
  orderBy: '(correlation_id, ledger_id, seq)',
};

const CHECKPOINTS_SPEC: TableSpec = {
  name: CHECKPOINTS_TABLE,
  columns: [LEDGER_ID, ...CHECKPOINT_COLUMNS],
  orderBy: '(ledger_id, size, last_seq)',
};

const MIGRATIONS_SPEC: TableSpec = {
  name: MIGRATIONS_TABLE,
  columns: [['version', 'UInt32'], ['name', 'String'], ['checksum', 'String'], ['applied_at', "DateTime('UTC')"]],
  orderBy: 'version',
};

function columnList(spec: TableSpec): string {
  return spec.columns.map(([n, t]) => `    ${sqlIdent(n)} ${t}`).join(',\n');
}

function createTable(spec: TableSpec, opts: { name?: string; onCluster?: string; engine: string }): string {
  const name = opts.name ?? spec.name;
  return [
    `CREATE TABLE IF NOT EXISTS ${sqlIdent(name)}${opts.onCluster ? ` ON CLUSTER ${sqlIdent(opts.onCluster)}` : ''}`,
    `(\n${columnList(spec)}\n)`,
    `ENGINE = ${opts.engine}`,
    ...(spec.partitionBy ? [`PARTITION BY ${spec.partitionBy}`] : []),
    `ORDER BY ${spec.orderBy}`,
  ].join('\n');
}

const lineageSelectV2 = (from: string): string =>
  `SELECT assumeNotNull(correlation_id) AS correlation_id, queue, ts, seq\nFROM ${sqlIdent(from)}\nWHERE correlation_id IS NOT NULL`;
const lineageSelect = (from: string): string =>
  `SELECT assumeNotNull(correlation_id) AS correlation_id, ledger_id, queue, ts, seq\nFROM ${sqlIdent(from)}\nWHERE correlation_id IS NOT NULL`;

/** Where a table has a ledger_id column already (the guard of the rebuild migrations). */
const hasLedgerId = (table: string): string =>
  `SELECT count() AS done FROM system.columns WHERE database = currentDatabase() AND table = '${table}' AND name = '${LEDGER_ID_COLUMN}'`;

/**
 * Rebuilds a single-ledger table in its fleet form: ORDER BY cannot gain a leading column in place, so
 * a new table is filled from the old one (every old row gets LEGACY_LEDGER_ID) and the two are swapped
 * by one RENAME. The old table stays as `<name>_pre_fleet` (drop it once the fleet form is checked).
 * Re-runnable up to the RENAME (the staging table is dropped and refilled); after it, the migration's
 * `appliedIf` guard (the table has ledger_id) skips it.
 */
function rebuildWithLedgerId(spec: TableSpec, copyColumns: readonly string[]): string[] {
  const next = `${spec.name}_next`;
  const cols = copyColumns.map(sqlIdent).join(', ');
  return [
    `DROP TABLE IF EXISTS ${sqlIdent(next)}`,
    createTable(spec, { name: next, engine: 'MergeTree()' }),
    `INSERT INTO ${sqlIdent(next)} (${LEDGER_ID_COLUMN}, ${cols})\nSELECT '${LEGACY_LEDGER_ID}', ${cols}\nFROM ${sqlIdent(spec.name)}`,
    `RENAME TABLE ${sqlIdent(spec.name)} TO ${sqlIdent(`${spec.name}_pre_fleet`)}, ${sqlIdent(next)} TO ${sqlIdent(spec.name)}`,
  ];
}

/** The lineage view over the fleet-form ledger (migration 6, and a new database). */
const LINEAGE_VIEW_DDL = `CREATE MATERIALIZED VIEW IF NOT EXISTS ${LINEAGE_VIEW} TO ${LINEAGE_TABLE} AS\n${lineageSelect(LEDGER_TABLE)}`;

/** One insert that records the given migrations as applied (a new database, the cluster form). */
const recordMigrations = (applied: readonly Migration[]): string =>
  `INSERT INTO ${MIGRATIONS_TABLE} (version, name, checksum, applied_at) VALUES\n` +
  applied.map((m) => sql`(${m.version}, ${m.name}, ${checksum(m)}, now())`).join(',\n');

const CODEC_STATEMENTS: readonly string[] = [
  `ALTER TABLE ${LEDGER_TABLE} MODIFY COLUMN input String CODEC(ZSTD(3))`,
  `ALTER TABLE ${LEDGER_TABLE} MODIFY COLUMN attrs String CODEC(ZSTD(3))`,
];

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'ledger table',
    statements: [createTable(LEDGER_SPEC_V1, { engine: 'MergeTree()' })],
  },
  {
    version: 2,
    name: 'lineage index by correlation id',
    statements: [
      createTable(LINEAGE_SPEC_V2, { engine: 'MergeTree()' }),
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${LINEAGE_VIEW} TO ${LINEAGE_TABLE} AS\n${lineageSelectV2(LEDGER_TABLE)}`,
    ],
  },
  {
    version: 3,
    name: 'checkpoints table',
    statements: [createTable(CHECKPOINTS_SPEC_V3, { engine: 'MergeTree()' })],
  },
  {
    version: 4,
    name: 'zstd for input and attrs',
    requires: 'codecs',
    statements: CODEC_STATEMENTS,
  },
  {
    version: 5,
    name: 'ledger_id in warden_ledger and its key (existing rows: ledger legacy)',
    appliedIf: hasLedgerId(LEDGER_TABLE),
    dropIfEmpty: [`${LEDGER_TABLE}_pre_fleet`],
    statements: [
      // The view feeds the old lineage table; migration 6 rebuilds both from the new table.
      `DROP TABLE IF EXISTS ${LINEAGE_VIEW}`,
      ...rebuildWithLedgerId(LEDGER_SPEC, LEDGER_COLUMNS.map(([n]) => n).filter((n) => n !== 'duration_ms')),
    ],
  },
  {
    version: 6,
    name: 'lineage index with ledger_id',
    // Derived data: dropped and rebuilt from warden_ledger, so every step re-runs safely.
    statements: [
      `DROP TABLE IF EXISTS ${LINEAGE_VIEW}`,
      `DROP TABLE IF EXISTS ${LINEAGE_TABLE}`,
      createTable(LINEAGE_SPEC, { engine: 'MergeTree()' }),
      `INSERT INTO ${LINEAGE_TABLE} (correlation_id, ledger_id, queue, ts, seq)\n${lineageSelect(LEDGER_TABLE)}`,
      LINEAGE_VIEW_DDL,
    ],
  },
  {
    version: 7,
    name: 'ledger_id in warden_checkpoints and its key (existing rows: ledger legacy)',
    appliedIf: hasLedgerId(CHECKPOINTS_TABLE),
    dropIfEmpty: [`${CHECKPOINTS_TABLE}_pre_fleet`],
    statements: rebuildWithLedgerId(CHECKPOINTS_SPEC, CHECKPOINT_COLUMNS.map(([n]) => n)),
  },
  {
    version: 8,
    name: 'zstd for input and attrs (the rebuilt ledger table)',
    requires: 'codecs',
    statements: CODEC_STATEMENTS,
  },
];

export const MIGRATIONS_DDL = createTable(MIGRATIONS_SPEC, { engine: 'MergeTree()' });

export function checksum(m: Migration): string {
  const text = m.statements.join('\n;\n') + (m.appliedIf ? `\n;\n-- applied if\n${m.appliedIf}` : '');
  return createHash('sha256').update(text).digest('hex');
}

/** `18.16.1` -> [18, 16]; codecs arrived in 19.1. */
export function capabilitiesOf(version: string): EngineCapabilities {
  const [major = 0, minor = 0] = version.split('.').map((x) => Number.parseInt(x, 10));
  return { version, codecs: major > 19 || (major === 19 && minor >= 1) };
}

/** The minimal surface migrate() needs, so it runs on either store. */
export interface SqlRunner {
  exec(sql: string): Promise<void>;
  query<T = Record<string, unknown>>(sql: string): Promise<T[]>;
}

export interface MigrateResult {
  applied: number[];
  skipped: number[];
  capabilities: EngineCapabilities;
}

/**
 * Applies the migrations not yet recorded, in version order. Re-running is a no-op. A recorded
 * migration whose SQL has changed since is refused (MigrationError): schema changes get a new version.
 */
export async function migrate(db: SqlRunner, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrateResult> {
  await db.exec(MIGRATIONS_DDL);
  const [{ v }] = await db.query<{ v: string }>('SELECT version() AS v');
  const capabilities = capabilitiesOf(v);
  const rows = await db.query<{ version: number | string; checksum: string }>(
    `SELECT version, checksum FROM ${MIGRATIONS_TABLE}`,
  );
  if (rows.length === 0 && migrations === MIGRATIONS && (await isFresh(db))) return migrateFresh(db, capabilities);
  const done = new Map<number, string>();
  for (const r of rows) done.set(Number(r.version), r.checksum);
  const result: MigrateResult = { applied: [], skipped: [], capabilities };
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    const sum = checksum(m);
    const recorded = done.get(m.version);
    if (recorded !== undefined) {
      if (recorded !== sum) {
        throw new MigrationError(
          m.version,
          `migration ${m.version} (${m.name}) was applied with different SQL than this version of Warden has ` +
            `(checksum ${recorded.slice(0, 12)} vs ${sum.slice(0, 12)}); a schema change needs a new migration version`,
        );
      }
      continue;
    }
    if (m.requires && !capabilities[m.requires]) {
      result.skipped.push(m.version);
      continue;
    }
    const already = m.appliedIf ? Number((await db.query<{ done: string | number }>(m.appliedIf))[0]?.done ?? 0) !== 0 : false;
    for (const statement of already ? [] : m.statements) {
      try {
        await db.exec(statement);
      } catch (err) {
        if (!(err instanceof StoreQueryError)) throw err;
        throw new MigrationError(m.version, `migration ${m.version} (${m.name}) failed: ${err.message}`, { cause: err });
      }
    }
    for (const table of already ? [] : m.dropIfEmpty ?? []) {
      const exists = await db.query<{ n: string }>(sql`SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = ${table}`);
      if (Number(exists[0]?.n ?? 0) === 0) continue;
      const [{ n }] = await db.query<{ n: string }>(`SELECT count() AS n FROM ${sqlIdent(table)}`);
      if (Number(n) === 0) await db.exec(`DROP TABLE IF EXISTS ${sqlIdent(table)}`);
    }
    await db.exec(
      sql`INSERT INTO ${ident(MIGRATIONS_TABLE)} (version, name, checksum, applied_at) VALUES (${m.version}, ${m.name}, ${sum}, now())`,
    );
    result.applied.push(m.version);
  }
  return result;
}

/**
 * A database with no migration recorded and no ledger table, or one already in its final form (a
 * sidecar beside this one is creating it right now). Every sidecar of a fleet may start at once on
 * a new database: stepping through the migrations there ran the rebuild of migration 5 (DROP the
 * staging table, RENAME) in several processes at once, which measured three concurrent first starts
 * into a database with no `warden_ledger` at all, and a retry could never repair it.
 */
async function isFresh(db: SqlRunner): Promise<boolean> {
  const [{ n }] = await db.query<{ n: string | number }>(sql`SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = ${LEDGER_TABLE}`);
  if (Number(n) === 0) return true;
  return Number((await db.query<{ done: string | number }>(hasLedgerId(LEDGER_TABLE)))[0]?.done ?? 0) !== 0;
}

/**
 * A new database gets the end state of every migration directly, as the cluster form does: only
 * CREATE ... IF NOT EXISTS and the codec ALTERs, no DROP and no RENAME, so any number of sidecars can
 * run it at once (a statement that loses a race to an identical one fails harmlessly and the
 * shipper's retry finds everything there). Every migration is then recorded in one insert: a sidecar
 * starting later sees all of them or none (and then creates nothing new). The end state equals the
 * step-by-step one (test/ledger/store/migrate-fresh.test.ts compares them column by column).
 */
async function migrateFresh(db: SqlRunner, capabilities: EngineCapabilities): Promise<MigrateResult> {
  const statements = [
    createTable(LEDGER_SPEC, { engine: 'MergeTree()' }),
    createTable(LINEAGE_SPEC, { engine: 'MergeTree()' }),
    LINEAGE_VIEW_DDL,
    createTable(CHECKPOINTS_SPEC, { engine: 'MergeTree()' }),
    ...(capabilities.codecs ? CODEC_STATEMENTS : []),
  ];
  const last = MIGRATIONS[MIGRATIONS.length - 1];
  for (const statement of statements) {
    try {
      await db.exec(statement);
    } catch (err) {
      if (!(err instanceof StoreQueryError)) throw err;
      throw new MigrationError(last.version, `creating the ledger schema in a new database failed: ${err.message}`, { cause: err });
    }
  }
  const applied = MIGRATIONS.filter((m) => !m.requires || capabilities[m.requires]);
  await db.exec(recordMigrations(applied));
  return { applied: applied.map((m) => m.version), skipped: MIGRATIONS.filter((m) => !applied.includes(m)).map((m) => m.version), capabilities };
}

// ---------------------------------------------------------------------------------------------------
// Cluster form

export interface ClusterSchemaOptions {
  /** ZooKeeper path prefix for the replicated tables; `{shard}` and `{replica}` are server macros. */
  zooPrefix?: string;
  /** Database the Distributed tables point at; `currentDatabase()` unless given. */
  database?: string;
}

export interface ClusterStatement {
  table: string;
  sql: string;
}

/**
 * The same schema for a cluster, as DDL to run once on any node (ON CLUSTER does the rest):
 * - `<table>_local`: ReplicatedMergeTree with the single-node columns, partitioning and ordering;
 * - `<table>`: a Distributed table over the `_local` tables, so every query and insert keeps the
 *   single-node table names.
 * The ledger is sharded by correlation ID (event ID when there is none), so one correlation's records
 * live on one shard and each shard's `warden_lineage` (replicated, not distributed) indexes exactly
 * the ledger rows on that shard: the lineage query text is the same as on one node. Copies of one
 * event in several ledgers (same event_id, same correlation ID) land on one shard too, so "each event
 * once" (uniqExact, LIMIT 1 BY event_id) holds across shards. Every sidecar's ledger_id leads each
 * key, as on one node. The last statement records every migration as applied (see it).
 * Run for real in test/e2e/fleet-cluster.test.ts: two ClickHouse 18.16 shards and a ZooKeeper on loopback.
 */
export function clusterSchema(cluster: string, options: ClusterSchemaOptions = {}): ClusterStatement[] {
  const zoo = options.zooPrefix ?? '/clickhouse/tables/{shard}/warden';
  const db = options.database ? `'${options.database.replace(/[\\']/g, (c) => `\\${c}`)}'` : 'currentDatabase()';
  const c = sqlIdent(cluster);
  const replicated = (table: string) => `ReplicatedMergeTree('${zoo}/${table}', '{replica}')`;
  const distributed = (spec: TableSpec, shardKey: string): ClusterStatement[] => [
    { table: `${spec.name}_local`, sql: createTable(spec, { name: `${spec.name}_local`, onCluster: cluster, engine: replicated(`${spec.name}_local`) }) },
    {
      table: spec.name,
      sql:
        `CREATE TABLE IF NOT EXISTS ${sqlIdent(spec.name)} ON CLUSTER ${c} AS ${sqlIdent(`${spec.name}_local`)}\n` +
        `ENGINE = Distributed(${c}, ${db}, ${sqlIdent(`${spec.name}_local`)}, ${shardKey})`,
    },
  ];
  return [
    ...distributed(MIGRATIONS_SPEC, 'version'),
    ...distributed(LEDGER_SPEC, 'cityHash64(ifNull(correlation_id, event_id))'),
    { table: LINEAGE_TABLE, sql: createTable(LINEAGE_SPEC, { onCluster: cluster, engine: replicated(LINEAGE_TABLE) }) },
    {
      table: LINEAGE_VIEW,
      sql: `CREATE MATERIALIZED VIEW IF NOT EXISTS ${LINEAGE_VIEW} ON CLUSTER ${c} TO ${LINEAGE_TABLE} AS\n${lineageSelect(`${LEDGER_TABLE}_local`)}`,
    },
    ...distributed(CHECKPOINTS_SPEC, 'size'),
    {
      // Every migration counts as applied: the sidecars' own migrate() then changes nothing on the
      // cluster (it would otherwise rebuild tables that are Distributed here). Codec migrations too:
      // on a cluster, per-column codecs are the operator's choice (ALTER ... ON CLUSTER on the _local tables).
      table: MIGRATIONS_TABLE,
      sql: recordMigrations(MIGRATIONS),
    },
  ];
}
