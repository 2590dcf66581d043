/**
 * How the API turns anything thrown into an answer. The status is read off the error (WardenError's
 * `httpStatus`); a dependency that is unavailable (WARDEN_UNAVAILABLE: ClickHouse down, the spool
 * failing) is a 503 with `Retry-After`; anything that is not a WardenError is a bug, answered 500
 * "internal error" without its message.
 */
import { httpStatusOf, WardenError, type ErrorCode } from '../../core/errors.js';

/** Seconds a client is asked to wait when a dependency is unavailable and the error does not say. */
export const DEFAULT_RETRY_AFTER_S = 5;

/** A request the API refuses, with the HTTP status it gets, extra headers and extra JSON fields. */
export class ApiError extends WardenError {
  override name = 'ApiError';
  readonly headers: Record<string, string>;
  readonly details: Record<string, unknown>;

  constructor(
    status: number,
    message: string,
    o: { headers?: Record<string, string>; details?: Record<string, unknown>; retryAfterS?: number; code?: ErrorCode } = {},
  ) {
    super(o.code ?? codeFor(status), message, { httpStatus: status, retryAfterS: o.retryAfterS });
    this.headers = o.headers ?? {};
    this.details = o.details ?? {};
  }
}

function codeFor(status: number): ErrorCode {
  if (status === 404) return 'WARDEN_NOT_FOUND';
  if (status === 409) return 'WARDEN_CONFLICT';
  if (status === 503) return 'WARDEN_UNAVAILABLE';
  if (status >= 500) return 'WARDEN_INTERNAL';
  return 'WARDEN_USAGE';
}

export interface ErrorReply { status: number; headers: Record<string, string>; body: string }

/** The answer for an error: its status, its headers (Retry-After when it says or it is unavailable), its message as JSON. */
export function errorReply(err: unknown): ErrorReply {
  if (!(err instanceof WardenError)) {
    return { status: 500, headers: { 'content-type': 'application/json' }, body: `${JSON.stringify({ error: 'internal error' })}\n` };
  }
  const status = httpStatusOf(err);
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(err instanceof ApiError ? err.headers : {}) };
  const retryAfterS = err.retryAfterS ?? (err.code === 'WARDEN_UNAVAILABLE' && status === 503 ? DEFAULT_RETRY_AFTER_S : undefined);
  if (retryAfterS !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(retryAfterS)));
  const details = err instanceof ApiError ? err.details : {};
  return { status, headers, body: `${JSON.stringify({ error: err.message, ...details })}\n` };
}
