import { ensureBinary } from './binaries.js';
import { freePort } from './ports.js';
import { tcpExchange } from './probe.js';
import { ManagedProcess, retryOnPortClash } from './process.js';
import { inTempDir, serverControl, type ServerControl } from './server.js';
import { tempDir } from './tmp.js';

export interface NatsOptions {
  /** Extra nats-server arguments. */
  extraArgs?: readonly string[];
  readyTimeoutMs?: number;
}

export interface NatsServer extends ServerControl {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `nats://127.0.0.1:PORT` */
  readonly url: string;
  /** The server's INFO object, read fresh from a new connection. */
  info(): Promise<NatsInfo>;
}

export interface NatsInfo {
  server_id: string;
  version: string;
  jetstream?: boolean;
  [key: string]: unknown;
}

/** Connects and parses the `INFO {...}` line a NATS server sends first to every client. */
export async function natsInfo(port: number, timeoutMs = 1_000): Promise<NatsInfo> {
  const raw = await tcpExchange(port, undefined, (r) => r.includes('\r\n'), timeoutMs);
  const line = raw.slice(0, raw.indexOf('\r\n'));
  if (!line.startsWith('INFO ')) throw new Error(`expected an INFO line from 127.0.0.1:${port}, got ${JSON.stringify(line.slice(0, 80))}`);
  return JSON.parse(line.slice(5)) as NatsInfo;
}

/** Starts a private nats-server with JetStream (store in a throwaway dir) on a free loopback port. */
export async function startNats(options: NatsOptions = {}): Promise<NatsServer> {
  const bin = await ensureBinary('nats-server', 'nats-server');
  return retryOnPortClash(async () => {
    const tmp = await tempDir('nats');
    return inTempDir(tmp, async () => {
      const port = await freePort();
      const args = ['-js', '-sd', tmp.path, '-a', '127.0.0.1', '-p', String(port), ...(options.extraArgs ?? [])];
      const proc = await ManagedProcess.start({
        name: 'nats',
        command: bin,
        args,
        dir: tmp.path,
        // INFO advertises jetstream only once JetStream is enabled, so this also waits for JetStream.
        ready: async () => (await natsInfo(port)).jetstream === true,
        readyTimeoutMs: options.readyTimeoutMs ?? 20_000,
        pollIntervalMs: 20,
      });
      return Object.assign(serverControl(proc, tmp), {
        host: '127.0.0.1' as const,
        port,
        url: `nats://127.0.0.1:${port}`,
        info: () => natsInfo(port),
      });
    });
  });
}
