/** Ledger records as CSV (RFC 4180: quoted where needed, CRLF line ends), for the CLI, the API and exports. */
import type { LedgerRecord } from '../spool/record.js';

const CSV_COLUMNS = ['seq', 'hash', 'event_id', 'ts', 'kind', 'source', 'correlation_id', 'trace_id', 'span_id', 'queue', 'job_id', 'job_name', 'workflow_id', 'run_id', 'activity_type', 'attempt', 'duration_ms', 'input_digest', 'model', 'model_version', 'policy', 'policy_version', 'actor', 'decision', 'reason', 'error', 'input', 'attrs'] as const;

export function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvHeader(): string {
  return `${CSV_COLUMNS.join(',')}\r\n`;
}

export function csvRow(rec: LedgerRecord): string {
  const ev = rec.event as Record<string, unknown>;
  return `${CSV_COLUMNS.map((c) => csvCell(c === 'seq' ? rec.seq : c === 'hash' ? rec.hash : ev[c])).join(',')}\r\n`;
}
