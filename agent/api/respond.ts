/** Writing answers: JSON, ledger records streamed with backpressure, and query rows in the asked-for format. */
import type { ServerResponse } from 'node:http';
import type { LedgerRecord } from '../../ledger/index.js';
import { formatRows, RecordWriter } from '../../ledger/compliance/format.js';
import { ApiError } from './errors.js';

export function sendJson(res: ServerResponse, status: number, doc: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(doc)}\n`);
}

/** Streams records as JSON lines (default), a JSON array, or CSV (the one formatter), minding backpressure. */
export async function streamRecords(res: ServerResponse, records: AsyncIterable<LedgerRecord>, format: 'jsonl' | 'json' | 'csv'): Promise<number> {
  const type = format === 'csv' ? 'text/csv; charset=utf-8' : format === 'json' ? 'application/json' : 'application/x-ndjson';
  let pending = '';
  const writer = new RecordWriter(format, (s) => { pending += s; }, { csvHeaderWhenEmpty: true });
  // The status goes out with the first bytes, so an error before the first record still gets its own status.
  const flush = async () => {
    if (!res.headersSent) res.writeHead(200, { 'content-type': type });
    const s = pending;
    pending = '';
    if (s && !res.write(s)) await new Promise((r) => res.once('drain', r));
  };
  let n = 0;
  for await (const rec of records) {
    writer.write(rec);
    await flush();
    n++;
  }
  writer.end();
  await flush();
  res.end();
  return n;
}

/** Query rows as a JSON array (default), JSON lines or CSV with the query's own columns. */
export function sendRows(res: ServerResponse, rows: object[], columns: readonly string[], url: URL): number {
  const f = url.searchParams.get('format') ?? 'json';
  if (f !== 'json' && f !== 'jsonl' && f !== 'csv') throw new ApiError(400, `format must be json, jsonl or csv, not ${JSON.stringify(f)}`);
  const type = f === 'csv' ? 'text/csv; charset=utf-8' : f === 'jsonl' ? 'application/x-ndjson' : 'application/json';
  res.writeHead(200, { 'content-type': type }).end(formatRows(f, columns, rows));
  return rows.length;
}

export async function* flatten<T>(pages: AsyncIterable<T[]>): AsyncIterable<T> {
  for await (const page of pages) yield* page;
}

export async function* toAsync<T>(items: T[]): AsyncIterable<T> {
  yield* items;
}
