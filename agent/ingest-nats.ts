/**
 * Wires the NATS consumer of hook events into the sidecar when `nats.url` is set: valid events go
 * through EventIngest (dedupe, durable append), malformed ones are counted and logged with the field
 * that was wrong. Errors (NATS down, a failed append) are logged at most every 5 s; the consumer retries.
 */
import type { Logger } from 'pino';
import { NatsEventConsumer } from '../collectors/nats/consumer.js';
import { maskUrlUserinfo, natsServers, type WardenConfig } from './config.js';
import type { EventIngest } from './ingest.js';

export function startNatsIngest(config: WardenConfig, ingest: EventIngest, logger: Logger): NatsEventConsumer | null {
  const n = config.nats;
  if (!n.url) return null;
  let lastLogged = 0;
  const consumer = new NatsEventConsumer({
    url: natsServers(n.url),
    replicas: n.replicas,
    stream: n.eventStream,
    durable: n.consumer,
    batchSize: n.batchSize,
    ackWaitMs: n.ackWaitMs,
    // JetStream does not tell a consumer who published a message (no user or account is stamped on it,
    // and a worker could set any header itself), so the stream it arrived on is the credential named.
    sink: async (events) => { await ingest.ingest(events, { transport: 'nats', via: `nats:${n.eventStream}` }); },
    onInvalid: (info) => {
      ingest.invalid('nats');
      logger.warn({ subject: info.subject, stream_seq: info.streamSeq, field: info.field }, `terminated a malformed event message: ${info.message}`);
    },
    onError: (where, err) => {
      if (Date.now() - lastLogged < 5000) return;
      lastLogged = Date.now();
      logger.warn({ where, err: err.message }, 'consuming hook events from NATS failed (retrying; unacknowledged messages are redelivered)');
    },
  });
  consumer.start();
  logger.info({ url: maskUrlUserinfo(n.url), stream: n.eventStream, consumer: n.consumer }, 'consuming hook events from NATS JetStream');
  return consumer;
}
