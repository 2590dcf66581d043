/** The terminal-record index the collector consults after a gap: exact answers, bounded, oldest evicted first. */
import { describe, expect, it } from 'vitest';
import { makeEvent, type EventKind } from '../../core/event.js';
import { TerminalIndex } from '../../agent/positions.js';

const ev = (kind: EventKind, queue: string, jobId: string) => makeEvent({ kind, source: 'bullmq', queue, job_id: jobId });

describe('TerminalIndex', () => {
  it('holds finished jobs per queue; numeric-looking IDs that are not canonical integers stay distinct', () => {
    const t = new TerminalIndex(100);
    t.add(ev('job.completed', 'a', '7'));
    t.add(ev('job.failed', 'a', 'job-x'));
    t.add(ev('job.completed', 'b', '007'));
    t.add(ev('job.started', 'a', '8')); // not terminal
    expect(t.has('a', '7')).toBe(true);
    expect(t.has('a', 'job-x')).toBe(true);
    expect(t.has('b', '7')).toBe(false); // other queue
    expect(t.has('b', '007')).toBe(true);
    expect(t.has('b', '07')).toBe(false); // '007' is not the number 7
    expect(t.has('a', '8')).toBe(false);
    expect(t.has('a', '1234567890')).toBe(false);
    t.add(ev('job.completed', 'a', '1234567890')); // too long for a small integer: kept as a string
    expect(t.has('a', '1234567890')).toBe(true);
    expect(t.size).toBe(4);
  });

  it('stays at its bound, evicting the oldest entries across queues first', () => {
    const t = new TerminalIndex(1000);
    for (let i = 0; i < 2500; i++) t.add(ev('job.completed', i % 2 ? 'odd' : 'even', String(i)));
    expect(t.size).toBe(1000);
    for (let i = 0; i < 1500; i++) expect(t.has(i % 2 ? 'odd' : 'even', String(i))).toBe(false);
    for (let i = 1500; i < 2500; i++) expect(t.has(i % 2 ? 'odd' : 'even', String(i))).toBe(true);
    t.add(ev('job.completed', 'odd', '2499')); // already held: no eviction
    expect(t.has('even', '1500')).toBe(true);
  });
});
