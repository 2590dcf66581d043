/** Shared helpers for the ClickHouse store tests: record chains, hostile values, mutation waits. */
import { EVENT_FIELDS, makeEvent, type EventInit, type WardenEvent } from '../../../core/event.js';
import { TS_MAX_MS } from '../../../ledger/store/rows.js';
import { rng } from '../../harness/random.js';
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


function randomString(rand: () => number): string {
  const len = Math.floor(rand() * 12);
  let s = '';
  for (let i = 0; i < len; i++) {
    const pick = rand();
    if (pick < 0.15) s += String.fromCharCode(Math.floor(rand() * 32)); // C0 controls, NUL included
    else if (pick < 0.25) s += String.fromCharCode(0xd800 + Math.floor(rand() * 0x800)); // lone surrogate halves
    else if (pick < 0.35) s += String.fromCodePoint(0x10000 + Math.floor(rand() * 0xfffff)); // astral
    else if (pick < 0.45) s += "'\\\"`{}%$\n"[Math.floor(rand() * 9)];
    else if (pick < 0.6) s += String.fromCharCode(0x80 + Math.floor(rand() * 0xd700));
    else s += String.fromCharCode(32 + Math.floor(rand() * 95));
  }
  return s;
}

function randomNumber(rand: () => number): number {
  const special = [0, -0, 0.1, 1e21, -1e21, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, Number.MAX_SAFE_INTEGER, 2 ** 53 + 2, -1, 1.5, 33 / 7];
  if (rand() < 0.4) return special[Math.floor(rand() * special.length)];
  const v = new DataView(new ArrayBuffer(8));
  v.setUint32(0, Math.floor(rand() * 2 ** 32));
  v.setUint32(4, Math.floor(rand() * 2 ** 32));
  const x = v.getFloat64(0);
  return Number.isFinite(x) ? x : rand() * 1e6;
}

function randomJson(rand: () => number, depth = 0): unknown {
  const pick = rand();
  if (pick < 0.15) return null;
  if (pick < 0.3) return rand() < 0.5;
  if (pick < 0.5) return randomNumber(rand);
  if (pick < 0.7 || depth > 3) return randomString(rand);
  if (pick < 0.85) return Array.from({ length: Math.floor(rand() * 4) }, () => randomJson(rand, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(rand() * 4); i > 0; i--) o[randomString(rand)] = randomJson(rand, depth + 1);
  return o;
}

/** Any field may be absent, null, of its type, or of another type; plus stray fields. */
export function randomEvent(rand: () => number): WardenEvent {
  const ev = event() as Record<string, unknown>;
  for (const f of EVENT_FIELDS) {
    const pick = rand();
    if (pick < 0.1) delete ev[f];
    else if (pick < 0.25) ev[f] = null;
    else if (pick < 0.4) ev[f] = randomJson(rand);
    else if (pick < 0.55) {
      if (f === 'ts') ev[f] = Math.floor(rand() * TS_MAX_MS * 1.01);
      else if (f === 'attempt') ev[f] = Math.floor(rand() * 10);
      else if (f === 'duration_ms') ev[f] = randomNumber(rand);
      else ev[f] = randomString(rand);
    }
  }
  if (rand() < 0.2) {
    Object.defineProperty(ev, rand() < 0.5 ? '__proto__' : randomString(rand), {
      value: randomJson(rand), enumerable: true, writable: true, configurable: true,
    });
  }
  return ev as WardenEvent;
}
