/**
 * The one formatter of Warden's output: ledger records and compliance query rows as an aligned table,
 * a JSON array, JSON lines or CSV (RFC 4180: quoted where needed, CRLF line ends, a header first), and
 * the export's progress line. Pure text: the caller (the CLI, the HTTP API, the export) decides where
 * it goes. It lives in ledger/ because ledger/ may not import agent/, and both use it.
 */
import { isoTime } from '../../core/time.js';
import type { WardenEvent } from '../../core/event.js';
import type { LedgerRecord } from '../spool/record.js';

/** Every output format. The CLI offers table, jsonl and csv; json (one array) is for the HTTP API. */
export type OutputFormat = 'table' | 'json' | 'jsonl' | 'csv';
/** The formats of the compliance query rows. */
export type RowFormat = OutputFormat;

// ---------------------------------------------------------------------------------------------------
// Shared pieces

/** A CSV cell: objects as JSON, null/undefined empty, quoted when it holds `"`, `,`, CR or LF. */
export function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One CSV line (CRLF-terminated) of the cells. */
const csvLine = (cells: readonly unknown[]): string => `${cells.map(csvCell).join(',')}\r\n`;

/** Rows of cells (the first is the header) aligned in columns two spaces apart; `empty` follows the header when there are no rows. */
function alignTable(cells: readonly (readonly string[])[], empty: string): string {
  const widths = cells[0].map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  const lines = cells.map((row) => `${row.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()}\n`);
  if (cells.length === 1) lines.push(`${empty}\n`);
  return lines.join('');
}

// ---------------------------------------------------------------------------------------------------
// Ledger records (`ledger query|lineage|export`, the API's event streams)

const CSV_COLUMNS = ['seq', 'hash', 'event_id', 'ts', 'kind', 'source', 'correlation_id', 'trace_id', 'span_id', 'queue', 'job_id', 'job_name', 'workflow_id', 'run_id', 'activity_type', 'attempt', 'duration_ms', 'input_digest', 'model', 'model_version', 'policy', 'policy_version', 'actor', 'decision', 'reason', 'error', 'input', 'attrs'] as const;

/** The CSV header of ledger records. */
export function csvHeader(): string {
  return `${CSV_COLUMNS.join(',')}\r\n`;
}

/** One ledger record as a CSV line. */
export function csvRow(rec: LedgerRecord): string {
  const ev = rec.event as Record<string, unknown>;
  return csvLine(CSV_COLUMNS.map((c) => (c === 'seq' ? rec.seq : c === 'hash' ? rec.hash : ev[c])));
}

/** One ledger record as a JSON object: `{"seq", "hash", ...event}`. */
export function recordJson(rec: LedgerRecord): string {
  return JSON.stringify({ seq: rec.seq, hash: rec.hash, ...rec.event });
}

/** One record as a JSONL line (the format of `warden ledger query --format jsonl` and of the export). */
export function jsonlLine(rec: LedgerRecord): string {
  return `${recordJson(rec)}\n`;
}

const TABLE_COLUMNS = ['seq', 'time', 'kind', 'queue', 'job_id', 'attempt', 'correlation_id', 'model_version', 'detail'] as const;

function detail(ev: WardenEvent): string {
  const parts: string[] = [];
  if (ev.duration_ms !== null) parts.push(`${ev.duration_ms}ms`);
  if (ev.error) parts.push(`error: ${ev.error}`);
  if (ev.reason) parts.push(ev.reason);
  if (ev.attrs.reconciled) parts.push('reconciled');
  return parts.join(' ').replace(/\s+/g, ' ').slice(0, 80);
}

function tableCells(rec: LedgerRecord): string[] {
  const ev = rec.event;
  return [String(rec.seq), isoTime(ev.ts), ev.kind, ev.queue ?? ev.workflow_id ?? '', ev.job_id ?? ev.activity_type ?? '',
    ev.attempt === null ? '' : String(ev.attempt), ev.correlation_id ?? '', ev.model_version ?? '', detail(ev)];
}

/**
 * Ledger records in a format, one at a time: JSONL and CSV lines go out as they come (so a large
 * query streams); a table or a JSON array is complete only at `end()`.
 */
export class RecordWriter {
  private rows: string[][] = [];
  private count = 0;

  /** `csvHeaderWhenEmpty`: a CSV of no records is still its header line (the API's answer). */
  constructor(private readonly format: OutputFormat, private readonly out: (s: string) => void, private readonly opts: { csvHeaderWhenEmpty?: boolean } = {}) {}

  write(rec: LedgerRecord): void {
    if (this.format === 'jsonl') this.out(jsonlLine(rec));
    else if (this.format === 'csv') this.out(`${this.count === 0 ? csvHeader() : ''}${csvRow(rec)}`);
    else if (this.format === 'json') this.out(`${this.count === 0 ? '[' : ','}${recordJson(rec)}`);
    else this.rows.push(tableCells(rec));
    this.count += 1;
  }

  end(): void {
    if (this.format === 'json') this.out(this.count === 0 ? '[]\n' : ']\n');
    else if (this.format === 'csv' && this.count === 0 && this.opts.csvHeaderWhenEmpty) this.out(csvHeader());
    else if (this.format === 'table') this.out(alignTable([[...TABLE_COLUMNS], ...this.rows], '(no records)'));
  }
}

// ---------------------------------------------------------------------------------------------------
// Compliance query rows (`ledger approvals|versions|unapproved|decisions`, the API's compliance reports)

/** Columns holding epoch milliseconds: shown as ISO times in tables (JSON, JSONL and CSV keep the number). */
const TIME_COLUMNS = new Set(['ts_ms', 'required_at', 'completed_at', 'first_granted_at']);

/** A table cell: one line, control characters shown as escapes, capped, so hostile values cannot redraw the terminal. */
function tableCell(column: string, v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (TIME_COLUMNS.has(column) && typeof v === 'number') return isoTime(v);
  // eslint-disable-next-line no-control-regex
  const s = String(v).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * The rows in `format`, with `columns` in that order: JSONL (one object a line), a JSON array, CSV
 * (RFC 4180, CRLF, header) or an aligned table.
 */
export function formatRows(format: OutputFormat, columns: readonly string[], rows: readonly object[]): string {
  const get = (r: object, c: string): unknown => (r as Record<string, unknown>)[c];
  const pick = (r: object) => Object.fromEntries(columns.map((c) => [c, get(r, c)]));
  if (format === 'jsonl') return rows.map((r) => `${JSON.stringify(pick(r))}\n`).join('');
  if (format === 'json') return `${JSON.stringify(rows.map(pick))}\n`;
  if (format === 'csv') return csvLine(columns) + rows.map((r) => csvLine(columns.map((c) => get(r, c)))).join('');
  return alignTable([[...columns], ...rows.map((r) => columns.map((c) => tableCell(c, get(r, c))))], '(no rows)');
}

/** `[#####.....]  42%  1234 / 2900 events`: one line, for redrawing with `\r` on a terminal. */
export function progressBar(done: number, total: number, width = 30): string {
  const frac = total > 0 ? Math.min(done / total, 1) : 1;
  const filled = Math.round(frac * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(frac * 100)).padStart(3)}%  ${done} / ${total} events`;
}
