/**
 * The ledger's common reads as SQL text, for either store. Each selects LEDGER_SELECT, so every row
 * goes straight into rowToRecord.
 */
import { LEDGER_SELECT, LEDGER_TABLE } from './rows.js';
import { LINEAGE_TABLE } from './schema.js';
import { ident, sql, sqlNumber } from './sql.js';

/**
 * One correlation ID's records in seq order. The narrow warden_lineage table finds their
 * (queue, ts, seq) keys from its own primary index, and the tuple IN is then answered from the
 * ledger's primary index (queue, ts, seq): only the granules holding those rows are read. The second
 * condition keeps the answer exact if a ledger row was altered after the view indexed it.
 */
export function lineageSql(correlationId: string): string {
  return (
    `SELECT ${LEDGER_SELECT}\nFROM ${LEDGER_TABLE}\n` +
    sql`WHERE (queue, ts, seq) IN (SELECT queue, ts, seq FROM ${ident(LINEAGE_TABLE)} WHERE correlation_id = ${correlationId})\n` +
    sql`  AND correlation_id = ${correlationId}\nORDER BY seq`
  );
}

/** One queue's records with `fromMs <= ts_ms < toMs`, in time order; served by the primary index. */
export function queueRangeSql(queue: string, fromMs: number, toMs: number): string {
  const fromS = Math.floor(fromMs / 1000);
  const toS = Math.floor(Math.max(toMs - 1, 0) / 1000);
  return (
    `SELECT ${LEDGER_SELECT}\nFROM ${LEDGER_TABLE}\n` +
    sql`WHERE queue = ${queue} AND ts >= toDateTime(${fromS}) AND ts <= toDateTime(${toS})\n` +
    `  AND ts_ms >= ${sqlNumber(fromMs)} AND ts_ms < ${sqlNumber(toMs)}\nORDER BY ts_ms, seq`
  );
}

/** Records with `fromSeq <= seq <= toSeq` in seq order (verify reads the chain in such pages). */
export function seqRangeSql(fromSeq: number, toSeq: number): string {
  return `SELECT ${LEDGER_SELECT}\nFROM ${LEDGER_TABLE}\nWHERE seq >= ${sqlNumber(fromSeq)} AND seq <= ${sqlNumber(toSeq)}\nORDER BY seq`;
}
