/**
 * A Temporal `ConnectionLike` with no server behind it: its WorkflowService is the real generated
 * protobuf service (`WorkflowService.create(rpcImpl)`), so every call is encoded exactly as it would
 * go over gRPC; the rpcImpl decodes the bytes, keeps the request and answers like a server would.
 */
import type { ConnectionLike } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

const svc = temporal.api.workflowservice.v1 as unknown as Record<string, {
  decode(b: Uint8Array): Record<string, any>;
  fromObject(o: object): unknown;
  encode(m: unknown): { finish(): Uint8Array };
}>;

export class RecordingConnection implements ConnectionLike {
  /** Every call, decoded, with the time it was made. */
  readonly requests: { method: string; request: Record<string, any>; at: number }[] = [];
  plugins = [];
  operatorService = {} as ConnectionLike['operatorService'];
  readonly workflowService: ConnectionLike['workflowService'];
  private runs = 0;

  constructor(private readonly answer: (method: string, req: Record<string, any>) => object = (m, r) => this.defaultAnswer(m, r)) {
    this.workflowService = temporal.api.workflowservice.v1.WorkflowService.create((method, data, callback) => {
      try {
        const name = (method as { name: string }).name;
        const request = svc[`${name}Request`].decode(data);
        this.requests.push({ method: name, request, at: Date.now() });
        const Resp = svc[`${name}Response`];
        callback(null, Resp.encode(Resp.fromObject(this.answer(name, request))).finish());
      } catch (err) {
        callback(err as Error, null);
      }
    }, false, false);
  }

  private defaultAnswer(method: string, req: Record<string, any>): object {
    switch (method) {
      case 'StartWorkflowExecution':
      case 'SignalWithStartWorkflowExecution':
        return { runId: `run-${++this.runs}`, started: true };
      case 'UpdateWorkflowExecution':
        return {
          updateRef: { workflowExecution: { workflowId: req.workflowExecution?.workflowId, runId: 'run-u' }, updateId: req.request?.meta?.updateId },
          outcome: { success: { payloads: [] } },
          stage: 'UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED',
        };
      case 'ExecuteMultiOperation': {
        const [start, update] = req.operations as Record<string, any>[];
        const exec = { workflowId: start.startWorkflow.workflowId, runId: `run-${++this.runs}` };
        return {
          responses: [
            { startWorkflow: { runId: exec.runId, started: true } },
            { updateWorkflow: { updateRef: { workflowExecution: exec, updateId: update.updateWorkflow.request.meta.updateId }, outcome: { success: { payloads: [] } }, stage: 'UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED' } },
          ],
        };
      }
      default:
        return {};
    }
  }

  of(method: string): Record<string, any>[] {
    return this.requests.filter((r) => r.method === method).map((r) => r.request);
  }

  /** When the i-th call of `method` was made (epoch ms). */
  timeOf(method: string, i = 0): number {
    return this.requests.filter((r) => r.method === method)[i].at;
  }

  async close(): Promise<void> {}
  async ensureConnected(): Promise<void> {}
  withDeadline<R>(_d: number | Date, fn: () => Promise<R>): Promise<R> { return fn(); }
  withMetadata<R>(_m: unknown, fn: () => Promise<R>): Promise<R> { return fn(); }
  withAbortSignal<R>(_s: AbortSignal, fn: () => Promise<R>): Promise<R> { return fn(); }
}
