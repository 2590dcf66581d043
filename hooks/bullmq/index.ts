/** `warden/bullmq`: the public surface for BullMQ producers and workers. */
export { withWarden, wardenProcessor, stampJobOptions, type WardenMetadata, type WardenProcessorOptions } from './processor.js';
export { withCorrelation, currentCorrelationId } from '../correlation.js';
export { WARDEN_OPTS_KEY, type WardenJobStamp } from '../../core/bullmq-convention.js';
export { configureWarden, WardenTransportConfigError, type ConfigureWardenOptions, type WardenHandle } from '../transport/index.js';
