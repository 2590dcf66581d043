/**
 * The NATS JetStream stream that carries hook events to the sidecar: its name, subjects and the one
 * function both sides call to make sure it exists (workers before publishing, the sidecar before
 * consuming). A wire contract, like the breaker KV format in breakers.ts.
 */
import { nanos, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, StorageType } from '@nats-io/jetstream';

export const EVENT_STREAM = 'WARDEN_EVENTS';
export const EVENT_SUBJECT_PREFIX = 'warden.events';

/** The stream both sides ensure: the workers before publishing, the sidecar before consuming. */
export async function ensureEventStream(nc: NatsConnection, o: { stream?: string; subjectPrefix?: string; duplicateWindowMs?: number; maxAgeMs?: number; timeoutMs?: number; replicas?: number } = {}): Promise<void> {
  const name = o.stream ?? EVENT_STREAM;
  const jsm = await jetstreamManager(nc, { timeout: o.timeoutMs ?? 5000 });
  try {
    await jsm.streams.info(name);
    return;
  } catch (err) {
    if (!/stream not found/i.test((err as Error).message)) throw err;
  }
  try {
    await jsm.streams.add({
      name,
      subjects: [`${o.subjectPrefix ?? EVENT_SUBJECT_PREFIX}.>`],
      storage: StorageType.File,
      duplicate_window: nanos(o.duplicateWindowMs ?? 120_000),
      // Transit, not storage: acknowledged events live in the sidecar's ledger. A sidecar away
      // longer than this loses the oldest unconsumed ones.
      max_age: nanos(o.maxAgeMs ?? 7 * 24 * 3600_000),
      // 3 on a three-node cluster: every acknowledged publish is on two nodes at least, and the stream
      // (and its consumers, which inherit it) survives the loss of one node.
      num_replicas: o.replicas ?? 1,
    });
  } catch (err) {
    // Another worker or sidecar created it in the meantime.
    if (!/already in use/i.test((err as Error).message)) throw err;
  }
}
