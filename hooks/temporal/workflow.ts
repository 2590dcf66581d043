/**
 * `warden/temporal/workflow`: workflow interceptors, loaded into the sandbox through
 * `interceptors.workflowModules` (see index.ts, `wardenWorker()`). Bundled by Temporal's webpack, so
 * it imports only @temporalio/workflow and pure code.
 *
 * Replay safety: nothing here adds commands, timers, randomness or awaits; it only rewrites headers
 * of commands the workflow already issues and hands records to a sink, which the worker does not
 * call while replaying. Telemetry errors are swallowed: a workflow never fails because of Warden.
 */
import {
  ContinueAsNew, proxySinks, TemporalFailure, workflowInfo,
  type Headers, type WorkflowInterceptors, type WorkflowInterceptorsFactory,
} from '@temporalio/workflow';
import { incomingTrace, parseTraceparent, readStamp, TRACER_HEADER, WARDEN_HEADER, withStamp, withTracerData, workflowRunSpanId, formatTraceparent, type WardenTemporalStamp } from './headers.js';
import { WARDEN_SINK, type WardenWorkflowSinks, type WorkflowRecord, type WorkflowRecordKind } from './records.js';

interface RunState {
  stamp: WardenTemporalStamp;
  traceparent: string | null;
  traceId: string | null;
  spanId: string;
  parentSpanId: string | null;
  /**
   * The headers this run stamps on what it starts, encoded once per run (they do not change within
   * it): [0] for activities, children and signals, [1] for continue-as-new (a sibling: same parent).
   */
  outbound: [Headers | undefined, Headers | undefined];
}

function safe(fn: () => void): void {
  try { fn(); } catch { /* telemetry never breaks the workflow */ }
}

function messageText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export const interceptors: WorkflowInterceptorsFactory = (): WorkflowInterceptors => {
  const sink = proxySinks<WardenWorkflowSinks>()[WARDEN_SINK];
  let run: RunState | undefined;
  let seq = 0;
  // Signals and updates delivered with the start (signalWithStart) are handled before `execute`.
  const pending: (() => void)[] = [];

  const init = (headers: Headers): RunState => {
    const info = workflowInfo();
    const stamp = readStamp(headers) ?? { cid: `temporal:${info.workflowId}` };
    const trace = incomingTrace(headers, stamp);
    const parsed = parseTraceparent(trace?.traceparent);
    return {
      stamp,
      traceparent: trace?.traceparent ?? null,
      traceId: parsed?.traceId ?? null,
      spanId: workflowRunSpanId(info.workflowId, info.runId),
      parentSpanId: parsed?.spanId ?? stamp.psid ?? null,
      outbound: [undefined, undefined],
    };
  };

  const record = (kind: WorkflowRecordKind, extra: Partial<WorkflowRecord>): void => {
    if (!run) return;
    const s = run.stamp;
    // A rejected update is not in history: it must not move the replayed sequence of the others.
    const n = extra.rejected ? seq : seq++;
    sink.record({
      kind, seq: n, ts: Date.now(), cid: s.cid, traceparent: run.traceparent, span_id: run.spanId, parent_span_id: run.parentSpanId,
      model: s.model ?? null, model_version: s.model_version ?? null, policy: s.policy ?? null, policy_version: s.policy_version ?? null,
      args: null, name: null, message_cid: null, client_recorded: false, result: null, error: null, error_type: null,
      duration_ms: null, continued_as_new: false, ...extra,
    });
  };

  /** Headers for work this run starts: its correlation ID, and its run span as the parent. */
  const outbound = (headers: Headers, keepIncomingParent = false): Headers => {
    if (!run) return headers;
    const own = (run.outbound[keepIncomingParent ? 1 : 0] ??= stampHeaders(run, keepIncomingParent));
    // A `_tracer-data` already there (the official interceptor's own span) wins, as in withTracerData.
    return headers[TRACER_HEADER] ? { ...headers, [WARDEN_HEADER]: own[WARDEN_HEADER] } : { ...headers, ...own };
  };

  /** Warden's stamp (and `_tracer-data` when the run has a trace) for what the run starts, encoded. */
  const stampHeaders = (run: RunState, keepIncomingParent: boolean): Headers => {
    const s = run.stamp;
    const stamp: WardenTemporalStamp = { cid: s.cid, model: s.model, model_version: s.model_version, policy: s.policy, policy_version: s.policy_version };
    if (keepIncomingParent) {
      // A continued run is a sibling of this one: same parent, same trace.
      if (run.traceparent) stamp.tp = run.traceparent; else if (run.parentSpanId) stamp.psid = run.parentSpanId;
    } else if (run.traceId) {
      stamp.tp = formatTraceparent(run.traceId, run.spanId);
    } else {
      stamp.psid = run.spanId;
    }
    if (s.tst && stamp.tp) stamp.tst = s.tst; // W3C tracestate travels with the trace
    let out = withStamp({}, stamp);
    if (stamp.tp) out = withTracerData(out, { traceparent: stamp.tp, tracestate: stamp.tst });
    return out;
  };

  const rewrite = <I extends { headers: Headers }>(input: I, keepIncomingParent = false): I => {
    try {
      return { ...input, headers: outbound(input.headers, keepIncomingParent) };
    } catch {
      return input;
    }
  };

  const message = (kind: 'signal' | 'update', name: string, args: unknown[], headers: Headers, update?: { id: string; error?: unknown }): void => {
    safe(() => {
      const own = readStamp(headers);
      const rejected = update !== undefined && 'error' in update;
      const fire = () => safe(() => record(kind, {
        name, args, client_recorded: own?.rec === 1 || own?.rec === 2, message_cid: own && run && own.cid !== run.stamp.cid ? own.cid : null,
        ...(update ? { update_id: update.id } : {}),
        ...(rejected ? { rejected: true, error: messageText(update.error), error_type: update.error instanceof Error ? update.error.name : null } : {}),
      }));
      if (run) fire(); else pending.push(fire);
    });
  };

  return {
    inbound: [{
      async execute(input, next) {
        const started = Date.now();
        safe(() => {
          run = init(input.headers);
          // A Warden client recorded the start of the first run already; children, schedules, cron
          // runs and retries (which inherit the first run's headers) are recorded here.
          const info = workflowInfo();
          const laterRun = !!info.firstExecutionRunId && info.runId !== info.firstExecutionRunId;
          if (run.stamp.rec !== 1 || laterRun) record('workflow.started', { args: input.args });
          for (const fire of pending.splice(0)) fire();
        });
        try {
          const result = await next(input);
          safe(() => record('workflow.completed', { result, duration_ms: Date.now() - started }));
          return result;
        } catch (err) {
          safe(() => {
            if (err instanceof ContinueAsNew) record('workflow.completed', { continued_as_new: true, duration_ms: Date.now() - started });
            // Other errors fail the workflow task (retried), not the workflow: nothing to record yet.
            else if (err instanceof TemporalFailure) record('workflow.failed', { error: messageText(err), error_type: err.name, duration_ms: Date.now() - started });
          });
          throw err;
        }
      },
      async handleSignal(input, next) {
        message('signal', input.signalName, input.args, input.headers);
        return next(input);
      },
      // Validators run only when an update arrives, never on replay (a rejected update leaves nothing
      // in history): the rejection is recorded here or nowhere. Nothing random is called on this path.
      validateUpdate(input, next) {
        try {
          next(input);
        } catch (err) {
          message('update', input.name, input.args, input.headers, { id: input.updateId, error: err });
          throw err;
        }
      },
      async handleUpdate(input, next) {
        message('update', input.name, input.args, input.headers, { id: input.updateId });
        return next(input);
      },
    }],
    outbound: [{
      scheduleActivity: (input, next) => next(rewrite(input)),
      scheduleLocalActivity: (input, next) => next(rewrite(input)),
      startChildWorkflowExecution: (input, next) => next(rewrite(input)),
      signalWorkflow: (input, next) => next(rewrite(input)),
      continueAsNew: (input, next) => next(rewrite(input, true)),
    }],
  };
};
