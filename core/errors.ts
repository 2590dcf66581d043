/**
 * One error base class for all of Warden. Every error carries a stable `code` from ERRORS, and the
 * code alone decides the CLI exit code and the HTTP status (as Fastify's error table does), so the
 * CLI and the API read them off the error instead of walking `instanceof` chains.
 */

/** CLI exit codes (README "Exit codes"). */
export const EXIT = Object.freeze({
  OK: 0,
  /** The ledger, a checkpoint or a proof does not verify: tampering or damage. */
  TAMPERED: 1,
  /** The command line or the configuration is wrong; nothing was done. */
  USAGE: 2,
  /** A dependency (ClickHouse, Redis, NATS, the file system) is unavailable; try again later. */
  UNAVAILABLE: 3,
  /** A bug or an unexpected failure inside Warden. */
  INTERNAL: 4,
});
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export interface ErrorSpec {
  readonly exitCode: ExitCode;
  readonly httpStatus: number;
  readonly description: string;
}

/** The error table: code -> exit code, HTTP status, meaning. */
export const ERRORS = Object.freeze({
  WARDEN_USAGE: { exitCode: EXIT.USAGE, httpStatus: 400, description: 'a bad argument, flag or request parameter' },
  WARDEN_CONFIG: { exitCode: EXIT.USAGE, httpStatus: 500, description: 'the configuration is invalid' },
  WARDEN_POLICY_FILE: { exitCode: EXIT.USAGE, httpStatus: 500, description: 'a policy file is invalid' },
  WARDEN_NOT_FOUND: { exitCode: EXIT.USAGE, httpStatus: 404, description: 'the thing asked for does not exist' },
  WARDEN_CONFLICT: { exitCode: EXIT.USAGE, httpStatus: 409, description: 'the request conflicts with the current state' },
  WARDEN_TAMPERED: { exitCode: EXIT.TAMPERED, httpStatus: 409, description: 'a record, checkpoint or proof does not verify' },
  WARDEN_UNAVAILABLE: { exitCode: EXIT.UNAVAILABLE, httpStatus: 503, description: 'a dependency is unavailable; retry later' },
  WARDEN_LEDGER: { exitCode: EXIT.INTERNAL, httpStatus: 500, description: 'the ledger could not do what was asked' },
  WARDEN_INTERNAL: { exitCode: EXIT.INTERNAL, httpStatus: 500, description: 'an unexpected failure inside Warden' },
} satisfies Record<string, ErrorSpec>);
export type ErrorCode = keyof typeof ERRORS;

export class WardenError extends Error {
  override name = 'WardenError';
  readonly exitCode: ExitCode;
  readonly httpStatus: number;
  /** Seconds a client should wait before retrying (sent as `Retry-After` with 503/429). */
  readonly retryAfterS: number | undefined;

  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterS?: number; httpStatus?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = ERRORS[code].exitCode;
    this.httpStatus = options?.httpStatus ?? ERRORS[code].httpStatus;
    this.retryAfterS = options?.retryAfterS;
  }
}

/** The exit code for anything thrown: a WardenError says its own; anything else is internal. */
export const exitCodeOf = (err: unknown): ExitCode => (err instanceof WardenError ? err.exitCode : EXIT.INTERNAL);

/** The HTTP status for anything thrown: a WardenError says its own; anything else is a 500. */
export const httpStatusOf = (err: unknown): number => (err instanceof WardenError ? err.httpStatus : 500);
