/**
 * Circuit breakers (policies.file configured): `GET /v1/breakers` lists them (compliance and admin);
 * `POST /v1/breakers/<scope>/(open|close|auto)?actor=NAME[&policy=P][&reason=TEXT]` forces one (admin
 * only), recorded with the actor, the token that asked and the reason given (evidence `note`). `GET /v1/breakers/<scope>/explain` (compliance and admin):
 * what each policy covering the scope sees now (window counts, budget, baseline, each signal against
 * its threshold, the one closest to tripping).
 */
import { ROLES } from '../config.js';
import type { BreakerAdmin } from '../policies.js';
import { ApiError } from './errors.js';
import { sendJson } from './respond.js';
import { READ_ROLES } from './routes-ledger.js';
import type { Route } from './router.js';

export function breakerRoutes(breakers: BreakerAdmin | null | undefined): Route[] {
  if (!breakers) {
    // Whoever asks, however: the answer is that there are none.
    return [{
      method: '*', path: /^\/v1\/breakers(?:\/.*)?$/, roles: ROLES,
      handle: async () => { throw new ApiError(404, 'no policies are configured on this sidecar (set policies.file)'); },
    }];
  }
  const b = breakers;
  return [
    {
      method: 'GET', path: '/v1/breakers', roles: READ_ROLES,
      handle: async ({ res }) => {
        const list = b.list();
        sendJson(res, 200, { breakers: list });
        return list.length;
      },
    },
    {
      method: 'GET', path: /^\/v1\/breakers\/([^/]+)\/explain$/, roles: READ_ROLES,
      handle: async ({ res, path, params: [rawScope] }) => {
        let scope: string;
        try { scope = decodeURIComponent(rawScope); } catch { throw new ApiError(400, `the scope in ${path} is not valid percent-encoding`); }
        const policies = b.explain(scope);
        sendJson(res, 200, { scope, policies });
        return policies.length;
      },
    },
    {
      method: 'POST', path: /^\/v1\/breakers\/([^/]+)\/(open|close|auto)$/, roles: ['admin'],
      handle: async ({ res, url, path, caller, params: [rawScope, mode] }) => {
        const actor = url.searchParams.get('actor') || caller.name;
        if (!/^[\w.@ -]{1,100}$/.test(actor)) throw new ApiError(400, 'actor must be a short name (letters, digits, . _ @ - and spaces)');
        let scope: string;
        try { scope = decodeURIComponent(rawScope); } catch { throw new ApiError(400, `the scope in ${path} is not valid percent-encoding`); }
        const reason = url.searchParams.get('reason') ?? undefined;
        if (reason !== undefined && (reason.length > 500 || /[\u0000-\u001f]/.test(reason))) throw new ApiError(400, 'reason must be one line of at most 500 characters');
        const states = await b.force(scope, mode === 'close' ? 'closed' : mode as 'open' | 'auto', actor, url.searchParams.get('policy') ?? undefined, caller.name, reason || undefined);
        sendJson(res, 200, { breakers: states });
        return states.length;
      },
    },
    {
      method: 'POST', path: /^\/v1\/breakers\/.*$/, roles: ['admin'],
      handle: async () => { throw new ApiError(404, 'use POST /v1/breakers/<scope>/open|close|auto?actor=NAME (scope e.g. bullmq.queue.ingest)'); },
    },
  ];
}
