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

export interface OtlpReceiver { url: string; spans: ReceivedSpan[]; rawBodies: string[]; close(): Promise<void> }

type KV = { key: string; value: Record<string, unknown> };
const value = (v: Record<string, unknown>): unknown => v.stringValue ?? v.boolValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.doubleValue ?? v.arrayValue ?? v.kvlistValue);
const attrs = (list: KV[] | undefined) => Object.fromEntries((list ?? []).map((a) => [a.key, value(a.value)]));
// OTLP JSON encodes trace/span IDs as hex strings and times as decimal nanosecond strings.
const nsToMs = (ns: string | number) => Number(BigInt(ns) / 1000n) / 1000;

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const rawBodies: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') { res.writeHead(404).end(); return; }
      const body = Buffer.concat(chunks).toString('utf8');
      rawBodies.push(body);
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
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, spans, rawBodies, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}
