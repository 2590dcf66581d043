import { describe, expect, it } from 'vitest';
import { WardenMetrics } from '../../agent/metrics.js';
import { makeEvent } from '../../core/event.js';
import { promtool } from '../harness/index.js';

describe('WardenMetrics', () => {
  it('counts outcomes, observes latency histograms, and passes promtool check metrics', async () => {
    const m = new WardenMetrics();
    const base = { source: 'bullmq' as const, queue: 'embed', job_name: 'chunk' };
    m.observe(makeEvent({ ...base, kind: 'job.started', attrs: { wait_ms: 120 } }));
    m.observe(makeEvent({ ...base, kind: 'job.attempt_failed', duration_ms: 30 }));
    m.observe(makeEvent({ ...base, kind: 'job.completed', duration_ms: 45 }));
    m.observe(makeEvent({ ...base, kind: 'job.failed', duration_ms: 5 }));
    m.observe(makeEvent({ ...base, kind: 'job.stalled' }));
    m.queueJobs.set({ queue: 'embed', state: 'waiting' }, 3);
    const { body } = await m.render();
    expect(body).toMatch(/warden_jobs_total\{system="bullmq",queue="embed",name="chunk",outcome="completed"\} 1/);
    expect(body).toMatch(/warden_jobs_total\{[^}]*outcome="attempt_failed"\} 1/);
    expect(body).toMatch(/warden_jobs_total\{[^}]*outcome="stalled"\} 1/);
    expect(body).toMatch(/warden_job_duration_seconds_count\{system="bullmq",queue="embed",name="chunk"\} 3/);
    expect(body).toMatch(/warden_job_wait_seconds_sum\{system="bullmq",queue="embed",name="chunk"\} 0\.12/);
    expect(body).toMatch(/warden_ledger_events_total\{kind="job.completed"\} 1/);
    expect(body).toContain('process_cpu_seconds_total');
    const check = await promtool(['check', 'metrics'], { stdin: body });
    expect(check.stdout + check.stderr).toBe('');
    expect(check.code).toBe(0);
  });
});
