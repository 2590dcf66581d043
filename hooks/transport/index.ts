/** Worker-side transport to the sidecar; re-exported by the public entry points (warden/bullmq, warden/temporal). */
export { configureWarden, createTransport, WardenTransportConfigError, type ConfigureWardenOptions, type WardenHandle } from './configure.js';
export { Outbox, TransportBusyError, TransportRejectedError, type OutboxItem, type OutboxLogger, type OutboxOptions, type OutboxStats, type DropReason, type Transport } from './outbox.js';
export { NatsTransport, ensureEventStream, EVENT_STREAM, EVENT_SUBJECT_PREFIX, type NatsTransportOptions } from './nats.js';
export { HttpTransport, type HttpTransportOptions } from './http.js';
export { watchBreakers, BreakerWatch, type WatchBreakersOptions } from './breaker-watch.js';
