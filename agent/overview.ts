/**
 * The console's Overview: a JSON snapshot of the sidecar's own metrics registry, per system and queue
 * (attempts and outcomes, wait and run latency from the histograms, paused state), the retry ratio of
 * each breaker scope against its budget, and the last self-verify. Read from the registry at request
 * time only: nothing on the ingestion path changes.
 */
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { WardenMetrics } from './metrics.js';

export interface LatencySummary {
  count: number;
  mean_s: number | null;
  /** Upper bound of the bucket holding the median / 95th percentile (seconds); null without data. */
  p50_s: number | null;
  p95_s: number | null;
}

export interface QueueOverview {
  system: string;
  queue: string;
  completed: number;
  failed: number;
  attempt_failed: number;
  stalled: number;
  /** attempt_failed / (completed + failed): retries per finished job. */
  retries_per_job: number | null;
  wait: LatencySummary;
  run: LatencySummary;
  /** BullMQ only: 1 while paused (polled), else null when unknown. */
  paused: boolean | null;
}

export interface Overview {
  at: number;
  queues: QueueOverview[];
  retry: { policy: string; scope: string; ratio: number; budget: number }[];
  self_verify: { ok: boolean | null; last_run_ms: number | null };
}

type Values = MetricValue<string>[];
const values = async (m: { get(): Promise<MetricObjectWithValues<MetricValue<string>>> }): Promise<Values> => (await m.get()).values;
const key = (system: unknown, queue: unknown) => `${String(system)}\u0000${String(queue)}`;

export async function overviewOf(metrics: WardenMetrics): Promise<Overview> {
  const rows = new Map<string, QueueOverview>();
  const row = (system: string, queue: string): QueueOverview => {
    let r = rows.get(key(system, queue));
    if (!r) {
      const empty = (): LatencySummary => ({ count: 0, mean_s: null, p50_s: null, p95_s: null });
      r = { system, queue, completed: 0, failed: 0, attempt_failed: 0, stalled: 0, retries_per_job: null, wait: empty(), run: empty(), paused: null };
      rows.set(key(system, queue), r);
    }
    return r;
  };
  for (const v of await values(metrics.jobs)) {
    const r = row(String(v.labels.system), String(v.labels.queue));
    const outcome = String(v.labels.outcome);
    if (outcome === 'completed' || outcome === 'failed' || outcome === 'attempt_failed' || outcome === 'stalled') r[outcome] += v.value;
  }
  for (const [hist, field] of [[metrics.wait, 'wait'], [metrics.duration, 'run']] as const) {
    const per = new Map<string, { buckets: Map<number, number>; sum: number; count: number; system: string; queue: string }>();
    for (const v of await values(hist)) {
      const k = key(v.labels.system, v.labels.queue);
      let h = per.get(k);
      if (!h) per.set(k, h = { buckets: new Map(), sum: 0, count: 0, system: String(v.labels.system), queue: String(v.labels.queue) });
      const name = (v as { metricName?: string }).metricName ?? '';
      if (name.endsWith('_bucket')) {
        const le = v.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(v.labels.le);
        h.buckets.set(le, (h.buckets.get(le) ?? 0) + v.value);
      } else if (name.endsWith('_sum')) h.sum += v.value;
      else if (name.endsWith('_count')) h.count += v.value;
    }
    for (const h of per.values()) {
      if (h.count === 0) continue;
      const les = [...h.buckets.keys()].sort((a, b) => a - b);
      const q = (p: number) => {
        const le = les.find((b) => (h.buckets.get(b) ?? 0) >= p * h.count);
        return le === undefined || !Number.isFinite(le) ? null : le;
      };
      row(h.system, h.queue)[field] = { count: h.count, mean_s: h.sum / h.count, p50_s: q(0.5), p95_s: q(0.95) };
    }
  }
  for (const v of await values(metrics.queuePaused)) {
    const r = rows.get(key('bullmq', v.labels.queue));
    if (r) r.paused = v.value === 1;
  }
  for (const r of rows.values()) {
    const done = r.completed + r.failed;
    r.retries_per_job = done > 0 ? r.attempt_failed / done : null;
  }
  const budgets = new Map((await values(metrics.retryBudgetRatio)).map((v) => [key(v.labels.policy, v.labels.scope), v.value]));
  const retry = (await values(metrics.retryRatio)).map((v) => ({
    policy: String(v.labels.policy), scope: String(v.labels.scope), ratio: v.value, budget: budgets.get(key(v.labels.policy, v.labels.scope)) ?? 0,
  }));
  const [ok] = await values(metrics.verifyOk);
  const [last] = await values(metrics.verifyLastRun);
  return {
    at: Date.now(),
    queues: [...rows.values()].sort((a, b) => a.system.localeCompare(b.system) || a.queue.localeCompare(b.queue)),
    retry,
    // An unlabelled gauge reads 0 before it is ever set: without a run there is no verdict.
    self_verify: last && last.value > 0 ? { ok: ok?.value === 1, last_run_ms: Math.round(last.value * 1000) } : { ok: null, last_run_ms: null },
  };
}
