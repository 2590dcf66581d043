/**
 * In-process hooks for BullMQ, one line each:
 *
 *   const queue = withWarden(new Queue('embed', { connection }), { model: 'text-embed', model_version: '3' });
 *   const worker = new Worker('embed', wardenProcessor(async (job) => ...), { connection });
 *
 * The producer side stamps a correlation ID, W3C trace context and model/policy metadata into the
 * job's options (`opts.warden`), never into the user's data. The worker side continues the trace with
 * one consumer span per attempt (OpenTelemetry messaging conventions); retries stay in one trace, and
 * jobs added from inside a processor inherit its correlation ID. Telemetry never throws into the job.
 */
import { context, propagation, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type Context, type Span, type SpanContext } from '@opentelemetry/api';
import type { Job, JobsOptions, Queue } from 'bullmq';
import { currentCorrelationId, runWithCorrelation } from '../correlation.js';
import { remoteParent } from '../trace-context.js';
import { newCorrelationId, stableSpanId, traceIdForCorrelation } from '../../core/ids.js';
import { Redactor } from '../../core/redact.js';
import * as sc from '../../core/semconv.js';
import { INSTRUMENTED_TTL_MS, instrumentedKey, WARDEN_OPTS_KEY, type WardenJobStamp } from '../../core/bullmq-convention.js';
import { parseTraceparent } from '../../core/traceparent.js';

const TRACER = 'warden/bullmq';
// Looked up per call (not cached forever) so a provider registered after import is used, but only
// once per provider: getTracer is measurable per job.
let cachedTracer: { provider: unknown; tracer: ReturnType<typeof trace.getTracer> } | null = null;
const tracer = () => {
  const provider = trace.getTracerProvider();
  if (cachedTracer?.provider !== provider) cachedTracer = { provider, tracer: provider.getTracer(TRACER, '0.1.0') };
  return cachedTracer.tracer;
};
const redactor = new Redactor();

/** Job names repeat: redact each distinct name once (bounded, so hostile names cannot grow it). */
const redactedNames = new Map<string, string>();
function redactedName(name: string): string {
  let r = redactedNames.get(name);
  if (r === undefined) {
    r = redactor.redactText(name);
    if (redactedNames.size >= 1024) redactedNames.clear();
    redactedNames.set(name, r);
  }
  return r;
}

export interface WardenMetadata {
  model?: string;
  model_version?: string;
  policy?: string;
  policy_version?: string;
}

/** Builds `opts` for Queue.add with Warden's stamp; explicit values in `opts.warden` win. */
export function stampJobOptions(queueName: string, opts: JobsOptions | undefined, defaults: WardenMetadata, span?: Span): JobsOptions {
  const given = ((opts as Record<string, unknown> | undefined)?.[WARDEN_OPTS_KEY] ?? {}) as Partial<WardenJobStamp>;
  const stamp: WardenJobStamp = { ...defaults, ...given, cid: given.cid ?? currentCorrelationId() ?? newCorrelationId() };
  const carrier: Record<string, string> = {};
  const ctx = span ? trace.setSpan(context.active(), span) : context.active();
  propagation.inject(ctx, carrier);
  // Without a registered propagator (no OTel SDK in the app), still pass on a valid span context.
  const spanCtx = span?.spanContext();
  if (!carrier.traceparent && spanCtx && trace.isSpanContextValid(spanCtx)) {
    carrier.traceparent = `00-${spanCtx.traceId}-${spanCtx.spanId}-0${spanCtx.traceFlags & 1}`;
  }
  if (carrier.traceparent) stamp.tp = carrier.traceparent;
  if (carrier.tracestate) stamp.tst = carrier.tracestate;
  return { ...(opts ?? {}), [WARDEN_OPTS_KEY]: stamp } as JobsOptions;
}

/**
 * Wraps a Queue's `add` and `addBulk` so every job is stamped and gets a producer span. Returns the
 * same queue object, so it is a one-line change where the queue is created.
 */
export function withWarden<Q extends Queue>(queue: Q, defaults: WardenMetadata = {}): Q {
  const add = queue.add.bind(queue);
  const addBulk = queue.addBulk.bind(queue);
  const produce = async <T>(name: string, run: (span: Span) => Promise<T>): Promise<T> => {
    const span = tracer().startSpan(`send ${queue.name}`, {
      kind: SpanKind.PRODUCER,
      attributes: { [sc.MESSAGING_SYSTEM]: 'bullmq', [sc.MESSAGING_DESTINATION]: queue.name, [sc.MESSAGING_OPERATION_TYPE]: 'send', [sc.MESSAGING_OPERATION_NAME]: 'add', [sc.WARDEN_JOB_NAME]: redactedName(name) },
    });
    try {
      return await context.with(trace.setSpan(context.active(), span), () => run(span));
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: redactor.redactText((err as Error).message) });
      throw err;
    } finally {
      span.end();
    }
  };
  (queue as Queue).add = ((name: string, data: unknown, opts?: JobsOptions) =>
    produce(name, async (span) => {
      const stamped = stampJobOptions(queue.name, opts, defaults, span);
      const cid = (stamped as Record<string, WardenJobStamp>)[WARDEN_OPTS_KEY].cid;
      span.setAttribute(sc.WARDEN_CORRELATION_ID, cid);
      const job = await add(name as never, data as never, stamped);
      if (job.id) span.setAttribute(sc.MESSAGING_MESSAGE_ID, job.id);
      return job;
    })) as Queue['add'];
  (queue as Queue).addBulk = ((jobs: { name: string; data: unknown; opts?: JobsOptions }[]) =>
    produce(jobs[0]?.name ?? 'bulk', async (span) =>
      addBulk(jobs.map((j) => ({ ...j, opts: stampJobOptions(queue.name, j.opts as JobsOptions, defaults, span) })) as never))) as Queue['addBulk'];
  return queue;
}

/** The context a job's attempt continues: Warden's stamp, else BullMQ telemetry's `tm`, else derived. */
function parentContext(job: Job, stamp: Partial<WardenJobStamp> | undefined, cid: string): Context {
  // Warden's own stamp with a bare traceparent (what withWarden writes): parsed once, here. A
  // tracestate, or BullMQ telemetry's carrier (the app's propagator wrote it), goes through extract.
  const direct = stamp?.tp && !stamp.tst ? remoteParent(context.active(), stamp.tp) : undefined;
  if (direct) return direct;
  const carrier = jobCarrier(job);
  if (parseTraceparent(carrier.traceparent)) return propagation.extract(context.active(), carrier);
  // No trace context at all: join the trace the sidecar derives for this correlation ID, under its job span.
  return trace.setSpanContext(context.active(), {
    traceId: traceIdForCorrelation(cid),
    spanId: stableSpanId('bullmq', job.queueName, job.id ?? ''),
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
  });
}

/** The trace context a job carries: Warden's stamp (`tp`, `tst`), else BullMQ telemetry's `tm` carrier. */
function jobCarrier(job: Job): Record<string, string> {
  const stamp = (job.opts as Record<string, unknown>)[WARDEN_OPTS_KEY] as Partial<WardenJobStamp> | undefined;
  const carrier: Record<string, string> = {};
  if (stamp?.tp) {
    carrier.traceparent = stamp.tp;
    if (stamp.tst) carrier.tracestate = stamp.tst;
  } else {
    // BullMQ stores telemetry context as `tm` in the hash and gives it back as opts.telemetry.metadata.
    const opts = job.opts as { tm?: unknown; telemetry?: { metadata?: unknown } };
    const tm = opts.telemetry?.metadata ?? opts.tm;
    if (typeof tm === 'string') {
      try { Object.assign(carrier, JSON.parse(tm)); } catch { /* not a carrier */ }
    }
  }
  return carrier;
}

const lastMarked = new Map<string, number>();

/** Tells the sidecar this queue's attempts are traced in-process (so it does not rebuild them). */
function markInstrumented(job: Job): void {
  const now = Date.now();
  const key = `${job.queueQualifiedName ?? job.queueName}`;
  if ((lastMarked.get(key) ?? 0) > now - INSTRUMENTED_TTL_MS / 3) return;
  lastMarked.set(key, now);
  type Setter = Promise<{ set(...a: unknown[]): Promise<unknown> }>;
  const q = (job as unknown as { queue: unknown }).queue as { client?: Setter; getBackend?: () => { client?: Setter } | undefined; opts?: { prefix?: string } };
  const prefix = q.opts?.prefix ?? 'bull';
  // BullMQ before 6.7 has the Redis client on the worker; 6.7 moved it to the worker's Redis backend.
  const client = q.client ?? q.getBackend?.()?.client;
  if (!client) { lastMarked.delete(key); return; }
  client.then((c) => c.set(instrumentedKey(prefix, job.queueName), '1', 'PX', INSTRUMENTED_TTL_MS)).catch(() => lastMarked.delete(key));
}

export interface WardenProcessorOptions {
  /**
   * `true` (default): one OpenTelemetry consumer span per attempt, made here in the worker.
   * `false`: context only. No span is made in the worker; the attempt's span context is put in scope
   * with the IDs the sidecar gives the `process <queue>` span it rebuilds from the event stream
   * (trace from the job's traceparent, else from its correlation ID; span ID from queue, job ID and
   * attempt), so the user's own child spans still parent correctly. It costs one hash per attempt
   * instead of a span, and needs the sidecar's span export on (the sidecar, not the worker, exports).
   */
  span?: boolean;
}

/**
 * Wraps a processor: one consumer span per attempt (`process <queue>`), the job's correlation ID in
 * scope for anything the processor adds or starts, errors recorded and re-thrown unchanged.
 * With `{ span: false }`, only the context (see WardenProcessorOptions).
 */
export function wardenProcessor<D = unknown, R = unknown, N extends string = string>(
  fn: (job: Job<D, R, N>, token?: string) => Promise<R>, options: WardenProcessorOptions = {},
) {
  if (options.span === false) return contextOnlyProcessor(fn);
  return async (job: Job<D, R, N>, token?: string): Promise<R> => {
    let span: Span | undefined;
    let cid: string;
    let parent: Context;
    try {
      const stamp = (job.opts as Record<string, unknown>)[WARDEN_OPTS_KEY] as Partial<WardenJobStamp> | undefined;
      cid = stamp?.cid ?? `bullmq:${job.queueName}:${job.id}`;
      parent = parentContext(job as Job, stamp, cid);
      const attributes: Attributes = {
        [sc.MESSAGING_SYSTEM]: 'bullmq',
        [sc.MESSAGING_DESTINATION]: job.queueName,
        [sc.MESSAGING_OPERATION_TYPE]: 'process',
        [sc.MESSAGING_OPERATION_NAME]: 'process',
        [sc.MESSAGING_MESSAGE_ID]: job.id ?? '',
        [sc.MESSAGING_CONVERSATION_ID]: cid,
        [sc.WARDEN_CORRELATION_ID]: cid,
        [sc.WARDEN_JOB_NAME]: redactedName(job.name),
        [sc.WARDEN_ATTEMPT]: job.attemptsMade + 1,
      };
      // Assigned, not spread in: a spread of a one-key object per job is measurable here.
      if (stamp?.model) attributes[sc.WARDEN_MODEL] = stamp.model;
      if (stamp?.model_version) attributes[sc.WARDEN_MODEL_VERSION] = stamp.model_version;
      span = tracer().startSpan(`process ${job.queueName}`, { kind: SpanKind.CONSUMER, attributes }, parent);
      // Only a recording span is a trace of the attempt: without an OTel SDK the sidecar rebuilds it.
      if (span.isRecording()) markInstrumented(job as Job);
    } catch {
      // Telemetry must never stop the job from running.
      return fn(job, token);
    }
    const active = trace.setSpan(parent, span);
    try {
      const result = await runWithCorrelation(active, cid, () => fn(job, token));
      span.setStatus({ code: SpanStatusCode.OK });
      return result;
    } catch (err) {
      span.recordException({ name: (err as Error)?.name, message: redactor.redactText(String((err as Error)?.message ?? err)) });
      span.setStatus({ code: SpanStatusCode.ERROR, message: redactor.redactText(String((err as Error)?.message ?? err)) });
      throw err;
    } finally {
      span.end();
    }
  };
}

/**
 * The span context the sidecar's rebuilt attempt span will have (agent/spans.ts,
 * collectors/bullmq/translate.ts): trace from the job's traceparent, else from its correlation ID;
 * span ID from queue, job ID and attempt. Computed on first read: most processors never start a
 * child span, and then the two hashes and the traceparent parse are never paid for.
 */
class AttemptSpanContext implements SpanContext {
  readonly isRemote = false;
  private parsed: ReturnType<typeof parseTraceparent> | undefined;
  private trace_: string | undefined;
  private span_: string | undefined;

  constructor(private readonly job: Job, private readonly cid: string) {}

  private parent(): ReturnType<typeof parseTraceparent> {
    if (this.parsed !== undefined) return this.parsed;
    return (this.parsed = parseTraceparent(jobCarrier(this.job).traceparent));
  }

  get traceId(): string { return (this.trace_ ??= this.parent()?.traceId ?? traceIdForCorrelation(this.cid)); }
  get spanId(): string { return (this.span_ ??= stableSpanId('bullmq', this.job.queueName, this.job.id ?? '', this.job.attemptsMade + 1)); }
  get traceFlags(): number { const p = this.parent(); return p ? p.flags & 1 : TraceFlags.SAMPLED; }
}

function contextOnlyProcessor<D, R, N extends string>(fn: (job: Job<D, R, N>, token?: string) => Promise<R>) {
  return (job: Job<D, R, N>, token?: string): Promise<R> => {
    let cid: string;
    let active: Context;
    try {
      const stamp = (job.opts as Record<string, unknown>)[WARDEN_OPTS_KEY] as Partial<WardenJobStamp> | undefined;
      cid = stamp?.cid ?? `bullmq:${job.queueName}:${job.id}`;
      active = trace.setSpanContext(context.active(), new AttemptSpanContext(job as Job, cid));
    } catch {
      return fn(job, token); // telemetry must never stop the job from running
    }
    return runWithCorrelation(active, cid, () => fn(job, token));
  };
}
