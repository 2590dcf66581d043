/** Every ledger read, allowed or denied, is itself written to the ledger: who asked what, the answer's status, how many records. */
import type { WardenEvent } from '../../core/event.js';
import { makeEvent } from '../../core/event.js';
import { redactUrl, type Redactor } from '../../core/redact.js';
import type { Caller } from './auth.js';

export const AUDITED_PREFIX = '/v1/ledger/';

export async function auditRead(
  o: { record(events: WardenEvent[]): Promise<void>; redactor: Redactor },
  caller: Caller | null, method: string, url: URL, status: number, rows: number,
): Promise<void> {
  const ev = makeEvent({
    kind: 'ledger.read',
    source: 'warden',
    actor: caller?.name ?? 'anonymous',
    decision: status < 400 ? 'allowed' : 'denied',
    // The path and parameter names are kept; secret-looking values never reach the append-only ledger.
    reason: `${/^[A-Z]{1,16}$/.test(method) ? method : 'OTHER'} ${redactUrl(`${url.pathname}${url.search}`, o.redactor)}`.slice(0, 2000),
    attrs: { role: caller?.role ?? null, status, rows },
  });
  try {
    await o.record([ev]);
  } catch {
    // The read was answered; failing to audit it must not crash the API (the ledger reports its own errors).
  }
}
