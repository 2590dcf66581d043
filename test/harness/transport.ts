import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { makeEvent, type WardenEvent } from '../../core/event.js';

/** Everything in a stream, read by a fresh ordered consumer (with each message's ID header and subject). */
export async function streamMessages(url: string, stream = 'WARDEN_EVENTS'): Promise<{ ev: WardenEvent; msgId: string | undefined; subject: string }[]> {
  const nc = await connect({ servers: url });
  try {
    const n = (await (await jetstreamManager(nc)).streams.info(stream)).state.messages;
    if (n === 0) return [];
    const consumer = await jetstream(nc).consumers.get(stream);
    const out: { ev: WardenEvent; msgId: string | undefined; subject: string }[] = [];
    const iter = await consumer.fetch({ max_messages: n, expires: 5000 });
    for await (const m of iter) {
      out.push({ ev: m.json<WardenEvent>(), msgId: m.headers?.get('Nats-Msg-Id'), subject: m.subject });
      if (out.length === n) break;
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** A Temporal activity event as the interceptors emit it (workflow type in attrs, job_name null). */
export function activityEvent(i: number, init: Partial<WardenEvent> = {}): WardenEvent {
  return makeEvent({
    kind: 'activity.completed',
    source: 'temporal',
    queue: 'tq-agents',
    workflow_id: `wf-${i}`,
    run_id: `run-${i}`,
    activity_type: 'callModel',
    attempt: 1,
    duration_ms: 12,
    correlation_id: `corr-${i}`,
    attrs: { workflow_type: 'agentWorkflow', n: i },
    ...init,
  });
}

export { until } from './index.js';
