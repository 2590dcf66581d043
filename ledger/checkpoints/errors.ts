/** Errors of signed checkpoints: keys, the checkpoint file, and a spool that no longer matches them. */
import type { ErrorCode } from '../../core/errors.js';
import { LedgerError } from '../errors.js';

export class CheckpointError extends LedgerError {
  override name = 'CheckpointError';
  /** The file system's error code when a key or checkpoint file could not be read (e.g. ENOENT). */
  readonly errno: string | undefined;
  /** `code` (default WARDEN_LEDGER) decides the CLI exit code: a key or argument problem is a usage error, a checkpoint the spool does not reproduce is tampering. */
  constructor(message: string, options: { errno?: string; code?: ErrorCode } = {}) {
    super(message, { code: options.code });
    this.errno = options.errno;
  }
}

/**
 * At start, the spool does not reproduce the last signed checkpoint (it was rewritten, truncated or
 * restored from an older backup). The agent refuses to sign checkpoints over it: that would launder
 * the change.
 */
export class CheckpointMismatchError extends CheckpointError {
  override name = 'CheckpointMismatchError';
  override readonly code = 'WARDEN_TAMPERED' as const;
  override readonly exitCode = 1 as const;
  override readonly httpStatus = 409;
}
