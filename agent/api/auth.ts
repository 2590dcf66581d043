/**
 * Who is asking, and how often: bearer tokens map to roles (compared in constant time, against every
 * token always, so timing says nothing about which matched), and each token has its own request budget.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { ROLES } from '../config.js';
import type { IngestScopes } from '../ingest.js';
import { ApiError } from './errors.js';

export type Role = (typeof ROLES)[number];

export interface ApiToken { name: string; role: Role; token: string; scopes?: IngestScopes }

/** Who a request comes from: the token's name and role, and (ingest) what it may send events for. */
export interface Caller { name: string; role: Role; scopes?: IngestScopes }

const digest = (s: string) => createHash('sha256').update(s).digest();

export class TokenAuth {
  private readonly tokens: { name: string; role: Role; scopes?: IngestScopes; digest: Buffer }[];

  constructor(tokens: readonly ApiToken[]) {
    this.tokens = tokens.map((t) => ({ name: t.name, role: t.role, scopes: t.scopes, digest: digest(t.token) }));
  }

  /** The caller the request's bearer token names; 401 without one or with an unknown one. */
  authenticate(req: IncomingMessage): Caller {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    if (!m) throw new ApiError(401, 'missing bearer token: send "Authorization: Bearer <token>"', { headers: { 'www-authenticate': 'Bearer' } });
    const given = digest(m[1]);
    // Compare against every token, always, so timing says nothing about which (or whether one) matched.
    let found: Caller | null = null;
    for (const t of this.tokens) if (timingSafeEqual(given, t.digest) && !found) found = { name: t.name, role: t.role, ...(t.scopes ? { scopes: t.scopes } : {}) };
    if (!found) throw new ApiError(401, 'unknown token', { headers: { 'www-authenticate': 'Bearer error="invalid_token"' } });
    return found;
  }
}

/** A token bucket per caller: `perMinute` requests a minute, refilled continuously; 429 with Retry-After when empty. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly perMinute: number) {}

  take(name: string): void {
    const now = Date.now();
    const cap = this.perMinute;
    const b = this.buckets.get(name) ?? { tokens: cap, at: now };
    b.tokens = Math.min(cap, b.tokens + ((now - b.at) / 60_000) * cap);
    b.at = now;
    this.buckets.set(name, b);
    if (b.tokens < 1) throw new ApiError(429, `rate limit of ${cap} requests per minute exceeded`, { retryAfterS: Math.ceil(((1 - b.tokens) / cap) * 60) });
    b.tokens -= 1;
  }
}
