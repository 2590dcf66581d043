/** Shared helpers for the ClickHouse store tests: record chains, hostile values, mutation waits. */
import { makeEvent, type EventInit, type WardenEvent } from '../../../core/event.js';
import { GENESIS_HASH, recordHash, type LedgerRecord } from '../../../ledger/spool/record.js';
import type { LedgerStore } from '../../../ledger/store/index.js';

export const BASE_TS = 1_714_564_800_123;

let n = 0;
export function event(init: Partial<EventInit> = {}): WardenEvent {
  n++;
  return makeEvent({
    kind: 'job.completed',
    source: 'bullmq',
    ts: BASE_TS + n * 1000,
    correlation_id: `corr-${n % 5}`,
    trace_id: 'a'.repeat(32),
    span_id: 'b'.repeat(16),
    queue: 'emails',
    job_id: `job-${n}`,
    job_name: 'send-welcome',
    attempt: 1,
    duration_ms: 12.5,
    input_digest: 'c'.repeat(64),
    model: 'gpt-4o',
    model_version: '2024-08-06',
    input: { to: 'user@example.com', template: 'welcome', vars: { name: 'Zoë', n } },
    attrs: { tenant: 'acme', region: 'eu-west-1', n },
    ...init,
  } as EventInit);
}

/** Chains events into records starting after `prev`/`fromSeq` (hashes computed as the spool does). */
export function chain(events: readonly WardenEvent[], fromSeq = 1, prev = GENESIS_HASH): LedgerRecord[] {
  const out: LedgerRecord[] = [];
  let p = prev;
  let seq = fromSeq;
  for (const ev of events) {
    const hash = recordHash(p, seq, ev);
    out.push({ seq, prev: p, hash, event: ev });
    p = hash;
    seq++;
  }
  return out;
}

/** The hash a rebuilt record has (what verify recomputes). */
export const rebuiltHash = (r: LedgerRecord): string => recordHash(r.prev, r.seq, r.event);

/** Strings that try to break out of a literal, a line, a JSON row or UTF-8. */
export const HOSTILE: Record<string, string> = {
  quote: "it's",
  doubleQuote: 'say "hi"',
  backslashQuote: "\\'",
  trailingBackslash: 'end\\',
  injection: "x'; DROP TABLE warden_ledger; --",
  injection2: "') OR 1=1 --",
  nul: 'a\u0000b',
  newlines: 'line1\nline2\r\nline3\ttab',
  controls: Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join('') + '\u007f',
  unicode: 'Zoë — 漢字 — \u2028\u2029 — \ufeff — \ufffd',
  astral: '😀 𝄞 \u{10FFFF}',
  jsonish: '{"a":1}\n{"b":2}',
  formatClause: 'x FORMAT TabSeparated',
  percentBraces: '%s {x:String} ${y} ?',
  backslashes: '\\\\\\x00\\n\\0\\u0000',
  empty: '',
};

/** Waits until ClickHouse has finished every mutation of `table` (ALTER ... UPDATE is async on both engines). */
export async function waitForMutations(store: LedgerStore, table: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [{ n: pending }] = await store.query<{ n: string }>(
      `SELECT count() AS n FROM system.mutations WHERE database = currentDatabase() AND table = '${table}' AND is_done = 0`,
    );
    if (Number(pending) === 0) return;
    if (Date.now() > deadline) throw new Error(`mutations on ${table} still running after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
