/**
 * A new database gets the migrations' end state directly (schema.ts migrateFresh), so every sidecar
 * of a fleet can start at once on it. Before, three concurrent first starts stepped through migration
 * 5's rebuild (DROP the staging table, RENAME) together and left a database with no warden_ledger at
 * all, which no retry could repair. On the real server (ClickHouse 18.16).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MIGRATIONS, migrate, openStore, type LedgerStore } from '../../../ledger/store/index.js';
import { startClickHouse, type ClickHouseServer } from '../../harness/index.js';
import { removeDir, tempDir } from '../../harness/ledger.js';

let clickhouse: ClickHouseServer;
let dir: string;
const stores: LedgerStore[] = [];
beforeAll(async () => { [clickhouse, dir] = await Promise.all([startClickHouse(), tempDir()]); });
afterAll(async () => {
  await Promise.allSettled(stores.map((s) => s.close()));
  await clickhouse?.dispose();
  await removeDir(dir);
});

const open = async (database: string): Promise<LedgerStore> => {
  const s = await openStore({ url: clickhouse.url, dataDir: dir, database });
  stores.push(s);
  return s;
};

/** Every table's SHOW CREATE (database name taken out), by name. */
async function schemaOf(store: LedgerStore, database: string): Promise<Record<string, string>> {
  const tables = await store.query<{ name: string }>('SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name');
  const out: Record<string, string> = {};
  for (const { name } of tables) {
    const [{ statement }] = await store.query<{ statement: string }>(`SHOW CREATE TABLE ${name}`);
    out[name] = statement.split(`${database}.`).join('');
  }
  return out;
}

const versions = async (store: LedgerStore) =>
  [...new Set((await store.query<{ version: string | number }>('SELECT version FROM warden_migrations')).map((r) => Number(r.version)))].sort((a, b) => a - b);

it('three sidecars starting at once on a new database all end with the schema the migrations build one by one', async () => {
  const steps = await open('mig_steps');
  await steps.migrate(); // creates the database (and takes the new-database path) ...
  await steps.exec('DROP TABLE warden_ledger');
  for (const t of ['warden_lineage_mv', 'warden_lineage', 'warden_checkpoints', 'warden_migrations']) await steps.exec(`DROP TABLE ${t}`);
  const stepped = await migrate(steps, [...MIGRATIONS]); // ... then every migration in turn, as an upgraded deployment had them
  expect(stepped.applied.length).toBeGreaterThanOrEqual(6);
  await steps.exec('DROP TABLE IF EXISTS warden_ledger_pre_fleet');
  await steps.exec('DROP TABLE IF EXISTS warden_checkpoints_pre_fleet');
  const expected = await schemaOf(steps, 'mig_steps');
  expect(Object.keys(expected)).toEqual(['warden_checkpoints', 'warden_ledger', 'warden_lineage', 'warden_lineage_mv', 'warden_migrations']);

  const racers = await Promise.all([0, 1, 2].map(() => open('mig_race')));
  const first = await Promise.allSettled(racers.map((s) => s.migrate()));
  // A CREATE that loses a race to an identical one may fail; the shipper retries, and a retry succeeds.
  const second = await Promise.allSettled(racers.map((s, i) => (first[i].status === 'fulfilled' ? Promise.resolve() : s.migrate())));
  expect(second.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok'))).toEqual(['ok', 'ok', 'ok']);
  expect(await schemaOf(racers[0], 'mig_race')).toEqual(expected);
  expect(await versions(racers[0])).toEqual(await versions(steps));

  // A sidecar starting later finds every migration recorded and changes nothing.
  const late = await migrate(racers[1]);
  expect(late.applied).toEqual([]);
  expect(await schemaOf(racers[0], 'mig_race')).toEqual(expected);
});
