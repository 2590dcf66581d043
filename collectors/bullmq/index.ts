/** `warden/bullmq`: the public surface for BullMQ producers and workers. */
export { withWarden, wardenProcessor, withCorrelation, currentCorrelationId, stampJobOptions, type WardenMetadata } from './hooks.js';
export { WARDEN_OPTS_KEY, type WardenJobStamp } from './convention.js';
