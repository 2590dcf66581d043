/**
 * Test-only workflow interceptor module, loaded after Warden's: reports the headers of every command
 * the workflow issues (through a sink called during replay too), so tests see what Warden stamped.
 */
import { proxySinks, type Headers, type Sinks, type WorkflowInterceptorsFactory } from '@temporalio/workflow';

export interface ProbeSinks extends Sinks {
  probe: { headers(command: string, target: string, headers: Headers): void };
}

export const interceptors: WorkflowInterceptorsFactory = () => {
  const { probe } = proxySinks<ProbeSinks>();
  return {
    outbound: [{
      scheduleActivity: (input, next) => { probe.headers('activity', input.activityType, input.headers); return next(input); },
      startChildWorkflowExecution: (input, next) => { probe.headers('child', input.workflowType, input.headers); return next(input); },
      continueAsNew: (input, next) => { probe.headers('continueAsNew', input.options.workflowType, input.headers); return next(input); },
    }],
  };
};
