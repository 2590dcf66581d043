/**
 * What the ledger already says about jobs that had not finished when the sidecar stopped: their
 * current attempt and whether it was running. After a restart the collector seeds its per-job state
 * from here rather than from the job's hash, which may already show attempts made while Warden was
 * down (those attempts are still in the stream and will be read in order).
 */
import type { WardenEvent } from '../core/event.js';
import type { JobSeed } from '../collectors/bullmq/translate.js';

export class JobStateIndex {
  private readonly jobs = new Map<string, JobSeed>();
  constructor(private readonly max = 200_000) {}

  get(queue: string, jobId: string): JobSeed | undefined {
    return this.jobs.get(`${queue}\0${jobId}`);
  }

  add(ev: WardenEvent): void {
    if (ev.source !== 'bullmq' || !ev.queue || !ev.job_id) return;
    const key = `${ev.queue}\0${ev.job_id}`;
    const a = ev.attempt ?? 1;
    switch (ev.kind) {
      case 'job.added':
        this.set(key, { attempt: 1, active: false, activeMs: null, readyMs: ev.ts + (Number(ev.attrs.delay_ms) || 0) });
        break;
      case 'job.started':
        this.set(key, { attempt: a, active: true, activeMs: ev.ts, readyMs: null });
        break;
      case 'job.attempt_failed':
        this.set(key, { attempt: a + 1, active: false, activeMs: null, readyMs: ev.ts + (Number(ev.attrs.retry_delay_ms) || 0) });
        break;
      case 'job.stalled':
        this.set(key, { attempt: a, active: false, activeMs: null, readyMs: ev.ts });
        break;
      case 'job.completed':
      case 'job.failed':
      case 'job.removed':
        this.jobs.delete(key);
        break;
    }
  }

  private set(key: string, seed: JobSeed): void {
    this.jobs.delete(key);
    this.jobs.set(key, seed);
    if (this.jobs.size > this.max) this.jobs.delete(this.jobs.keys().next().value!);
  }
}
