/**
 * Named errors of the ledger. Each message says what happened and what the operator can do, because
 * these surface in the CLI and in agent logs where nobody has the code at hand.
 */
import { WardenError, type ErrorCode } from '../core/errors.js';

export class LedgerError extends WardenError {
  override name = 'LedgerError';
  constructor(message: string, options?: { cause?: unknown; code?: ErrorCode }) {
    super(options?.code ?? 'WARDEN_LEDGER', message, options);
  }
}

/** A spool line that is not a well-formed record. `seq` is set when it could still be read. */
export class CorruptRecordError extends LedgerError {
  override name = 'CorruptRecordError';
  constructor(
    message: string,
    readonly seq: number | null = null,
    readonly segment: string | null = null,
    readonly line: number | null = null,
  ) {
    super(message, { code: 'WARDEN_TAMPERED' });
  }
}

/** Damage that is not a torn tail: `open` refuses to guess rather than destroy good records. */
export class SpoolCorruptError extends LedgerError {
  override name = 'SpoolCorruptError';
  constructor(readonly segment: string, readonly seq: number, readonly line: number | null, detail: string) {
    super(
      `ledger segment ${segment} is damaged ${line === null ? 'at its end' : `at line ${line}`} (seq ${seq}): ` +
        `${detail}. This is not a torn tail left by a crash, so nothing was truncated. ` +
        `Run \`warden ledger verify\` to locate every problem before repairing or restoring the segment.`,
      { code: 'WARDEN_TAMPERED' },
    );
  }
}

export class SpoolClosedError extends LedgerError {
  override name = 'SpoolClosedError';
  constructor(dir: string) {
    super(`the ledger spool at ${dir} is closed; open a new Spool to append`, { code: 'WARDEN_INTERNAL' });
  }
}

/** The write or fsync of one batch failed; the batch was rolled back and none of it is acknowledged. */
export class SpoolWriteError extends LedgerError {
  override name = 'SpoolWriteError';
  constructor(segment: string, records: number, cause: unknown) {
    super(
      `writing ${records} record(s) to ledger segment ${segment} failed (${describe(cause)}); the batch was ` +
        `rolled back and is not acknowledged: retry it. Check free space and file-size limits of the spool directory.`,
      { cause, code: 'WARDEN_UNAVAILABLE' },
    );
  }
}

/** After a failed write could not be rolled back, the on-disk tail is unknown: stop appending. */
export class SpoolFailedError extends LedgerError {
  override name = 'SpoolFailedError';
  constructor(dir: string, cause: unknown) {
    super(
      `the ledger spool at ${dir} could not roll back a failed write (${describe(cause)}) and refuses further ` +
        `appends; restart the agent: opening the spool again recovers the tail.`,
      { cause, code: 'WARDEN_UNAVAILABLE' },
    );
  }
}

export class SpoolLockedError extends LedgerError {
  override name = 'SpoolLockedError';
  constructor(lockPath: string, pid: number) {
    super(
      `the ledger spool is in use by process ${pid} (lock ${lockPath}); two writers would fork the hash chain. ` +
        `Stop that process, or delete the lock file if no Warden agent is running.`,
      { code: 'WARDEN_CONFLICT' },
    );
  }
}

/** An event that has no canonical JSON form (NaN, Infinity, functions, BigInt, cycles, sparse arrays). */
export class InvalidEventError extends LedgerError {
  override name = 'InvalidEventError';
  constructor(readonly index: number, detail: string) {
    super(`event #${index} of the append cannot be written to the ledger: ${detail}; fix the collector that built it`, { code: 'WARDEN_USAGE' });
  }
}

export class LedgerNotFoundError extends LedgerError {
  override name = 'LedgerNotFoundError';
  constructor(dir: string) {
    super(`no ledger found under ${dir} (expected ${dir}/ledger/seg-*.jsonl); pass the agent's data directory`, { code: 'WARDEN_NOT_FOUND' });
  }
}

export class TimeArgError extends LedgerError {
  override name = 'TimeArgError';
  constructor(arg: string, hint = '') {
    super(
      `cannot read ${JSON.stringify(arg)} as a time${hint ? ` (${hint})` : ''}: use ISO-8601 (2024-05-01, 2024-05-01T12:00:00Z, ` +
        `2024-05-01T14:00:00+02:00; no offset means UTC), epoch milliseconds (1714564800000), ` +
        `or a duration ago (30s, 15m, 2h, 7d, 2w), or now`,
      { code: 'WARDEN_USAGE' },
    );
  }
}

export class InvalidFilterError extends LedgerError {
  override name = 'InvalidFilterError';
  constructor(message: string) {
    super(message, { code: 'WARDEN_USAGE' });
  }
}

function describe(cause: unknown): string {
  if (cause instanceof Error) return (cause as NodeJS.ErrnoException).code ?? cause.message;
  return String(cause);
}
