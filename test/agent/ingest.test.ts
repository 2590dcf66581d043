/**
 * EventIngest over a real spool in a temp dir: concurrent deliveries of the same events append once
 * (check-and-append is serialized), a failed append remembers nothing (the retry appends), the ID
 * index is bounded, and hook input is redacted again before it reaches disk.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Redactor } from '../../core/redact.js';
import { Spool } from '../../ledger/spool/spool.js';
import { EventIngest, RecentEventIds } from '../../agent/ingest.js';
import { TemporalLedgerIndex } from '../../collectors/temporal/ledger-index.js';
import { makeEvent } from '../../core/event.js';
import { newEventId } from '../../core/ids.js';
import { WardenMetrics } from '../../agent/metrics.js';
import { activityEvent } from '../harness/transport.js';
import { readAll, removeDir, tempDir } from '../harness/ledger.js';

const NATS = { transport: 'nats', via: 'nats:WARDEN_EVENTS' } as const;
const HTTP = { transport: 'http', via: 'http:pipeline' } as const;

let dir: string | undefined;
afterEach(async () => { if (dir) await removeDir(dir); dir = undefined; });

describe('EventIngest', () => {
  it('appends concurrent deliveries of the same events once, and counts accepted/duplicate per transport', async () => {
    dir = await tempDir();
    const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 2 });
    const metrics = new WardenMetrics({ defaultMetrics: false });
    const ingest = new EventIngest({ record: async (evs) => { await spool.append(evs); }, ids: new RecentEventIds(1000), metrics });
    const evs = Array.from({ length: 50 }, (_, i) => activityEvent(i));
    const results = await Promise.all([ingest.ingest(evs, NATS), ingest.ingest(evs.slice(10, 30), HTTP), ingest.ingest(evs, NATS)]);
    expect(results).toEqual([{ accepted: 50, duplicates: 0, superseded: 0 }, { accepted: 0, duplicates: 20, superseded: 0 }, { accepted: 0, duplicates: 50, superseded: 0 }]);
    await spool.close();
    expect((await readAll(dir)).map((r) => r.event.event_id)).toEqual(evs.map((e) => e.event_id));
    const text = (await metrics.render()).body;
    expect(text).toContain('warden_ingest_events_total{transport="nats",result="accepted"} 50');
    expect(text).toContain('warden_ingest_events_total{transport="nats",result="duplicate"} 50');
    expect(text).toContain('warden_ingest_events_total{transport="http",result="duplicate"} 20');
  });

  it('remembers nothing from a failed append, so the redelivery is appended', async () => {
    dir = await tempDir();
    const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0 });
    let fail = true;
    const ingest = new EventIngest({ record: async (evs) => { if (fail) throw new Error('ENOSPC'); await spool.append(evs); }, ids: new RecentEventIds(1000) });
    const evs = Array.from({ length: 5 }, (_, i) => activityEvent(i));
    await expect(ingest.ingest(evs, NATS)).rejects.toThrow('ENOSPC');
    fail = false;
    expect(await ingest.ingest(evs, NATS)).toEqual({ accepted: 5, duplicates: 0, superseded: 0 });
    await spool.close();
    expect(await readAll(dir)).toHaveLength(5);
  });

  it('redacts secrets in a hook event\'s input, reason, error and attrs before the append', async () => {
    dir = await tempDir();
    const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0 });
    const ingest = new EventIngest({ record: async (evs) => { await spool.append(evs); }, ids: new RecentEventIds(1000), redactor: new Redactor({ paths: ['user.ssn'], maxDepth: 32 }) });
    const ev = activityEvent(1, { input: { password: 'hunter22', user: { ssn: '078-05-1120' }, note: 'mail alice@example.com' }, error: 'auth failed for Bearer abcdefghijklmnopqrstuvwxyz012345', attrs: { prompt: 'call me at bob@example.org', n: 3 } });
    await ingest.ingest([ev], HTTP);
    await spool.close();
    const line = JSON.stringify((await readAll(dir))[0].event);
    for (const secret of ['hunter22', '078-05-1120', 'alice@example.com', 'abcdefghijklmnopqrstuvwxyz012345', 'bob@example.org']) expect(line).not.toContain(secret);
    expect(line).toContain('[REDACTED]');
  });

  it('skips a hook\'s Temporal start, end or activity outcome that history already gave the ledger (superseded), and only those', async () => {
    dir = await tempDir();
    const spool = await Spool.open({ dir, fsync: false, groupCommitMs: 0 });
    const metrics = new WardenMetrics({ defaultMetrics: false });
    const index = new TemporalLedgerIndex();
    const ingest = new EventIngest({
      record: async (evs) => { await spool.append(evs); index.addAll(evs); }, ids: new RecentEventIds(1000), metrics,
      superseded: (ev) => index.heldFromHistory(ev),
    });
    const run = { source: 'temporal' as const, workflow_id: 'wf-1', run_id: 'run-1', queue: 'orders' };
    const t = Date.now();
    const ev = (kind: 'workflow.started' | 'workflow.completed' | 'activity.started' | 'activity.completed', attrs: Record<string, unknown>, i: number) =>
      makeEvent({ ...run, kind, ts: t + i, event_id: newEventId(t + i), attempt: 1, attrs: attrs as never });
    // The collector rebuilt the run's start and one activity's outcome from history.
    const rebuilt = [ev('workflow.started', { from_history: true }, 0), ev('activity.completed', { from_history: true, activity_id: '1' }, 1)];
    expect(await ingest.ingest(rebuilt, { transport: 'history', via: null }, (e) => index.has(e))).toEqual({ accepted: 2, duplicates: 0, superseded: 0 });
    // Then the worker's buffered records arrive: the same start and outcome (other IDs) are superseded; the
    // per-attempt record and the end (which history did not give yet) are appended.
    const hook = [ev('workflow.started', { recorded_by: 'client' }, 2), ev('activity.started', { activity_id: '1' }, 3), ev('activity.completed', { activity_id: '1' }, 4), ev('workflow.completed', {}, 5)];
    expect(await ingest.ingest(hook, NATS)).toEqual({ accepted: 2, duplicates: 2, superseded: 2 });
    // And the other way round: the end came from the hook, so history's end is not added (the collector's skip).
    const historyEnd = ev('workflow.completed', { from_history: true }, 6);
    expect(index.heldFromHistory(historyEnd)).toBe(false);
    expect(await ingest.ingest([historyEnd], { transport: 'history', via: null }, (e) => index.has(e))).toEqual({ accepted: 0, duplicates: 1, superseded: 0 });
    await spool.close();
    const kept = (await readAll(dir)).map((r) => [r.event.kind, r.event.attrs.from_history === true]);
    expect(kept).toEqual([['workflow.started', true], ['activity.completed', true], ['activity.started', false], ['workflow.completed', false]]);
    const text = (await metrics.render()).body;
    expect(text).toContain('warden_ingest_events_total{transport="nats",result="superseded"} 2');
    expect(text).toContain('warden_ingest_events_total{transport="nats",result="accepted"} 2');
    expect(text).not.toContain('warden_ingest_events_total{transport="nats",result="duplicate"}');
  });

  it('RecentEventIds evicts the oldest beyond its bound', () => {
    const ids = new RecentEventIds(3);
    for (const id of ['a', 'b', 'c', 'd']) ids.add(id);
    expect(ids.size).toBe(3);
    expect(ids.has('a')).toBe(false);
    expect(ids.has('d')).toBe(true);
  });
});
