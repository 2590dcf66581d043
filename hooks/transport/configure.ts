/**
 * "Two lines in a worker": `configureWarden()` picks the transport (NATS JetStream when a NATS URL is
 * given, else the sidecar's HTTP ingest), puts an outbox in front of it and installs it as the
 * process-wide hook emitter, so warden/bullmq and warden/temporal hooks deliver their events.
 *
 *   import { configureWarden } from 'warden/temporal';
 *   const warden = configureWarden();   // WARDEN_NATS_URL, or WARDEN_INGEST_URL + WARDEN_INGEST_TOKEN
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { hookEmitter, setHookEmitter, type HookEmitter } from '../emitter.js';
import type { WardenEvent } from '../../core/event.js';
import { HttpTransport } from './http.js';
import { NatsTransport } from './nats.js';
import { Outbox, type OutboxOptions, type OutboxStats, type Transport } from './outbox.js';
import { WardenError } from '../../core/errors.js';

export interface ConfigureWardenOptions {
  nats?: { url?: string | string[]; connection?: NatsConnection; stream?: string; subjectPrefix?: string; timeoutMs?: number; replicas?: number };
  ingest?: { url?: string; token?: string; timeoutMs?: number };
  outbox?: OutboxOptions;
  /** Where WARDEN_NATS_URL, WARDEN_INGEST_URL and WARDEN_INGEST_TOKEN are read (default process.env). */
  env?: NodeJS.ProcessEnv;
}

/** The options name no usable transport, or a malformed one. */
export class WardenTransportConfigError extends WardenError {
  override readonly name = 'WardenTransportConfigError';
  constructor(message: string) {
    super('WARDEN_CONFIG', message);
  }
}

export interface WardenHandle extends HookEmitter {
  readonly transport: 'nats' | 'http';
  stats(): OutboxStats;
  /** Waits up to timeoutMs for everything queued to be delivered; false if some is left. */
  flush(timeoutMs?: number): Promise<boolean>;
  /** Flushes (up to timeoutMs), closes the transport and uninstalls the emitter. */
  close(timeoutMs?: number): Promise<boolean>;
}

export function createTransport(opts: ConfigureWardenOptions = {}): Transport {
  const env = opts.env ?? process.env;
  // WARDEN_NATS_URL may list several servers of one cluster, comma-separated.
  const natsUrl = opts.nats?.url ?? (env.WARDEN_NATS_URL ? env.WARDEN_NATS_URL.split(',').map((u) => u.trim()).filter(Boolean) : undefined);
  if (opts.nats?.connection || natsUrl) {
    for (const u of [natsUrl ?? []].flat()) {
      if (!/^(nats|tls|wss?):\/\/\S+$/.test(u)) throw new WardenTransportConfigError(`nats.url (or WARDEN_NATS_URL) must be a nats:// or tls:// URL, not ${JSON.stringify(u)}`);
    }
    // WARDEN_NATS_REPLICAS: the stream's replicas if this worker is the one creating it (3 on a three-node cluster).
    const envReplicas = Number(env.WARDEN_NATS_REPLICAS);
    const replicas = opts.nats?.replicas ?? (Number.isInteger(envReplicas) && envReplicas >= 1 ? envReplicas : undefined);
    return new NatsTransport({ url: natsUrl, connection: opts.nats?.connection, stream: opts.nats?.stream, subjectPrefix: opts.nats?.subjectPrefix, timeoutMs: opts.nats?.timeoutMs, replicas });
  }
  const url = opts.ingest?.url ?? (env.WARDEN_INGEST_URL || undefined);
  if (url) {
    if (!/^https?:\/\/\S+$/.test(url)) throw new WardenTransportConfigError(`ingest.url (or WARDEN_INGEST_URL) must be the sidecar's http:// or https:// base URL, not ${JSON.stringify(url)}`);
    const token = opts.ingest?.token ?? (env.WARDEN_INGEST_TOKEN || undefined);
    if (!token) throw new WardenTransportConfigError('HTTP ingest needs a token with role "ingest": set ingest.token or WARDEN_INGEST_TOKEN (one of the sidecar\'s api.tokens)');
    return new HttpTransport({ url, token, timeoutMs: opts.ingest?.timeoutMs });
  }
  throw new WardenTransportConfigError('no transport to the sidecar: set nats.url (or WARDEN_NATS_URL) for NATS JetStream, or ingest.url + ingest.token (or WARDEN_INGEST_URL + WARDEN_INGEST_TOKEN) for HTTP ingest');
}

/** Installs the emitter hooks use (see hooks/emitter.ts) and returns its handle. */
export function configureWarden(opts: ConfigureWardenOptions = {}): WardenHandle {
  const transport = createTransport(opts);
  const outbox = new Outbox(transport, opts.outbox);
  let previous: HookEmitter | null = null;
  const handle: WardenHandle = {
    transport: transport.name as 'nats' | 'http',
    emit: (ev: WardenEvent) => outbox.emit(ev),
    stats: () => outbox.stats(),
    flush: (timeoutMs) => outbox.flush(timeoutMs),
    close: async (timeoutMs) => {
      const ok = await outbox.close(timeoutMs);
      // Uninstall, unless another emitter was installed since.
      if (previous && hookEmitter() === handle) setHookEmitter(previous);
      return ok;
    },
  };
  previous = setHookEmitter(handle);
  return handle;
}
