/**
 * What the console (`/ui`, agent/api/routes-ui.ts) asks besides the ledger and breaker routes:
 * `GET /v1/console` (who the token is, what this sidecar offers: the store, breakers, the trace UI
 * link template) and `GET /v1/overview` (per system and queue, from the sidecar's own metrics
 * registry: agent/overview.ts). Both for compliance and admin; neither reads the ledger.
 */
import { EVENT_KINDS, EVENT_SOURCES } from '../../core/event.js';
import type { Overview } from '../overview.js';
import { ApiError } from './errors.js';
import { sendJson } from './respond.js';
import { READ_ROLES } from './routes-ledger.js';
import type { Route } from './router.js';

export interface ConsoleInfo {
  /** e.g. `http://tempo:3200/trace/{trace_id}`; null: no trace links. */
  traceUrlTemplate: string | null;
  /** The ledger store (ClickHouse or chdb) is configured: the explorer pages from it. */
  store: boolean;
  /** Policies are configured: breakers exist. */
  breakers: boolean;
}

export function consoleRoutes(o: { console?: ConsoleInfo; overview?: () => Promise<Overview> }): Route[] {
  return [
    {
      method: 'GET', path: '/v1/console', roles: READ_ROLES,
      handle: async ({ res, caller }) => {
        const info = o.console ?? { traceUrlTemplate: null, store: false, breakers: false };
        sendJson(res, 200, { name: caller.name, role: caller.role, can_act: caller.role === 'admin', ...info, kinds: EVENT_KINDS, sources: EVENT_SOURCES });
        return 0;
      },
    },
    {
      method: 'GET', path: '/v1/overview', roles: READ_ROLES,
      handle: async ({ res }) => {
        if (!o.overview) throw new ApiError(503, 'no metrics registry is wired to this API');
        const doc = await o.overview();
        sendJson(res, 200, doc);
        return doc.queues.length;
      },
    },
  ];
}
