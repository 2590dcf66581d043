/**
 * Client interceptor: stamps Warden's header (correlation ID from the caller's scope or generated,
 * W3C trace context of the active span, model/policy metadata) and `_tracer-data` onto start,
 * signalWithStart, update-with-start, signal and update calls, and records `workflow.started` /
 * `signal.received` once the server accepted the call. Telemetry never fails the call.
 */
import { context, propagation, trace } from '@opentelemetry/api';
import type {
  WorkflowClientInterceptor, WorkflowSignalInput, WorkflowSignalWithStartInput, WorkflowStartInput, WorkflowStartOutput,
  WorkflowStartUpdateInput, WorkflowStartUpdateOutput, WorkflowStartUpdateWithStartInput, WorkflowStartUpdateWithStartOutput, Next,
} from '@temporalio/client';
import type { Payload } from '@temporalio/common';
import { currentCorrelationId } from '../correlation.js';
import { makeEvent, type EventAttrs } from '../../core/event.js';
import { newCorrelationId, stableSpanId, traceIdForCorrelation } from '../../core/ids.js';
import { normalizeInput } from '../../core/input.js';
import { formatTraceparent, parseTraceparent, withStamp, withTracerData, workflowRunSpanId, type TraceCarrier, type WardenTemporalStamp } from './headers.js';
import { metadataFrom, type Resolved } from './options.js';

type Headers = Record<string, Payload>;

interface Stamped { headers: Headers; stamp: WardenTemporalStamp; traceId: string; parentSpanId: string | null }

/** The active span's context as a W3C carrier (propagator if registered, else the span context itself). */
function activeCarrier(): TraceCarrier {
  const carrier: Record<string, string> = {};
  try { propagation.inject(context.active(), carrier); } catch { /* no usable propagator */ }
  if (!parseTraceparent(carrier.traceparent)) {
    const sc = trace.getSpanContext(context.active());
    if (sc && trace.isSpanContextValid(sc)) return { traceparent: formatTraceparent(sc.traceId, sc.spanId, (sc.traceFlags & 1) === 1), tracestate: sc.traceState?.serialize() || undefined };
    return {};
  }
  return { traceparent: carrier.traceparent, tracestate: carrier.tracestate };
}

export class WardenWorkflowClientInterceptor implements WorkflowClientInterceptor {
  constructor(private readonly r: Resolved) {}

  private stamp(headers: Headers, args: unknown[] | null, rec: 1 | 2 = 1): Stamped | undefined {
    try {
      const cid = currentCorrelationId() ?? newCorrelationId();
      const carrier = activeCarrier();
      const parsed = parseTraceparent(carrier.traceparent);
      const meta = metadataFrom(undefined, args, this.r);
      const stamp: WardenTemporalStamp = { cid, tp: carrier.traceparent, tst: carrier.tracestate, rec };
      for (const [k, v] of Object.entries(meta)) if (v !== null) (stamp as unknown as Record<string, string>)[k] = v;
      const out = withTracerData(withStamp(headers, stamp), carrier);
      return { headers: out, stamp, traceId: parsed?.traceId ?? traceIdForCorrelation(cid), parentSpanId: parsed?.spanId ?? null };
    } catch {
      return undefined;
    }
  }

  private record(s: Stamped, init: { kind: 'workflow.started' | 'signal.received'; span_id: string; queue?: string; job_name?: string; workflow_id: string; run_id?: string; args: unknown[] }, attrs: EventAttrs): void {
    try {
      const input = normalizeInput(init.args, this.r.redactor, this.r.opts.inputLimits);
      const a: EventAttrs = { ...attrs };
      if (s.parentSpanId) a.parent_span_id = s.parentSpanId;
      if (init.job_name) a.workflow_type = init.job_name;
      this.r.emit(makeEvent({
        kind: init.kind, source: 'temporal', correlation_id: s.stamp.cid, trace_id: s.traceId, span_id: init.span_id,
        queue: init.queue ?? null, job_name: init.job_name ?? null, workflow_id: init.workflow_id, run_id: init.run_id ?? null,
        model: s.stamp.model ?? null, model_version: s.stamp.model_version ?? null, policy: s.stamp.policy ?? null, policy_version: s.stamp.policy_version ?? null,
        input: input.input, input_digest: input.input_digest, attrs: a,
      }));
    } catch { /* the call succeeded; a lost record is better than a failed call */ }
  }

  private started(s: Stamped | undefined, workflowType: string, opts: { workflowId: string; taskQueue: string; args: unknown[] }, runId: string): void {
    if (!s) return;
    this.record(s, {
      kind: 'workflow.started', span_id: workflowRunSpanId(opts.workflowId, runId), queue: opts.taskQueue, job_name: workflowType,
      workflow_id: opts.workflowId, run_id: runId, args: opts.args,
    }, { recorded_by: 'client' });
  }

  private message(s: Stamped | undefined, type: 'signal' | 'update', name: string, workflowId: string, runId: string | undefined, args: unknown[], extra: EventAttrs = {}): void {
    if (!s) return;
    this.record(s, {
      kind: 'signal.received', span_id: stableSpanId('temporal', type, workflowId, name, s.stamp.cid, Date.now(), Math.random()),
      workflow_id: workflowId, run_id: runId, args,
    }, { signal_name: this.r.redactor.redactText(name), message_type: type, recorded_by: 'client', ...extra });
  }

  async startWithDetails(input: WorkflowStartInput, next: Next<WorkflowClientInterceptor, 'startWithDetails'>): Promise<WorkflowStartOutput> {
    // With a conflict policy the call may return a run that already existed: let the workflow record its own start.
    const mayReuse = (input.options as { workflowIdConflictPolicy?: unknown }).workflowIdConflictPolicy !== undefined;
    const s = this.stamp(input.headers, input.options.args, mayReuse ? 2 : 1);
    const out = await next(s ? { ...input, headers: s.headers } : input);
    if (!mayReuse) this.started(s, input.workflowType, input.options, out.runId);
    return out;
  }

  // signalWithStart and update-with-start reach an existing run when there is one: the client records
  // the message, and the workflow records a start only if one really happened (rec: 2).
  async signalWithStart(input: WorkflowSignalWithStartInput, next: Next<WorkflowClientInterceptor, 'signalWithStart'>): Promise<string> {
    const s = this.stamp(input.headers, input.options.args, 2);
    const runId = await next(s ? { ...input, headers: s.headers } : input);
    this.message(s, 'signal', input.signalName, input.options.workflowId, runId, input.signalArgs);
    return runId;
  }

  async startUpdateWithStart(input: WorkflowStartUpdateWithStartInput, next: Next<WorkflowClientInterceptor, 'startUpdateWithStart'>): Promise<WorkflowStartUpdateWithStartOutput> {
    const s = this.stamp(input.workflowStartHeaders, input.workflowStartOptions.args, 2);
    const u = s ? { ...s, headers: withTracerData(withStamp(input.updateHeaders, s.stamp), { traceparent: s.stamp.tp, tracestate: s.stamp.tst }) } : undefined;
    const out = await next(s && u ? { ...input, workflowStartHeaders: s.headers, updateHeaders: u.headers } : input);
    const runId = out.workflowExecution.runId ?? '';
    this.message(u, 'update', input.updateName, input.workflowStartOptions.workflowId, runId, input.updateArgs, { update_id: out.updateId });
    return out;
  }

  async signal(input: WorkflowSignalInput, next: Next<WorkflowClientInterceptor, 'signal'>): Promise<void> {
    const s = this.stamp(input.headers, null);
    await next(s ? { ...input, headers: s.headers } : input);
    this.message(s, 'signal', input.signalName, input.workflowExecution.workflowId, input.workflowExecution.runId, input.args);
  }

  async startUpdate(input: WorkflowStartUpdateInput, next: Next<WorkflowClientInterceptor, 'startUpdate'>): Promise<WorkflowStartUpdateOutput> {
    const s = this.stamp(input.headers, null);
    const out = await next(s ? { ...input, headers: s.headers } : input);
    // Known at once when the call waited for completion: a validator's refusal is not a receipt.
    const outcome: EventAttrs = out.outcome?.failure ? { update_outcome: 'rejected' } : out.outcome?.success ? { update_outcome: 'completed' } : {};
    this.message(s, 'update', input.updateName, input.workflowExecution.workflowId, out.workflowRunId, input.args, { update_id: out.updateId, ...outcome });
    return out;
  }
}
