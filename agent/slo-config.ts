/**
 * The `slos` section of the config: service level objectives per queue (and optionally job name and
 * system), on the success ratio of jobs and optionally on their processing latency. Validated here so
 * a latency threshold that the histogram cannot answer exactly is refused with the usable values.
 */
import { z } from 'zod';
import { LATENCY_BUCKETS } from './metrics.js';

/** Windows the error ratios are recorded over (the MWMB alert pairs use them) and the SLO period choices. */
export const SLO_PERIODS = ['7d', '14d', '28d', '30d'] as const;

const objective = z.number().gt(0, 'expected a ratio between 0 and 1, e.g. 0.99').lt(1, 'expected a ratio below 1 (an objective of 1 leaves no error budget)');

// A latency SLO counts attempts with `le` <= threshold from the histogram; only a bucket boundary is exact.
const thresholdSeconds = z.number().refine((v) => LATENCY_BUCKETS.includes(v), {
  message: `must be a bucket boundary of warden_job_duration_seconds (the histogram cannot split a bucket): one of ${LATENCY_BUCKETS.join(', ')}`,
});

const labelValue = z.string().min(1).regex(/^[^"\\\n]+$/, 'must not contain quotes, backslashes or newlines');

export const SloSpec = z.strictObject({
  /** Identifies the SLO in rule names and the `slo` label; letters, digits, `-` and `_`. */
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/i, 'expected a short name (letters, digits, - and _), e.g. model-call'),
  queue: labelValue,
  /** Only jobs (or activities) of this name; unset: every job of the queue. */
  jobName: labelValue.optional(),
  /** bullmq or temporal; unset: both. */
  system: z.enum(['bullmq', 'temporal']).optional(),
  /** Share of finished jobs that must complete (not fail after their last attempt). */
  objective,
  /** Share of attempts that must finish within thresholdSeconds. */
  latency: z.strictObject({ thresholdSeconds, objective }).optional(),
  /** The period the error budget is spent over. */
  window: z.enum(SLO_PERIODS).default('30d'),
  description: z.string().optional(),
});

export const SloList = z.array(SloSpec).superRefine((slos, ctx) => {
  const seen = new Set<string>();
  slos.forEach((s, i) => {
    if (seen.has(s.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate SLO name "${s.name}" (names label the rules and must be unique)` });
    seen.add(s.name);
  });
});

export type SloSpec = z.infer<typeof SloSpec>;
