/**
 * Output of the compliance query rows (ledger/compliance.ts) as a table, JSON lines or CSV, and the
 * export's progress line. Pure text: the CLI decides where it goes.
 */
export type RowFormat = 'table' | 'jsonl' | 'csv';

/** Columns holding epoch milliseconds: shown as ISO times in tables (JSONL and CSV keep the number). */
const TIME_COLUMNS = new Set(['ts_ms', 'required_at', 'completed_at', 'first_granted_at']);

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** A table cell: one line, control characters shown as escapes, capped, so hostile values cannot redraw the terminal. */
function tableCell(column: string, v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (TIME_COLUMNS.has(column) && typeof v === 'number') return new Date(v).toISOString();
  // eslint-disable-next-line no-control-regex
  const s = String(v).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** The rows in `format`, with `columns` in that order: JSONL (one object a line), CSV (RFC 4180, CRLF, header) or an aligned table. */
export function formatRows(format: RowFormat, columns: readonly string[], rows: readonly object[]): string {
  const get = (r: object, c: string): unknown => (r as Record<string, unknown>)[c];
  if (format === 'jsonl') return rows.map((r) => `${JSON.stringify(Object.fromEntries(columns.map((c) => [c, get(r, c)])))}\n`).join('');
  if (format === 'csv') {
    return [columns.join(','), ...rows.map((r) => columns.map((c) => csvCell(get(r, c))).join(','))].map((l) => `${l}\r\n`).join('');
  }
  const cells = [[...columns], ...rows.map((r) => columns.map((c) => tableCell(c, get(r, c))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  const lines = cells.map((row) => `${row.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()}\n`);
  if (rows.length === 0) lines.push('(no rows)\n');
  return lines.join('');
}

/** `[#####.....]  42%  1234 / 2900 events`: one line, for redrawing with `\r` on a terminal. */
export function progressBar(done: number, total: number, width = 30): string {
  const frac = total > 0 ? Math.min(done / total, 1) : 1;
  const filled = Math.round(frac * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.floor(frac * 100)).padStart(3)}%  ${done} / ${total} events`;
}
