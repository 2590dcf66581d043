import { ensureBinary } from './binaries.js';
import { freePort } from './ports.js';
import { tcpExchange } from './probe.js';
import { ManagedProcess, retryOnPortClash } from './process.js';
import { inTempDir, serverControl, type ServerControl } from './server.js';
import { tempDir } from './tmp.js';

export interface RedisOptions {
  /**
   * Keep data across restart()/kill9(): enables the append-only file. Default false (no RDB, no AOF:
   * every start is empty).
   */
  persist?: boolean;
  /** AOF fsync policy when persist is on. Default 'always', so even kill9() loses nothing. */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** Extra `--option value` arguments for redis-server. */
  extraArgs?: readonly string[];
  readyTimeoutMs?: number;
}

export interface RedisServer extends ServerControl {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `redis://127.0.0.1:PORT` */
  readonly url: string;
}

/** `PING` over a raw socket; true on `+PONG` (a Redis still loading its AOF answers `-LOADING`). */
export async function redisPing(port: number, timeoutMs = 1_000): Promise<boolean> {
  const reply = await tcpExchange(port, 'PING\r\n', (r) => r.includes('\r\n'), timeoutMs);
  return reply.startsWith('+PONG');
}

/** Starts a private redis-server on a free loopback port with a throwaway dir. */
export async function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  const bin = await ensureBinary('redis-server', 'redis-server');
  return retryOnPortClash(async () => {
    const tmp = await tempDir('redis');
    return inTempDir(tmp, async () => {
      const port = await freePort();
      const persistence = options.persist
        ? ['--appendonly', 'yes', '--appendfsync', options.appendfsync ?? 'always']
        : ['--appendonly', 'no'];
      const args = [
        '--port', String(port),
        '--bind', '127.0.0.1',
        '--save', '', // no RDB snapshots
        ...persistence,
        '--dir', tmp.path,
        '--daemonize', 'no',
        ...(options.extraArgs ?? []),
      ];
      const proc = await ManagedProcess.start({
        name: 'redis',
        command: bin,
        args,
        dir: tmp.path,
        ready: () => redisPing(port),
        readyTimeoutMs: options.readyTimeoutMs ?? 20_000,
        pollIntervalMs: 20,
      });
      return Object.assign(serverControl(proc, tmp), {
        host: '127.0.0.1' as const,
        port,
        url: `redis://127.0.0.1:${port}`,
      });
    });
  });
}
