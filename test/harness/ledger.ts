/** Shared helpers for the ledger tests: real temp directories and realistic (~400-600 byte) events. */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeEvent, type EventInit, type WardenEvent } from '../../core/event.js';
import { Spool, type LedgerRecord, type SpoolOptions } from '../../ledger/index.js';

export async function tempDir(): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), 'warden-ledger-'));
}

export async function removeDir(dir: string): Promise<void> {
  await fs.rm(dir, { recursive: true, force: true });
}

let n = 0;
export function event(init: Partial<EventInit> = {}): WardenEvent {
  n++;
  return makeEvent({
    kind: 'job.completed',
    source: 'bullmq',
    ts: 1_714_564_800_000 + n,
    correlation_id: `wc_test_${n % 7}`,
    queue: 'emails',
    job_id: `job-${n}`,
    job_name: 'send-welcome',
    attempt: 1,
    duration_ms: 12.5,
    model: 'gpt-4o',
    model_version: '2024-08-06',
    input: { to: 'user@example.com', template: 'welcome', vars: { name: 'Zoë', n } },
    attrs: { tenant: 'acme', region: 'eu-west-1' },
    ...init,
  } as EventInit);
}

export function events(count: number, init: Partial<EventInit> = {}): WardenEvent[] {
  return Array.from({ length: count }, () => event(init));
}

/** A ledger of `count` records written by a real spool, appended in `chunk`-sized calls. */
export async function buildLedger(dir: string, count: number, opts: Partial<SpoolOptions> = {}, chunk = 5): Promise<LedgerRecord[]> {
  const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0, ...opts });
  const out: LedgerRecord[] = [];
  for (let i = 0; i < count; i += chunk) out.push(...(await spool.append(events(Math.min(chunk, count - i)))));
  await spool.close();
  return out;
}

export async function readAll(dir: string, fromSeq?: number): Promise<LedgerRecord[]> {
  const out: LedgerRecord[] = [];
  for await (const r of Spool.read(dir, fromSeq === undefined ? {} : { fromSeq })) out.push(r);
  return out;
}

export async function segmentFiles(dir: string): Promise<string[]> {
  const names = (await fs.readdir(path.join(dir, 'ledger'))).filter((f) => /^seg-\d{16}\.jsonl$/.test(f)).sort();
  return names.map((f) => path.join(dir, 'ledger', f));
}

/** Lines of a segment file, each with its trailing newline. */
export async function segmentLines(file: string): Promise<string[]> {
  const text = await fs.readFile(file, 'utf8');
  return text.split(/(?<=\n)/).filter((l) => l.length > 0);
}

/** Where a seq lives: its file, its 0-based line index and the line. */
export async function locate(dir: string, seq: number): Promise<{ file: string; index: number; line: string }> {
  for (const file of await segmentFiles(dir)) {
    const lines = await segmentLines(file);
    const index = lines.findIndex((l) => JSON.parse(l).seq === seq);
    if (index >= 0) return { file, index, line: lines[index] };
  }
  throw new Error(`seq ${seq} not found`);
}
