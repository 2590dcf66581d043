/** Output formats of the ledger commands: a readable table, JSON lines, or CSV (RFC 4180 quoting). */
import type { WardenEvent } from '../core/event.js';
import type { LedgerRecord } from '../ledger/spool/record.js';
import { csvHeader, csvRow } from '../ledger/compliance/csv.js';

export { csvHeader, csvRow };

export type OutputFormat = 'table' | 'jsonl' | 'csv';

const TABLE_COLUMNS = ['seq', 'time', 'kind', 'queue', 'job_id', 'attempt', 'correlation_id', 'model_version', 'detail'] as const;
function detail(ev: WardenEvent): string {
  const parts: string[] = [];
  if (ev.duration_ms !== null) parts.push(`${ev.duration_ms}ms`);
  if (ev.error) parts.push(`error: ${ev.error}`);
  if (ev.reason) parts.push(ev.reason);
  if (ev.attrs.reconciled) parts.push('reconciled');
  return parts.join(' ').replace(/\s+/g, ' ').slice(0, 80);
}

export class RecordWriter {
  private rows: string[][] = [];
  private wroteHeader = false;

  constructor(private readonly format: OutputFormat, private readonly out: (s: string) => void) {}

  write(rec: LedgerRecord): void {
    const ev = rec.event;
    if (this.format === 'jsonl') {
      this.out(`${JSON.stringify({ seq: rec.seq, hash: rec.hash, ...ev })}\n`);
    } else if (this.format === 'csv') {
      if (!this.wroteHeader) { this.out(csvHeader()); this.wroteHeader = true; }
      this.out(csvRow(rec));
    } else {
      this.rows.push([String(rec.seq), new Date(ev.ts).toISOString(), ev.kind, ev.queue ?? ev.workflow_id ?? '', ev.job_id ?? ev.activity_type ?? '', ev.attempt === null ? '' : String(ev.attempt), ev.correlation_id ?? '', ev.model_version ?? '', detail(ev)]);
    }
  }

  /** Tables are aligned, so they are printed once every row is known. */
  end(): void {
    if (this.format !== 'table') return;
    const rows = [[...TABLE_COLUMNS] as string[], ...this.rows];
    const widths = TABLE_COLUMNS.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows) this.out(`${r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()}\n`);
    if (this.rows.length === 0) this.out('(no records)\n');
  }
}
