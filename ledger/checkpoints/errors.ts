/** Errors of signed checkpoints: keys, the checkpoint file, and a spool that no longer matches them. */
import { LedgerError } from '../errors.js';

export class CheckpointError extends LedgerError {
  override name = 'CheckpointError';
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}

/**
 * At start, the spool does not reproduce the last signed checkpoint (it was rewritten, truncated or
 * restored from an older backup). The agent refuses to sign checkpoints over it: that would launder
 * the change.
 */
export class CheckpointMismatchError extends CheckpointError {
  override name = 'CheckpointMismatchError';
}
