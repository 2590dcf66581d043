/**
 * Prometheus metrics (prom-client). Label values come from events that were already redacted; job
 * names and queue names are the only free-text labels. Output must pass `promtool check metrics`.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { WardenEvent } from '../core/event.js';
import { OUTCOME_OF_KIND } from '../core/kinds.js';

/** Bucket boundaries of the latency histograms; latency SLO thresholds must be one of them (agent/slo-config.ts). */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

/** The label value every label of a series past a family's cap is folded into. */
export const OVERFLOW_LABEL = '__overflow__';

/** Series a family keeps by default before folding new ones (metrics.maxSeriesPerFamily). */
export const DEFAULT_MAX_SERIES_PER_FAMILY = 1000;

// prom-client names these gauges `*_total`, which promtool rejects (a gauge is not a counter).
const NON_CONFORMING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export class WardenMetrics {
  readonly registry = new Registry();
  readonly jobs = new Counter({ name: 'warden_jobs_total', help: 'Job attempts and outcomes seen, by outcome (completed, failed, attempt_failed, stalled).', labelNames: ['system', 'queue', 'name', 'outcome'], registers: [this.registry] });
  readonly duration = new Histogram({ name: 'warden_job_duration_seconds', help: 'Processing time of one attempt, from start to its end.', labelNames: ['system', 'queue', 'name'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly wait = new Histogram({ name: 'warden_job_wait_seconds', help: 'Time from a job being ready (added, delay or backoff elapsed) to an attempt starting.', labelNames: ['system', 'queue', 'name'], buckets: LATENCY_BUCKETS, registers: [this.registry] });
  readonly queueJobs = new Gauge({ name: 'warden_queue_jobs', help: 'Jobs in each BullMQ queue state, polled.', labelNames: ['queue', 'state'], registers: [this.registry] });
  readonly queuePaused = new Gauge({ name: 'warden_queue_paused', help: '1 while the queue is paused.', labelNames: ['queue'], registers: [this.registry] });
  readonly ledgerEvents = new Counter({ name: 'warden_ledger_events_total', help: 'Events appended to the ledger spool (durable), by kind.', labelNames: ['kind'], registers: [this.registry] });
  readonly ledgerAppendErrors = new Counter({ name: 'warden_ledger_append_errors_total', help: 'Spool appends that failed (the batch is re-read, not lost).', registers: [this.registry] });
  readonly ledgerLastSeq = new Gauge({ name: 'warden_ledger_last_seq', help: 'Sequence number of the newest durable ledger record.', registers: [this.registry] });
  /** Where the backlog is read from at scrape time (set when shipping is on). */
  backlogSource: (() => number) | null = null;
  readonly backlog = new Gauge({
    name: 'warden_ledger_backlog_events',
    help: 'Ledger records durable in the spool but not yet in the ClickHouse store.',
    registers: [this.registry],
    collect: () => { if (this.backlogSource) this.backlog.set(this.backlogSource()); },
  });
  readonly shipErrors = new Counter({ name: 'warden_ledger_ship_errors_total', help: 'Failed attempts to ship ledger records to the store (retried; the backlog stays on disk).', registers: [this.registry] });
  readonly checkpointPublishErrors = new Counter({ name: 'warden_checkpoint_publish_errors_total', help: 'Failed attempts to publish signed ledger checkpoints to NATS, and checkpoints dropped from the full in-memory queue (reason=dropped); all are re-published from checkpoints.jsonl.', labelNames: ['reason'], registers: [this.registry] });
  readonly shipped = new Counter({ name: 'warden_ledger_shipped_total', help: 'Ledger records inserted into the store.', registers: [this.registry] });
  readonly gaps = new Counter({ name: 'warden_collector_gaps_total', help: 'Times a queue stream was trimmed past the collector checkpoint (events lost, finished jobs reconciled).', labelNames: ['queue'], registers: [this.registry] });
  readonly streamEntries = new Counter({ name: 'warden_collector_stream_entries_total', help: 'BullMQ event stream entries read, by queue and BullMQ event name.', labelNames: ['queue', 'event'], registers: [this.registry] });
  readonly collectorErrors = new Counter({ name: 'warden_collector_errors_total', help: 'Errors while collecting (Redis unavailable, bad entries), by where they happened.', labelNames: ['where'], registers: [this.registry] });
  readonly verifyOk = new Gauge({ name: 'warden_ledger_verify_ok', help: '1 if the last periodic self-verify of the ledger (hash chain, and signed checkpoints on full runs) passed, 0 if it found a problem.', registers: [this.registry] });
  readonly verifyLastRun = new Gauge({ name: 'warden_ledger_verify_last_run_timestamp_seconds', help: 'When the last periodic ledger self-verify finished (Unix seconds).', registers: [this.registry] });
  readonly collectorLag = new Gauge({ name: 'warden_collector_lag_seconds', help: 'Age of the newest stream entry processed, per queue, at the time it was recorded.', labelNames: ['queue'], registers: [this.registry] });
  readonly apiRefused = new Counter({ name: 'warden_api_refused_requests_total', help: 'API requests refused before reaching a route, by cause (unauthenticated: no or unknown token; rate_limited); summarized in the ledger once per interval, not one record each.', labelNames: ['cause'], registers: [this.registry] });
  readonly ingestEvents = new Counter({ name: 'warden_ingest_events_total', help: 'Events received from in-process hooks, by transport (nats, http, history) and result (accepted, duplicate, superseded, invalid).', labelNames: ['transport', 'result'], registers: [this.registry] });

  // Fleet mode (collectors/bullmq/lease.ts): queue leases this sidecar holds, takeovers, live members.
  readonly fleetLeasesHeld = new Gauge({ name: 'warden_fleet_leases_held', help: 'BullMQ queues this sidecar collects under a fleet lease (fleet mode).', registers: [this.registry] });
  readonly fleetTakeovers = new Counter({ name: 'warden_fleet_takeovers_total', help: 'Queue leases taken over from another sidecar of the fleet (its holder stopped renewing), by queue.', labelNames: ['queue'], registers: [this.registry] });
  readonly fleetLeaseChanges = new Counter({ name: 'warden_fleet_lease_changes_total', help: 'Queue lease changes of this sidecar: acquired, takeover, lost (expired or fenced off), released (rebalanced or stopping).', labelNames: ['change'], registers: [this.registry] });
  readonly fleetMembers = new Gauge({ name: 'warden_fleet_members', help: 'Live sidecars in the fleet (heartbeating on this Redis), as of the last lease round.', registers: [this.registry] });

  // Policies and breakers (policies/): state per breaker, decisions, drift scores, retry ratio vs budget.
  readonly breakerState = new Gauge({ name: 'warden_breaker_state', help: 'Circuit breaker state per policy and scope: 0 closed, 1 half-open, 2 open.', labelNames: ['policy', 'scope'], registers: [this.registry] });
  readonly policyDecisions = new Counter({ name: 'warden_policy_decisions_total', help: 'Policy decisions recorded in the ledger, by policy and decision (pause, probe, restore, require_approval, dry_run:<action>, ...).', labelNames: ['policy', 'decision'], registers: [this.registry] });
  readonly driftScore = new Gauge({ name: 'warden_drift_score', help: 'Latest drift score of a model output, by method: ks is a p-value (drift when <= 0.05); wasserstein (normed) and psi are distances (drift when >= 0.1).', labelNames: ['model', 'metric', 'method'], registers: [this.registry] });
  readonly retryRatio = new Gauge({ name: 'warden_retry_ratio', help: 'Retries per first attempt over the policy window, per scope.', labelNames: ['policy', 'scope'], registers: [this.registry] });
  readonly retryBudgetRatio = new Gauge({ name: 'warden_retry_budget_ratio', help: 'The retry budget over the same window, as retries per first attempt (ratio + per-second allowance).', labelNames: ['policy', 'scope'], registers: [this.registry] });

  /** Series folded into a family's `__overflow__` series because the family was at its cap. */
  readonly labelOverflow = new Counter({ name: 'warden_metrics_label_overflow_total', help: `Label sets folded into the family's ${OVERFLOW_LABEL} series because the family already had metrics.maxSeriesPerFamily series (labels from hook events, e.g. queue and job names, are free text).`, labelNames: ['family'], registers: [this.registry] });

  private readonly gapQueues = new Set<string>();

  constructor(opts: { defaultMetrics?: boolean; maxSeriesPerFamily?: number } = {}) {
    if (opts.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry });
      for (const name of NON_CONFORMING_DEFAULTS) this.registry.removeSingleMetric(name);
    }
    const cap = opts.maxSeriesPerFamily ?? DEFAULT_MAX_SERIES_PER_FAMILY;
    for (const m of [this.jobs, this.duration, this.wait, this.queueJobs, this.queuePaused, this.ledgerEvents, this.checkpointPublishErrors, this.gaps,
      this.streamEntries, this.collectorErrors, this.collectorLag, this.fleetTakeovers, this.ingestEvents, this.breakerState, this.policyDecisions, this.driftScore,
      this.retryRatio, this.retryBudgetRatio]) capSeries(m, cap, (family) => this.labelOverflow.inc({ family }));
  }

  /** Metrics derived from one durable event. */
  observe(ev: WardenEvent): void {
    this.ledgerEvents.inc({ kind: ev.kind });
    if (ev.kind === 'policy.decision') this.policyDecisions.inc({ policy: ev.policy ?? '', decision: ev.decision ?? '' });
    const system = ev.source === 'warden' ? null : ev.source;
    if (!system) return;
    const queue = ev.queue ?? '';
    // A BullMQ queue's gap counter exists from its first event at 0, so "no gaps" is data (the
    // dashboard's collector-gap panel shows 0, not "no data").
    if (system === 'bullmq' && !this.gapQueues.has(queue)) { this.gapQueues.add(queue); this.gaps.inc({ queue }, 0); }
    const name = ev.job_name ?? ev.activity_type ?? '';
    const outcome = OUTCOME_OF_KIND[ev.kind];
    if (outcome) this.jobs.inc({ system, queue, name, outcome });
    if (ev.duration_ms !== null && (ev.kind.endsWith('.completed') || ev.kind.endsWith('failed'))) {
      this.duration.observe({ system, queue, name }, ev.duration_ms / 1000);
    }
    const wait = ev.attrs.wait_ms;
    if (typeof wait === 'number' && ev.kind.endsWith('.started')) this.wait.observe({ system, queue, name }, wait / 1000);
  }

  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}

type Labelled = Counter<string> | Gauge<string> | Histogram<string>;

/**
 * Bounds a family's series: the first `cap` label sets are kept as they come; any later new one is
 * folded into one series whose every label is `__overflow__` (and counted), so a client sending 2 000
 * queue names cannot grow /metrics without bound. Wraps the calls that take labels (inc, dec, set,
 * observe, labels), so every caller is covered.
 */
function capSeries(metric: Labelled, cap: number, folded: (family: string) => void): void {
  const m = metric as unknown as { name: string; labelNames: readonly string[] } & Record<string, unknown>;
  const names = m.labelNames;
  if (names.length === 0) return;
  const seen = new Set<string>();
  const overflow = Object.fromEntries(names.map((n) => [n, OVERFLOW_LABEL]));
  const fold = (labels: Record<string, unknown>): Record<string, unknown> => {
    const key = names.map((n) => String(labels[n] ?? '')).join('\u0000');
    if (seen.has(key)) return labels;
    if (seen.size < cap) { seen.add(key); return labels; }
    folded(m.name);
    return overflow;
  };
  for (const method of ['inc', 'dec', 'set', 'observe', 'labels']) {
    const original = m[method];
    if (typeof original !== 'function') continue;
    m[method] = function (this: unknown, first: unknown, ...rest: unknown[]) {
      const labelled = typeof first === 'object' && first !== null;
      return (original as (...a: unknown[]) => unknown).call(this, labelled ? fold(first as Record<string, unknown>) : first, ...rest);
    };
  }
}
