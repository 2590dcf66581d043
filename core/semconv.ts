/**
 * OpenTelemetry messaging semantic conventions (still "incubating" upstream, so the strings are
 * named here once) plus Warden's own attributes. Used by in-process hooks and by the sidecar's
 * span rebuilder, so both describe a job the same way.
 */
export const MESSAGING_SYSTEM = 'messaging.system';
export const MESSAGING_DESTINATION = 'messaging.destination.name';
export const MESSAGING_OPERATION_TYPE = 'messaging.operation.type';
export const MESSAGING_OPERATION_NAME = 'messaging.operation.name';
export const MESSAGING_MESSAGE_ID = 'messaging.message.id';
export const MESSAGING_CONVERSATION_ID = 'messaging.message.conversation_id';

export const WARDEN_CORRELATION_ID = 'warden.correlation_id';
export const WARDEN_JOB_NAME = 'warden.job.name';
export const WARDEN_ATTEMPT = 'warden.attempt';
export const WARDEN_MODEL = 'warden.model';
export const WARDEN_MODEL_VERSION = 'warden.model_version';
export const WARDEN_POLICY = 'warden.policy';
export const WARDEN_POLICY_VERSION = 'warden.policy_version';
export const WARDEN_INPUT_DIGEST = 'warden.input_digest';
