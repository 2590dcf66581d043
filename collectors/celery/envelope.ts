/**
 * Celery's event messages as they arrive from the broker. On Redis every event is a kombu JSON
 * envelope PUBLISHed on `/{db}.celeryev/<routing key>`: `{body, content-encoding, content-type,
 * headers, properties{body_encoding, delivery_info{exchange, routing_key}, ...}}` with `body` the
 * base64 of the event JSON. Workers batch task events as `task.multi`, whose body is a JSON list.
 * Over AMQP the message body is the event JSON itself (no envelope). Anything that does not decode
 * is reported as an error value, never thrown.
 */

/** One Celery event, as Celery sends it (fields by type; see /work/shared/celery.md). */
export interface CeleryEvent {
  type: string;
  hostname?: string;
  timestamp?: number;
  clock?: number;
  pid?: number;
  uuid?: string;
  name?: string;
  args?: string;
  kwargs?: string;
  root_id?: string | null;
  parent_id?: string | null;
  retries?: number;
  queue?: string;
  routing_key?: string;
  exchange?: string;
  eta?: string | null;
  expires?: string | null;
  result?: string;
  runtime?: number;
  exception?: string;
  traceback?: string;
  requeue?: boolean;
  terminated?: boolean;
  signum?: number | string | null;
  expired?: boolean;
  freq?: number;
  active?: number;
  processed?: number;
  [key: string]: unknown;
}

export class EnvelopeError extends Error {
  override readonly name = 'EnvelopeError';
}

function asEvents(body: unknown): CeleryEvent[] {
  const list = Array.isArray(body) ? body : [body];
  return list.filter((e): e is CeleryEvent => !!e && typeof e === 'object' && typeof (e as CeleryEvent).type === 'string');
}

/** Decodes the event JSON of a message body (bytes or text; JSON only: pickle/msgpack are refused). */
export function decodeBody(body: Buffer | string, contentType = 'application/json'): CeleryEvent[] {
  if (!/json/.test(contentType)) throw new EnvelopeError(`event body of content type ${contentType} is not readable (configure Celery's event_serializer as json)`);
  const text = typeof body === 'string' ? body : body.toString('utf8');
  try {
    return asEvents(JSON.parse(text));
  } catch (err) {
    throw new EnvelopeError(`event body is not JSON: ${(err as Error).message}`);
  }
}

/** Decodes a kombu JSON envelope (Redis transport) into its events. */
export function decodeEnvelope(payload: string | Buffer): CeleryEvent[] {
  let env: { body?: unknown; 'content-type'?: string; properties?: { body_encoding?: string } };
  try {
    env = JSON.parse(typeof payload === 'string' ? payload : payload.toString('utf8'));
  } catch (err) {
    throw new EnvelopeError(`not a kombu envelope: ${(err as Error).message}`);
  }
  if (!env || typeof env !== 'object' || env.body === undefined) throw new EnvelopeError('not a kombu envelope: no body');
  const ct = env['content-type'] ?? 'application/json';
  if (typeof env.body !== 'string') return asEvents(env.body);
  const raw = env.properties?.body_encoding === 'base64' ? Buffer.from(env.body, 'base64') : env.body;
  return decodeBody(raw, ct);
}

/** The broker-independent part of a kombu envelope for a control command (pidbox). */
export function encodeEnvelope(body: unknown, o: { exchange: string; routingKey: string; headers?: Record<string, unknown>; deliveryTag: string }): string {
  return JSON.stringify({
    body: Buffer.from(JSON.stringify(body)).toString('base64'),
    'content-encoding': 'utf-8',
    'content-type': 'application/json',
    headers: o.headers ?? {},
    properties: {
      delivery_mode: 2,
      delivery_info: { exchange: o.exchange, routing_key: o.routingKey },
      priority: 0,
      body_encoding: 'base64',
      delivery_tag: o.deliveryTag,
    },
  });
}
