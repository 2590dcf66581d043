/**
 * HTTP ingest transport: `POST <url>/v1/events` with the sidecar's `ingest` token, body
 * `{"events":[...]}`. Network errors, timeouts, 408, 429 and 5xx are retried by the outbox (the
 * sidecar deduplicates by event_id, so a resend after a lost answer is safe), after at least the
 * Retry-After the sidecar names (its per-token rate limit); any other 4xx is final
 * (the events are dropped and counted), a 400 naming one bad event drops only that one, and a 413
 * makes the outbox send smaller batches.
 */
import { TransportBusyError, TransportRejectedError, type OutboxItem, type Transport } from './outbox.js';

export interface HttpTransportOptions {
  /** The sidecar's base URL, e.g. http://127.0.0.1:9464. */
  url: string;
  /** A token with role `ingest` (or `admin`). */
  token: string;
  /** Timeout of one request (default 10 000 ms). */
  timeoutMs?: number;
}

export class HttpTransport implements Transport {
  readonly name = 'http';
  private readonly endpoint: string;

  constructor(private readonly o: HttpTransportOptions) {
    this.endpoint = `${o.url.replace(/\/+$/, '')}/v1/events`;
  }

  async send(items: OutboxItem[]): Promise<void> {
    const res = await fetch(this.endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.o.token}` },
      body: `{"events":[${items.map((i) => i.json).join(',')}]}`,
      signal: AbortSignal.timeout(this.o.timeoutMs ?? 10_000),
    });
    const text = await res.text().catch(() => '');
    if (res.ok) return;
    let detail: { error?: string; index?: number } = {};
    try { detail = JSON.parse(text) as typeof detail; } catch { /* not JSON */ }
    const msg = `HTTP ${res.status} from ${this.endpoint}: ${detail.error ?? text.slice(0, 200)}`;
    const retryAfter = Number(res.headers.get('retry-after'));
    if ((res.status === 429 || res.status === 503) && retryAfter > 0) throw new TransportBusyError(msg, retryAfter * 1000);
    if (res.status === 408 || res.status === 429 || res.status >= 500) throw new Error(msg);
    throw new TransportRejectedError(msg, res.status === 400 && typeof detail.index === 'number' ? detail.index : undefined, res.status === 413);
  }

  async close(): Promise<void> {}
}
