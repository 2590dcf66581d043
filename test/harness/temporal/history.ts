/**
 * Builds Temporal histories by hand (no server runs here), as a real server would have written them
 * for the workflows in workflows.ts. Replaying them proves the interceptors issue the same commands.
 */
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { temporal } from '@temporalio/proto';

type Attrs = Record<string, unknown>;

export class HistoryBuilder {
  private readonly events: Attrs[] = [];
  private t: number;

  /** `stepMs`: time between consecutive events (a history built as things really happen uses 1 ms and `at`). */
  constructor(readonly taskQueue = 'claims', start = Date.UTC(2026, 0, 5, 9, 0, 0), private readonly stepMs = 1000) {
    this.t = start;
  }

  /** The next events happen at `ms` (never earlier than the last one): workflow time follows the real clock. */
  at(ms: number): this {
    this.t = Math.max(this.t, ms - this.stepMs);
    return this;
  }

  get lastId(): number {
    return this.events.length;
  }

  add(type: string, key: string, attrs: Attrs): number {
    this.t += this.stepMs;
    const id = this.events.length + 1;
    this.events.push({ eventId: id, eventTime: { seconds: Math.floor(this.t / 1000), nanos: (this.t % 1000) * 1e6 }, eventType: `EVENT_TYPE_${type}`, [key]: attrs });
    return id;
  }

  started(workflowType: string, args: unknown[], opts: { runId: string; header?: Record<string, Payload>; parent?: { workflowId: string; runId: string }; signalsFirst?: { name: string; args: unknown[]; header?: Record<string, Payload> }[] }): this {
    this.add('WORKFLOW_EXECUTION_STARTED', 'workflowExecutionStartedEventAttributes', {
      workflowType: { name: workflowType }, taskQueue: { name: this.taskQueue, kind: 'TASK_QUEUE_KIND_NORMAL' },
      input: { payloads: args.map((a) => defaultPayloadConverter.toPayload(a)) },
      workflowTaskTimeout: { seconds: 10 }, originalExecutionRunId: opts.runId, firstExecutionRunId: opts.runId, attempt: 1,
      identity: 'history-builder', ...(opts.header ? { header: { fields: opts.header } } : {}),
      ...(opts.parent ? { parentWorkflowNamespace: 'default', parentWorkflowExecution: opts.parent, parentInitiatedEventId: 11 } : {}),
    });
    // signalWithStart: the signal lands before the first workflow task.
    for (const sig of opts.signalsFirst ?? []) this.signalEvent(sig.name, sig.args, sig.header);
    return this.task();
  }

  /** WorkflowTaskScheduled/Started/Completed: one activation and its commands. */
  task(): this {
    const scheduled = this.add('WORKFLOW_TASK_SCHEDULED', 'workflowTaskScheduledEventAttributes', { taskQueue: { name: this.taskQueue }, startToCloseTimeout: { seconds: 10 }, attempt: 1 });
    const started = this.add('WORKFLOW_TASK_STARTED', 'workflowTaskStartedEventAttributes', { scheduledEventId: scheduled, identity: 'worker', requestId: `r${scheduled}` });
    this.add('WORKFLOW_TASK_COMPLETED', 'workflowTaskCompletedEventAttributes', { scheduledEventId: scheduled, startedEventId: started, identity: 'worker' });
    return this;
  }

  private completedTask(): number {
    return this.lastId;
  }

  activity(activityId: string, activityType: string, result: unknown): this {
    const wft = this.completedTask();
    const scheduled = this.add('ACTIVITY_TASK_SCHEDULED', 'activityTaskScheduledEventAttributes', {
      activityId, activityType: { name: activityType }, taskQueue: { name: this.taskQueue }, workflowTaskCompletedEventId: wft,
      startToCloseTimeout: { seconds: 60 }, scheduleToCloseTimeout: { seconds: 0 }, heartbeatTimeout: { seconds: 0 },
    });
    const started = this.add('ACTIVITY_TASK_STARTED', 'activityTaskStartedEventAttributes', { scheduledEventId: scheduled, identity: 'worker', requestId: `a${scheduled}`, attempt: 1 });
    this.add('ACTIVITY_TASK_COMPLETED', 'activityTaskCompletedEventAttributes', {
      scheduledEventId: scheduled, startedEventId: started, identity: 'worker', result: { payloads: [defaultPayloadConverter.toPayload(result)] },
    });
    return this.task();
  }

  child(workflowId: string, workflowType: string, runId: string, args: unknown[], result: unknown): this {
    const wft = this.completedTask();
    const initiated = this.add('START_CHILD_WORKFLOW_EXECUTION_INITIATED', 'startChildWorkflowExecutionInitiatedEventAttributes', {
      namespace: 'default', workflowId, workflowType: { name: workflowType }, taskQueue: { name: this.taskQueue },
      input: { payloads: args.map((a) => defaultPayloadConverter.toPayload(a)) }, workflowTaskCompletedEventId: wft,
      workflowIdReusePolicy: 'WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE', parentClosePolicy: 'PARENT_CLOSE_POLICY_TERMINATE',
    });
    const exec = { workflowId, runId };
    const started = this.add('CHILD_WORKFLOW_EXECUTION_STARTED', 'childWorkflowExecutionStartedEventAttributes', {
      namespace: 'default', initiatedEventId: initiated, workflowExecution: exec, workflowType: { name: workflowType },
    });
    this.task();
    this.add('CHILD_WORKFLOW_EXECUTION_COMPLETED', 'childWorkflowExecutionCompletedEventAttributes', {
      namespace: 'default', initiatedEventId: initiated, startedEventId: started, workflowExecution: exec, workflowType: { name: workflowType },
      result: { payloads: [defaultPayloadConverter.toPayload(result)] },
    });
    return this.task();
  }

  signal(signalName: string, args: unknown[], header?: Record<string, Payload>): this {
    this.signalEvent(signalName, args, header);
    return this.task();
  }

  private signalEvent(signalName: string, args: unknown[], header?: Record<string, Payload>): void {
    this.add('WORKFLOW_EXECUTION_SIGNALED', 'workflowExecutionSignaledEventAttributes', {
      signalName, input: { payloads: args.map((a) => defaultPayloadConverter.toPayload(a)) }, identity: 'approver',
      ...(header ? { header: { fields: header } } : {}),
    });
  }

  /**
   * An update delivered in the workflow task after the last one, accepted and completed in it. The
   * workflow task is left open (Scheduled, Started); `completed` or `task` closes it.
   */
  update(updateId: string, name: string, args: unknown[], result: unknown, header?: Record<string, Payload>): this {
    const scheduled = this.add('WORKFLOW_TASK_SCHEDULED', 'workflowTaskScheduledEventAttributes', { taskQueue: { name: this.taskQueue }, startToCloseTimeout: { seconds: 10 }, attempt: 1 });
    const started = this.add('WORKFLOW_TASK_STARTED', 'workflowTaskStartedEventAttributes', { scheduledEventId: scheduled, identity: 'worker', requestId: `r${scheduled}` });
    this.add('WORKFLOW_TASK_COMPLETED', 'workflowTaskCompletedEventAttributes', { scheduledEventId: scheduled, startedEventId: started, identity: 'worker' });
    const accepted = this.add('WORKFLOW_EXECUTION_UPDATE_ACCEPTED', 'workflowExecutionUpdateAcceptedEventAttributes', {
      protocolInstanceId: updateId, acceptedRequestMessageId: `${updateId}/request`, acceptedRequestSequencingEventId: scheduled,
      acceptedRequest: {
        meta: { updateId, identity: 'approver' },
        input: { name, args: { payloads: args.map((a) => defaultPayloadConverter.toPayload(a)) }, ...(header ? { header: { fields: header } } : {}) },
      },
    });
    this.add('WORKFLOW_EXECUTION_UPDATE_COMPLETED', 'workflowExecutionUpdateCompletedEventAttributes', {
      meta: { updateId, identity: 'approver' }, acceptedEventId: accepted, outcome: { success: { payloads: [defaultPayloadConverter.toPayload(result)] } },
    });
    return this;
  }

  completed(result: unknown): temporal.api.history.v1.History {
    this.add('WORKFLOW_EXECUTION_COMPLETED', 'workflowExecutionCompletedEventAttributes', {
      result: { payloads: [defaultPayloadConverter.toPayload(result)] }, workflowTaskCompletedEventId: this.completedTask(),
    });
    return this.build();
  }

  continuedAsNew(workflowType: string, args: unknown[], newRunId: string): temporal.api.history.v1.History {
    this.add('WORKFLOW_EXECUTION_CONTINUED_AS_NEW', 'workflowExecutionContinuedAsNewEventAttributes', {
      newExecutionRunId: newRunId, workflowType: { name: workflowType }, taskQueue: { name: this.taskQueue },
      input: { payloads: args.map((a) => defaultPayloadConverter.toPayload(a)) }, workflowTaskCompletedEventId: this.completedTask(),
      workflowTaskTimeout: { seconds: 10 }, workflowRunTimeout: { seconds: 0 },
    });
    return this.build();
  }

  /**
   * The history as a worker gets it with the newest workflow task: up to that task's
   * WorkflowTaskStarted. Replaying it runs the task's activation as new work.
   */
  pendingTask(): temporal.api.history.v1.History {
    const last = this.events[this.events.length - 1];
    const open = last?.eventType === 'EVENT_TYPE_WORKFLOW_TASK_COMPLETED' ? this.events.slice(0, -1) : this.events;
    return temporal.api.history.v1.History.fromObject({ events: open });
  }

  build(): temporal.api.history.v1.History {
    return temporal.api.history.v1.History.fromObject({ events: this.events });
  }
}
