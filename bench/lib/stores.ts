/**
 * The ledger stores the scenarios measure: a private ClickHouse server (harness), and the embedded
 * engine (chdb). chdb binds one data directory per process, so every scenario in one bench process
 * uses the same directory and starts from empty tables.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EmbeddedStore } from '../../ledger/store/embedded.js';
import { CHECKPOINTS_TABLE, LEDGER_TABLE, LINEAGE_TABLE, LINEAGE_VIEW, MIGRATIONS_TABLE } from '../../ledger/store/schema.js';
import type { LedgerStore } from '../../ledger/store/store.js';

let chdbDir: string | null = null;

/** The embedded store on this process's bench directory, with empty, freshly migrated tables. */
export async function openEmbedded(): Promise<LedgerStore> {
  chdbDir ??= mkdtempSync(path.join(os.tmpdir(), 'warden-bench-chdb-'));
  const store = await EmbeddedStore.open({ path: chdbDir });
  await resetTables(store);
  return store;
}

/** Drops the ledger's tables (view first) and migrates again: an empty store. */
export async function resetTables(store: LedgerStore): Promise<void> {
  for (const t of [LINEAGE_VIEW, LINEAGE_TABLE, LEDGER_TABLE, CHECKPOINTS_TABLE, MIGRATIONS_TABLE]) await store.exec(`DROP TABLE IF EXISTS ${t}`);
  await store.migrate();
}
