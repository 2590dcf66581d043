/**
 * A local OTLP/HTTP trace receiver: no collector or Jaeger runs here, so tests receive what the
 * exporter really sends (`POST /v1/traces`, OTLP JSON) and decode it.
 */
import { createServer } from 'node:http';

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startMs: number;
  endMs: number;
  attributes: Record<string, unknown>;
  status: { code?: number; message?: string };
  events: { name: string; attributes: Record<string, unknown> }[];
  serviceName: string | undefined;
}

export interface OtlpReceiver { url: string; spans: ReceivedSpan[]; rawBodies: string[]; errors: Error[]; close(): Promise<void> }

type KV = { key: string; value: Record<string, unknown> };
const value = (v: Record<string, unknown>): unknown => v.stringValue ?? v.boolValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.doubleValue ?? v.arrayValue ?? v.kvlistValue);
const attrs = (list: KV[] | undefined) => Object.fromEntries((list ?? []).map((a) => [a.key, value(a.value)]));
// OTLP JSON times are nanoseconds: a decimal string, a number, or (JS exporter) a {low, high} 64-bit pair.
type Nanos = string | number | { low: number; high: number };
const nsToMs = (ns: Nanos): number => {
  const big = typeof ns === 'object' ? (BigInt(ns.high >>> 0) << 32n) + BigInt(ns.low >>> 0) : BigInt(ns);
  return Number(big / 1000n) / 1000;
};

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const rawBodies: string[] = [];
  const errors: Error[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') { res.writeHead(404).end(); return; }
      const body = Buffer.concat(chunks).toString('utf8');
      rawBodies.push(body);
      // Answer first: an exporter whose request is never answered stops sending.
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      try { decode(body); } catch (err) { errors.push(err as Error); }
    });
  });
  const decode = (body: string): void => {
      const doc = JSON.parse(body) as { resourceSpans?: { resource?: { attributes?: KV[] }; scopeSpans?: { spans?: Record<string, any>[] }[] }[] };
      for (const rs of doc.resourceSpans ?? []) {
        const serviceName = attrs(rs.resource?.attributes)['service.name'] as string | undefined;
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({
              traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '', name: s.name, kind: s.kind,
              startMs: nsToMs(s.startTimeUnixNano), endMs: nsToMs(s.endTimeUnixNano),
              attributes: attrs(s.attributes), status: s.status ?? {},
              events: (s.events ?? []).map((e: { name: string; attributes?: KV[] }) => ({ name: e.name, attributes: attrs(e.attributes) })),
              serviceName,
            });
          }
        }
      }
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, spans, rawBodies, errors, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}
