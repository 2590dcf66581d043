/**
 * `POST /v1/events` with `{"events":[...]}` (ingest and admin): every event is checked first, and a
 * batch with any bad event appends nothing (400 naming the index and field). Bad means: not the schema,
 * a kind only the sidecar writes, over the bounds, or outside the token's scopes. Resent events are
 * skipped (counted as duplicates), so a client may retry a batch whose answer it lost. Every accepted
 * record says who sent it: `attrs.received_via` = `http:<token name>`.
 */
import type { WardenEvent } from '../../core/event.js';
import { checkEvent } from '../../core/event-validation.js';
import { outOfScope, type IngestCredential } from '../ingest.js';
import { ApiError } from './errors.js';
import { sendJson } from './respond.js';
import type { Route } from './router.js';

export interface IngestSink {
  /** Appends events (deduplicated by event_id); unset: the endpoint answers 503. */
  ingest?(events: WardenEvent[], from: IngestCredential): Promise<{ accepted: number; duplicates: number }>;
  /** Counts events refused as malformed. */
  onInvalidEvents?(n: number): void;
}

export function ingestRoutes(o: IngestSink): Route[] {
  return [{
    method: 'POST', path: '/v1/events', roles: ['ingest', 'admin'], body: true,
    handle: async ({ res, body, caller }) => {
      if (!o.ingest) throw new ApiError(503, 'event ingest is not wired in this sidecar', { code: 'WARDEN_CONFIG' });
      let doc: unknown;
      try {
        doc = JSON.parse(body.toString('utf8'));
      } catch (err) {
        throw new ApiError(400, `the body is not JSON: ${(err as Error).message}`);
      }
      const list = (doc as { events?: unknown } | null)?.events;
      if (!Array.isArray(list)) throw new ApiError(400, 'the body must be {"events":[...]} (an array of Warden events)');
      const events: WardenEvent[] = [];
      let first: { index: number; field: string; message: string } | null = null;
      let invalid = 0;
      for (let i = 0; i < list.length; i++) {
        const c = checkEvent(list[i]);
        const refused = c.ok ? outOfScope(c.event, caller.scopes) : c;
        if (c.ok && !refused) events.push(c.event);
        else { invalid++; first ??= { index: i, field: refused!.field, message: refused!.message }; }
      }
      if (first) {
        o.onInvalidEvents?.(invalid);
        throw new ApiError(400, `events[${first.index}].${first.message} (${invalid} of ${list.length} events invalid; nothing was appended)`, {
          details: { index: first.index, field: first.field, invalid },
        });
      }
      const from: IngestCredential = { transport: 'http', via: `http:${caller.name}`, scopes: caller.scopes };
      const r = events.length ? await o.ingest(events, from) : { accepted: 0, duplicates: 0 };
      sendJson(res, 200, r);
      return r.accepted;
    },
  }];
}
