/** The ledger's ClickHouse stores: the public surface. */
export { openStore, COMMON_SETTINGS, type LedgerStore, type StoreConfig } from './store.js';
export { ServerStore, type ServerStoreOptions } from './server.js';
export { EmbeddedStore, type EmbeddedStoreOptions } from './embedded.js';
export {
  MIGRATIONS, migrate, clusterSchema, capabilitiesOf, checksum,
  LEDGER_TABLE, LINEAGE_TABLE, LINEAGE_VIEW, CHECKPOINTS_TABLE, MIGRATIONS_TABLE,
  type Migration, type MigrateResult, type EngineCapabilities, type ClusterStatement, type ClusterSchemaOptions, type SqlRunner,
} from './schema.js';
export { recordToRow, rowToRecord, LEDGER_COLUMNS, LEDGER_COLUMN_NAMES, LEDGER_INSERT_COLUMNS, LEDGER_SELECT, TS_MAX_MS, dateTimeText, type LedgerRow } from './rows.js';
export {
  sql, sqlString, sqlNumber, sqlIdent, sqlValue, ident, rawSql, insertJsonEachRow, insertTabSeparated, isWellFormed, Ident, RawSql, type SqlValue,
} from './sql.js';
export { lineageSql, queueRangeSql, seqRangeSql } from './queries.js';
export {
  StoreError, StoreUnavailableError, StoreQueryError, StoreClosedError, MigrationError, UnrepresentableValueError, CorruptRowError,
} from './errors.js';
export {
  LEDGER_ID_COLUMN, LEGACY_LEDGER_ID, LEDGER_ID_FILE, LEDGER_ID_PATTERN, LedgerIdError, checkLedgerId, ledgerIdPath, readLedgerId, resolveLedgerId,
  type ResolvedLedgerId,
} from './ledger-id.js';
