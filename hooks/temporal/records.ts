/**
 * What the workflow sandbox hands to the worker through a sink: plain data, built deterministically
 * inside the sandbox. IDs, digests and redaction are added outside (sinks.ts), where crypto is allowed.
 * Shared by the workflow interceptors (sandbox) and the worker sink, so pure types only.
 */
import type { Sink, Sinks } from '@temporalio/workflow';

/** Name of the sink the workflow interceptors call. */
export const WARDEN_SINK = 'warden';

export type WorkflowRecordKind = 'workflow.started' | 'workflow.completed' | 'workflow.failed' | 'signal' | 'update';

export interface WorkflowRecord {
  kind: WorkflowRecordKind;
  /**
   * Position of this record in its run, the same on every replay: with the run ID it names the record
   * (`attrs.record_seq`), and a replay that re-sends it gets the same event ID.
   */
  seq: number;
  /** Workflow time (deterministic inside the sandbox). */
  ts: number;
  cid: string;
  /** Incoming trace context of the run (client span or parent workflow), when known. */
  traceparent: string | null;
  /** Span of this run (see headers.workflowRunSpanId). */
  span_id: string;
  /** Span the run's span hangs under: the client's, the parent workflow run's, or none. */
  parent_span_id: string | null;
  model: string | null;
  model_version: string | null;
  policy: string | null;
  policy_version: string | null;
  /** Workflow arguments (started), signal or update arguments. Redacted outside the sandbox. */
  args: unknown[] | null;
  /** Signal or update name. */
  name: string | null;
  /** Correlation ID the signal or update itself carried, when it differs from the run's. */
  message_cid: string | null;
  /** The sender (a Warden client) recorded `signal.received` already. */
  client_recorded: boolean;
  result: unknown;
  error: string | null;
  error_type: string | null;
  duration_ms: number | null;
  continued_as_new: boolean;
  /** The update's ID (updates only; absent in records from older hook versions). */
  update_id?: string | null;
  /**
   * An update its validator refused. Temporal's history never holds it, so a replay never re-makes
   * this record: it takes no `seq` (which must stay the same on every replay) and is named by the
   * update ID instead.
   */
  rejected?: boolean;
}

export interface WardenWorkflowSinks extends Sinks {
  [WARDEN_SINK]: WardenSink;
}

export interface WardenSink extends Sink {
  record(rec: WorkflowRecord): void;
}
