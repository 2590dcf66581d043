/**
 * The ledger's common reads as SQL text, for either store. Each selects LEDGER_SELECT, so every row
 * goes straight into rowToRecord.
 */
import { LEDGER_SELECT, LEDGER_TABLE } from './rows.js';
import { LINEAGE_TABLE } from './schema.js';
import { ident, sql, sqlNumber } from './sql.js';

/**
 * One correlation ID's records in seq order (then ledger: seqs are per ledger). The narrow
 * warden_lineage table finds their (ledger_id, queue, ts, seq) keys from its own primary index, and the
 * tuple IN is then answered from the ledger's primary index (ledger_id, queue, ts, seq): only the
 * granules holding those rows are read. The second condition keeps the answer exact if a ledger row
 * was altered after the view indexed it. Every row, of every ledger: compliance/queries.ts's lineage
 * is the fleet answer, each event once.
 */
export function lineageSql(correlationId: string): string {
  return (
    `SELECT ${LEDGER_SELECT}\nFROM ${LEDGER_TABLE}\n` +
    sql`WHERE (ledger_id, queue, ts, seq) IN (SELECT ledger_id, queue, ts, seq FROM ${ident(LINEAGE_TABLE)} WHERE correlation_id = ${correlationId})\n` +
    sql`  AND correlation_id = ${correlationId}\nORDER BY seq, ledger_id`
  );
}

/** One queue's records with `fromMs <= ts_ms < toMs`, in time order; served by the primary index. */
export function queueRangeSql(queue: string, fromMs: number, toMs: number): string {
  const fromS = Math.floor(fromMs / 1000);
  const toS = Math.floor(Math.max(toMs - 1, 0) / 1000);
  return (
    `SELECT ${LEDGER_SELECT}\nFROM ${LEDGER_TABLE}\n` +
    sql`WHERE queue = ${queue} AND ts >= toDateTime(${fromS}) AND ts <= toDateTime(${toS})\n` +
    `  AND ts_ms >= ${sqlNumber(fromMs)} AND ts_ms < ${sqlNumber(toMs)}\nORDER BY ts_ms, seq, ledger_id`
  );
}

/** Records with `fromSeq <= seq <= toSeq` in seq order (verify reads the chain in such pages). */
export function seqRangeSql(fromSeq: number, toSeq: number): string {
  return `SELECT ${LEDGER_SELECT}\nFROM ${LEDGER_TABLE}\nWHERE seq >= ${sqlNumber(fromSeq)} AND seq <= ${sqlNumber(toSeq)}\nORDER BY seq`;
}
