import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WardenEvent } from '../../core/event.js';
import {
  InvalidFilterError, LedgerNotFoundError, Spool, TimeArgError, lineage, parseTimeArg, queryLedger,
  type LedgerFilter, type LedgerRecord,
} from '../../ledger/index.js';
import { event, removeDir, tempDir } from '../harness/ledger.js';

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);
let dir: string;
let all: LedgerRecord[];

beforeAll(async () => {
  dir = await tempDir();
  const evs: WardenEvent[] = [];
  const kinds = ['job.added', 'job.started', 'job.attempt_failed', 'job.completed', 'policy.decision'] as const;
  for (let i = 0; i < 60; i++) {
    evs.push(event({
      kind: kinds[i % kinds.length],
      correlation_id: `wc_q_${i % 4}`,
      queue: i % 3 === 0 ? 'billing' : 'emails',
      job_id: `job-${i % 10}`,
      // Times deliberately not in seq order: lineage must sort by ts, not by position.
      ts: T0 + ((i * 37) % 60) * 1000,
    }));
  }
  // Two events of one correlation with the same ts: order falls back to seq.
  evs.push(event({ correlation_id: 'wc_q_tie', ts: T0 + 5000, job_id: 'tie-a' }));
  evs.push(event({ correlation_id: 'wc_q_tie', ts: T0 + 5000, job_id: 'tie-b' }));
  evs.push(event({ correlation_id: 'wc_q_tie', ts: T0 + 1000, job_id: 'tie-0' }));
  // A value that needs escaping in JSON must still be found by the raw-line pre-check.
  evs.push(event({ correlation_id: 'wc_"quoted"\\é\u2028', ts: T0 }));
  const spool = await Spool.open({ dir, segmentBytes: 8192, groupCommitMs: 0, fsync: false });
  all = [];
  for (let i = 0; i < evs.length; i += 7) all.push(...(await spool.append(evs.slice(i, i + 7))));
  await spool.close();
});
afterAll(async () => {
  await removeDir(dir);
});

async function run(filter: LedgerFilter): Promise<LedgerRecord[]> {
  const out: LedgerRecord[] = [];
  for await (const r of queryLedger(dir, filter)) out.push(r);
  return out;
}

/** The same filter, computed the obvious way over every record. */
function expected(filter: LedgerFilter): LedgerRecord[] {
  const kinds = filter.kind === undefined ? null : ([] as string[]).concat(filter.kind);
  const out = all.filter(({ event: e }) =>
    (filter.correlationId === undefined || e.correlation_id === filter.correlationId) &&
    (filter.jobId === undefined || e.job_id === filter.jobId) &&
    (filter.queue === undefined || e.queue === filter.queue) &&
    (kinds === null || kinds.includes(e.kind)) &&
    (filter.since === undefined || e.ts >= filter.since) &&
    (filter.until === undefined || e.ts < filter.until));
  return filter.limit === undefined ? out : out.slice(0, filter.limit);
}

describe('queryLedger', () => {
  const cases: [string, LedgerFilter][] = [
    ['no filter', {}],
    ['correlationId', { correlationId: 'wc_q_1' }],
    ['jobId', { jobId: 'job-3' }],
    ['queue', { queue: 'billing' }],
    ['one kind', { kind: 'job.attempt_failed' }],
    ['several kinds', { kind: ['job.added', 'policy.decision'] }],
    ['since (inclusive)', { since: T0 + 30_000 }],
    ['until (exclusive)', { until: T0 + 30_000 }],
    ['a window and a queue', { since: T0 + 10_000, until: T0 + 20_000, queue: 'emails' }],
    ['everything at once', { correlationId: 'wc_q_2', queue: 'emails', kind: ['job.added', 'job.completed', 'job.started'], since: T0 + 1000 }],
    ['limit', { queue: 'emails', limit: 5 }],
    ['limit 0', { limit: 0 }],
    ['an escaped correlation id', { correlationId: 'wc_"quoted"\\é\u2028' }],
    ['nothing matches', { correlationId: 'wc_none' }],
  ];
  it.each(cases)('%s', async (_name, filter) => {
    const want = expected(filter);
    const got = await run(filter);
    expect(got.map((r) => r.seq)).toEqual(want.map((r) => r.seq));
    expect(got).toEqual(want);
  });

  it('has non-trivial cases (the fixture is not degenerate)', () => {
    expect(expected({ correlationId: 'wc_q_1' }).length).toBeGreaterThan(5);
    expect(expected({ since: T0 + 30_000 }).length).toBeGreaterThan(10);
    expect(expected({ until: T0 + 30_000 }).length).toBeGreaterThan(10);
    expect(expected({ correlationId: 'wc_"quoted"\\é\u2028' })).toHaveLength(1);
    expect(all.some((r) => r.event.ts === T0 + 30_000)).toBe(true);
  });

  it('rejects unknown kinds and bad values with a named error', async () => {
    await expect(run({ kind: 'job.finished' })).rejects.toBeInstanceOf(InvalidFilterError);
    await expect(run({ kind: 'job.finished' })).rejects.toThrow(/job\.completed/);
    await expect(run({ since: Number.NaN })).rejects.toThrow(/parseTimeArg/);
    await expect(run({ limit: -1 })).rejects.toBeInstanceOf(InvalidFilterError);
    await expect(run({ since: '2h' as unknown as number })).rejects.toBeInstanceOf(InvalidFilterError);
  });

  it('fails clearly for a directory without a ledger', async () => {
    await expect(lineage(`${dir}/missing`, 'x')).rejects.toBeInstanceOf(LedgerNotFoundError);
  });
});

describe('lineage', () => {
  it('returns every record of the correlation ordered by (ts, seq)', async () => {
    const got = await lineage(dir, 'wc_q_3');
    const want = all.filter((r) => r.event.correlation_id === 'wc_q_3');
    expect(got).toHaveLength(want.length);
    expect(new Set(got.map((r) => r.seq))).toEqual(new Set(want.map((r) => r.seq)));
    for (let i = 1; i < got.length; i++) {
      const [a, b] = [got[i - 1], got[i]];
      expect(a.event.ts < b.event.ts || (a.event.ts === b.event.ts && a.seq < b.seq)).toBe(true);
    }
    // The fixture really is out of seq order for this correlation.
    expect(got.map((r) => r.seq)).not.toEqual([...got.map((r) => r.seq)].sort((x, y) => x - y));
  });

  it('breaks ts ties by seq', async () => {
    expect((await lineage(dir, 'wc_q_tie')).map((r) => r.event.job_id)).toEqual(['tie-0', 'tie-a', 'tie-b']);
  });

  it('is empty for an unknown correlation', async () => {
    expect(await lineage(dir, 'wc_unknown')).toEqual([]);
  });
});

describe('parseTimeArg', () => {
  const now = Date.UTC(2024, 4, 1, 12, 0, 0);
  it.each([
    ['15m', now - 15 * 60_000],
    ['2h', now - 2 * 3_600_000],
    ['7d', now - 7 * 86_400_000],
    ['30s', now - 30_000],
    ['2w', now - 14 * 86_400_000],
    ['0m', now],
    ['now', now],
    ['1714564800000', 1714564800000],
    ['2024-05-01', Date.UTC(2024, 4, 1)],
    ['2024-05-01T10:20:30Z', Date.UTC(2024, 4, 1, 10, 20, 30)],
    ['2024-05-01T10:20:30.123Z', Date.UTC(2024, 4, 1, 10, 20, 30, 123)],
    ['2024-05-01T10:20', Date.UTC(2024, 4, 1, 10, 20)],
    ['2024-05-01T12:20:30+02:00', Date.UTC(2024, 4, 1, 10, 20, 30)],
    ['2024-05-01T05:20:30-0500', Date.UTC(2024, 4, 1, 10, 20, 30)],
    ['2024-02-29', Date.UTC(2024, 1, 29)],
    [' 2h ', now - 2 * 3_600_000],
  ])('%s', (arg, want) => {
    expect(parseTimeArg(arg, now)).toBe(want);
  });

  it.each(['', 'yesterday', '15 minutes', '-2h', '2y', '1.5h', '2024-13-01', '2023-02-29', '2024-05-01T25:00Z',
    '2024-05-01T10:00+25:00', '05/01/2024', '1714564800', '2024-05-01Tfoo'])('rejects %j', (arg) => {
    expect(() => parseTimeArg(arg, now)).toThrow(TimeArgError);
  });

  it('explains the accepted forms, and spots epoch seconds', () => {
    expect(() => parseTimeArg('yesterday')).toThrow(/ISO-8601.*epoch milliseconds.*15m/);
    expect(() => parseTimeArg('1714564800')).toThrow(/1714564800000/);
  });

  it('defaults now to the current time', () => {
    const before = Date.now();
    const t = parseTimeArg('1h');
    expect(t).toBeGreaterThanOrEqual(before - 3_600_000);
    expect(t).toBeLessThanOrEqual(Date.now() - 3_600_000);
  });
});
