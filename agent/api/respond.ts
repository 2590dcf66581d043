/** Writing answers: JSON, ledger records streamed with backpressure, and query rows in the asked-for format. */
import type { ServerResponse } from 'node:http';
import type { LedgerRecord } from '../../ledger/index.js';
import { csvCell, csvHeader, csvRow } from '../../ledger/compliance/csv.js';
import { ApiError } from './errors.js';

export function sendJson(res: ServerResponse, status: number, doc: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(doc)}\n`);
}

/** Streams records as JSON lines (default), a JSON array, or CSV, minding backpressure. */
export async function streamRecords(res: ServerResponse, records: AsyncIterable<LedgerRecord>, format: 'jsonl' | 'json' | 'csv'): Promise<number> {
  const type = format === 'csv' ? 'text/csv; charset=utf-8' : format === 'json' ? 'application/json' : 'application/x-ndjson';
  let n = 0;
  const write = async (s: string) => { if (!res.write(s)) await new Promise((r) => res.once('drain', r)); };
  for await (const rec of records) {
    if (n === 0) {
      res.writeHead(200, { 'content-type': type });
      if (format === 'csv') await write(csvHeader());
      if (format === 'json') await write('[');
    }
    const line = format === 'csv' ? csvRow(rec) : JSON.stringify({ seq: rec.seq, hash: rec.hash, ...rec.event });
    await write(format === 'json' ? `${n ? ',' : ''}${line}` : format === 'csv' ? line : `${line}\n`);
    n++;
  }
  if (n === 0) {
    res.writeHead(200, { 'content-type': type });
    if (format === 'csv') await write(csvHeader());
    if (format === 'json') await write('[');
  }
  res.end(format === 'json' ? ']\n' : '');
  return n;
}

/** Query rows as a JSON array (default), JSON lines or CSV with the query's own columns. */
export function sendRows(res: ServerResponse, rows: object[], columns: readonly string[], url: URL): number {
  const f = url.searchParams.get('format') ?? 'json';
  if (f === 'csv') {
    const lines = [columns.join(','), ...rows.map((r) => columns.map((c) => csvCell((r as Record<string, unknown>)[c])).join(','))];
    res.writeHead(200, { 'content-type': 'text/csv; charset=utf-8' }).end(`${lines.join('\r\n')}\r\n`);
  } else if (f === 'jsonl') {
    res.writeHead(200, { 'content-type': 'application/x-ndjson' }).end(rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
  } else if (f === 'json') {
    sendJson(res, 200, rows);
  } else {
    throw new ApiError(400, `format must be json, jsonl or csv, not ${JSON.stringify(f)}`);
  }
  return rows.length;
}

export async function* flatten<T>(pages: AsyncIterable<T[]>): AsyncIterable<T> {
  for await (const page of pages) yield* page;
}

export async function* toAsync<T>(items: T[]): AsyncIterable<T> {
  yield* items;
}
