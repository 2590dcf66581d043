/**
 * Which job hashes the BullMQ translator asks for: everything for a job it meets for the first time,
 * only the attempt's status for later entries of a job it tracks (its name, metadata and input were
 * read already), and everything again when tracking is near its bound.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_INPUT_LIMITS } from '../../../core/input.js';
import { Redactor } from '../../../core/redact.js';
import { snapshotKey, toSnapshot, type JobSnapshot } from '../../../collectors/bullmq/job-snapshot.js';
import { QueueTranslator } from '../../../collectors/bullmq/translate.js';
import type { StreamEntry } from '../../../collectors/bullmq/stream-read.js';

const translator = (maxTrackedJobs?: number) =>
  new QueueTranslator({ queue: 'q', redactor: new Redactor(), inputLimits: DEFAULT_INPUT_LIMITS, metadata: { model: 'data.model' }, maxTrackedJobs });

const entry = (ms: number, fields: Record<string, string>): StreamEntry => ({ id: `${ms}-0`, fields });

/** A full snapshot, as HMGET of every field gives it. */
const full = (jobId: string): JobSnapshot => toSnapshot([
  'summarize', JSON.stringify({ attempts: 3, warden: { cid: `cid-${jobId}` } }), '1000', '0', null, null, null, null, null,
  JSON.stringify({ model: 'gpt-x', prompt: 'p' }), null,
])!;

describe('BullMQ snapshot requests', () => {
  it('asks for everything on first sight and only the status of a tracked job later, with the same events', () => {
    const t = translator();
    const added = [entry(1000, { event: 'added', jobId: '1', name: 'summarize' })];
    expect(t.snapshotRequests(added)).toEqual([{ queue: 'q', jobId: '1', withData: true }]);
    const first = t.translate(added, new Map([[snapshotKey('q', '1'), full('1')]]), false).events;
    expect(first.map((e) => [e.kind, e.model, e.correlation_id])).toEqual([['job.added', 'gpt-x', 'cid-1']]);

    const later = [entry(1005, { event: 'active', jobId: '1', prev: 'waiting' }), entry(1010, { event: 'completed', jobId: '1', returnvalue: '"ok"' }),
      entry(1011, { event: 'completed', jobId: '2', returnvalue: '"ok"' })];
    expect(t.snapshotRequests(later)).toEqual([
      { queue: 'q', jobId: '1', withData: false, statusOnly: true },
      { queue: 'q', jobId: '2', withData: true }, // never seen: everything
    ]);
    // A status-only reply (timestamp, processedOn, finishedOn, atm, failedReason) carries what the
    // terminal event needs; name, model and correlation still come from the first sighting.
    const status = toSnapshot([null, null, '1000', null, '1005', '1010', '1', null, null, null, null])!;
    const events = t.translate(later.slice(0, 2), new Map([[snapshotKey('q', '1'), status]]), false).events;
    expect(events.map((e) => [e.kind, e.attempt, e.duration_ms, e.job_name, e.model, e.correlation_id])).toEqual([
      ['job.started', 1, null, 'summarize', 'gpt-x', 'cid-1'],
      ['job.completed', 1, 5, 'summarize', 'gpt-x', 'cid-1'],
    ]);
  });

  it('asks for the job\'s fields again when a tracked job might be forgotten before its entry is read', () => {
    const t = translator(3);
    t.translate([entry(1000, { event: 'added', jobId: '1' })], new Map([[snapshotKey('q', '1'), full('1')]]), false);
    const reqs = t.snapshotRequests([entry(1010, { event: 'completed', jobId: '1' }), entry(1011, { event: 'added', jobId: '7' })]);
    expect(reqs).toEqual([{ queue: 'q', jobId: '1', withData: false }, { queue: 'q', jobId: '7', withData: true }]);
  });
});
