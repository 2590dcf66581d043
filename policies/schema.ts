/**
 * The policy file: named, versioned policies scoped by system, queue (or task queue), job name (or
 * activity type) and model. Validated with zod so every problem names its key
 * (`policies[2].retryStorm.budgetRatio: expected number`).
 */
import { z } from 'zod';

const name = z.string().regex(/^[\w.-]{1,100}$/, 'expected a short name (letters, digits, . _ -)');
const share = z.number().min(0).max(1);
const ms = z.number().int().min(1);

export const ScopeSchema = z.strictObject({
  /** bullmq, celery, temporal, or any (all). */
  system: z.enum(['bullmq', 'celery', 'temporal', 'any']).default('any'),
  /** Queue (BullMQ) or task queue (Temporal); unset: every queue, each with its own breaker. */
  queue: z.string().min(1).optional(),
  /** Job name (BullMQ) or activity type (Temporal). */
  jobName: z.string().min(1).optional(),
  activityType: z.string().min(1).optional(),
  model: z.string().min(1).optional(),
});

/**
 * Retry budget in the spirit of Finagle/Envoy: over the window, retries may be at most
 * `budgetRatio` of first attempts plus `budgetPerSecond` per second of the window.
 */
export const RetryStormSchema = z.strictObject({
  windowMs: ms.default(30_000),
  budgetRatio: z.number().min(0).default(0.2),
  budgetPerSecond: z.number().min(0).default(1),
  /** Below this many retries in the window the budget never trips (tiny samples say nothing). */
  minRetries: z.number().int().min(1).default(10),
  /** Jobs that exhausted their attempts, as a share of jobs that finished in the window. */
  terminalFailures: z.strictObject({ maxShare: share.default(0.5), minFinished: z.number().int().min(1).default(20) }).nullable().prefault({}),
  /** Stalls as a share of attempts started in the window. */
  stalls: z.strictObject({ maxShare: share.default(0.2), minStarted: z.number().int().min(1).default(20) }).nullable().prefault({}),
  /** Attempt-number distribution: share of started attempts whose number is at least `atLeast`. */
  attempts: z.strictObject({ atLeast: z.number().int().min(2).default(3), maxShare: share.default(0.5), minStarted: z.number().int().min(1).default(20) }).nullable().prefault({}),
  /** Synchronized retries (no jitter): the largest share of retries due within one `bucketMs`. */
  synchronized: z.strictObject({ bucketMs: ms.default(50), maxShare: share.default(0.5), minRetries: z.number().int().min(2).default(20) }).nullable().prefault({}),
  /**
   * One failure reason dominating the failed attempts. A QUALIFIER, not a trip: recorded in the
   * evidence of a breaker that another signal opened (`qualifiers`), never a reason to open on its
   * own (ordinary noise has one dominant reason too). Files that set it stay valid.
   */
  dominantReason: z.strictObject({ maxShare: share.default(0.9), minFailures: z.number().int().min(1).default(50) }).nullable().prefault({}),
});

export const DriftMetricSchema = z.strictObject({
  /** The output read from events as `attrs['output.<name>']`; `duration_ms` is the attempt's own latency. */
  name: z.string().regex(/^[\w.-]{1,64}$/, 'expected a metric name (letters, digits, . _ -)'),
  /** The first `baselineSize` values form the reference; later values fill the current window. */
  baselineSize: z.number().int().min(5).default(200),
  windowSize: z.number().int().min(5).default(100),
  /** auto: Evidently's default (KS when the reference has <= 1000 values, else normed Wasserstein). */
  method: z.enum(['auto', 'ks', 'wasserstein', 'psi']).default('auto'),
  /** KS: drift when p <= threshold (0.05); Wasserstein and PSI: drift when score >= threshold (0.1). */
  threshold: z.number().min(0).optional(),
});

export const DriftSchema = z.strictObject({
  /** model -> versions approved for use; a model listed here with another version is drift. */
  approvedModels: z.record(z.string().min(1), z.array(z.string().min(1))).default({}),
  approvedPolicies: z.record(z.string().min(1), z.array(z.string().min(1))).default({}),
  /** The served model (attrs.served_model[_version]) must equal the requested one. */
  servedMustMatch: z.boolean().default(true),
  /** One correlation ID must not use two versions of the same model. */
  versionSkew: z.boolean().default(true),
  metrics: z.array(DriftMetricSchema).default([]),
  /** What a drift finding does: record it, require an approval for the work, or also open a breaker on the model route. */
  action: z.enum(['record', 'require_approval', 'breaker']).default('require_approval'),
});

export const BreakerSchema = z.strictObject({
  /** BullMQ: pause the queue, lower its global concurrency, or rate-limit it. Temporal scopes always publish to the KV bucket. */
  action: z.enum(['pause', 'concurrency', 'rate_limit', 'none']).default('pause'),
  /** For action concurrency: the global concurrency while open. */
  concurrency: z.number().int().min(1).default(1),
  /** For action rate_limit: at most `max` jobs per `durationMs` while open. */
  rateLimit: z.strictObject({ max: z.number().int().min(1).default(1), durationMs: ms.default(1000) }).prefault({}),
  /** Open -> half-open after this long; doubled (x backoffMultiplier) each time a probe fails, up to maxResetTimeoutMs. */
  resetTimeoutMs: ms.default(30_000),
  backoffMultiplier: z.number().min(1).default(2),
  maxResetTimeoutMs: ms.default(600_000),
  /** Half-open: successes needed to close, and the global concurrency the probes run with. */
  probes: z.number().int().min(1).default(3),
  /**
   * How a probe window is judged (retry-storm breakers): against the scope's baseline failure rate,
   * tracked while the breaker was closed over the history before the window that tripped. The band
   * is `baseline x factor + slack`. The breaker closes once `probes` probes succeeded and the probe
   * window's failure rate is within the band; it re-opens as soon as the probes' failures are
   * improbable under the band (one-sided binomial p < alpha), or, after `maxProbes` outcomes, when
   * the rate is above it. Without a baseline (fewer than `minBaseline` outcomes seen while closed)
   * any failed probe re-opens.
   */
  probeBand: z.strictObject({
    factor: z.number().min(1).default(2),
    slack: share.default(0.05),
    alpha: z.number().gt(0).lt(1).default(0.01),
    minBaseline: z.number().int().min(1).default(20),
    maxProbes: z.number().int().min(1).default(50),
  }).prefault({}),
  probeConcurrency: z.number().int().min(1).default(1),
  /** Temporal: the share of calls let through as probes while half-open. */
  probeRatio: share.default(0.1),
  /** Temporal: fail non-retryably while open (retrying is pointless). */
  nonRetryable: z.boolean().default(false),
});

export const PolicySchema = z.strictObject({
  name,
  version: z.union([z.string().min(1), z.number()]).transform((v) => String(v)),
  description: z.string().optional(),
  /** Decide and record (decision `dry_run:<action>`), but do not act. */
  dryRun: z.boolean().default(false),
  scope: ScopeSchema.prefault({}),
  retryStorm: RetryStormSchema.optional(),
  drift: DriftSchema.optional(),
  breaker: BreakerSchema.prefault({}),
});

export const PolicyFileSchema = z.strictObject({
  /** Format version of the file itself. */
  apiVersion: z.literal('warden/v1'),
  policies: z.array(PolicySchema).superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((p, i) => {
      if (seen.has(p.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate policy name "${p.name}"` });
      seen.add(p.name);
      if (!p.retryStorm && !p.drift) ctx.addIssue({ code: 'custom', path: [i], message: 'a policy needs retryStorm or drift (or both)' });
    });
  }),
});

export type Scope = z.infer<typeof ScopeSchema>;
export type RetryStormConfig = z.infer<typeof RetryStormSchema>;
export type DriftConfig = z.infer<typeof DriftSchema>;
export type DriftMetricConfig = z.infer<typeof DriftMetricSchema>;
export type BreakerConfig = z.infer<typeof BreakerSchema>;
export type Policy = z.infer<typeof PolicySchema>;
export type PolicyFile = z.infer<typeof PolicyFileSchema>;
