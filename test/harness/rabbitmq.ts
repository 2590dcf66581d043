// A private RabbitMQ broker (Debian's rabbitmq-server 3.10) on free loopback ports with a throwaway
// dir, for tests. Measured on this machine (Debian bookworm, Erlang/OTP 25, 2 cores):
// - The machine's own RabbitMQ listens on 5672 (AMQP), 25672 (Erlang distribution) and its epmd on
//   4369. A second node must differ in all three: its own AMQP port (RABBITMQ_NODE_PORT), its own
//   distribution port (RABBITMQ_DIST_PORT), a unique node name (`warden-<port>@localhost`) and its
//   own epmd. We start that epmd ourselves (`epmd -port P`, in the foreground, stopped by PID) and
//   point the node at it with ERL_EPMD_PORT: left to itself, the VM would start `epmd -daemon`,
//   which detaches and outlives the test (or, on 4369, would register in the machine's epmd).
// - /usr/sbin/rabbitmq-server is a wrapper that `su`s to the rabbitmq user and reads
//   /etc/rabbitmq/rabbitmq-env.conf (NODENAME=rabbit@localhost); we run the real script
//   (/usr/lib/rabbitmq/bin/rabbitmq-server) as we are, with RABBITMQ_CONF_ENV_FILE,
//   RABBITMQ_CONFIG_FILE and RABBITMQ_ENABLED_PLUGINS_FILE in the temp dir (no plugins), HOME the
//   temp dir (the Erlang cookie is written there), RABBITMQ_MNESIA_BASE and RABBITMQ_LOG_BASE under it.
// - That script runs the Erlang VM as a child of a shell: the broker runs in its own process group
//   and stop()/kill9() signal the group (a SIGKILL of the shell alone would orphan the VM).
// - Ready in ~4.5 s: when an AMQP connection (amqplib) opens. SIGTERM stops it in ~2 s. The
//   distribution listener is bound to 127.0.0.1 (`-kernel inet_dist_use_interface`).
import net from 'node:net';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import amqp from 'amqplib';
import { ensureBinary } from './binaries.js';
import { freePort } from './ports.js';
import { ManagedProcess, retryOnPortClash } from './process.js';
import { inTempDir, serverControl, type ServerControl } from './server.js';
import { tempDir } from './tmp.js';

/** The broker script itself, behind Debian's su wrapper in /usr/sbin. */
const SERVER_SCRIPT = '/usr/lib/rabbitmq/bin/rabbitmq-server';

export interface RabbitMqOptions {
  readyTimeoutMs?: number;
  /** Extra lines for rabbitmq.conf (new-style `key = value`). */
  extraConfig?: readonly string[];
}

export interface RabbitMqServer extends ServerControl {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `amqp://guest:guest@127.0.0.1:PORT//` as Celery/kombu spell the default vhost. */
  readonly url: string;
  /** The same for amqplib (`amqp://guest:guest@127.0.0.1:PORT/%2F`). */
  readonly amqplibUrl: string;
  readonly nodeName: string;
  /** The node's private epmd (stopped by dispose()). */
  readonly epmd: ManagedProcess;
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => { s.destroy(); resolve(ok); };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(1000, () => done(false));
  });
}

/** True when an AMQP connection to the port opens (the broker accepts clients, the default vhost exists). */
export async function amqpReady(url: string): Promise<boolean> {
  try {
    const c = await amqp.connect(url, { timeout: 2000 });
    await c.close();
    return true;
  } catch {
    return false;
  }
}

/** Starts a private rabbitmq-server (and its own epmd) on free loopback ports with a throwaway dir. */
export async function startRabbitMq(options: RabbitMqOptions = {}): Promise<RabbitMqServer> {
  await ensureBinary('rabbitmq-server', 'rabbitmq-server');
  const epmdBin = await ensureBinary('epmd', 'erlang-base');
  return retryOnPortClash(async () => {
    const tmp = await tempDir('rabbitmq');
    return inTempDir(tmp, async () => {
      const epmdPort = await freePort();
      const epmd = await ManagedProcess.start({
        name: 'epmd', command: epmdBin, args: ['-port', String(epmdPort), '-address', '127.0.0.1'], dir: tmp.path,
        ready: () => tcpOpen(epmdPort), readyTimeoutMs: 10_000, pollIntervalMs: 20,
      });
      try {
        const port = await freePort();
        const distPort = await freePort();
        const nodeName = `warden-${port}@localhost`;
        writeFileSync(join(tmp.path, 'rabbitmq-env.conf'), '');
        writeFileSync(join(tmp.path, 'enabled_plugins'), '[].\n');
        writeFileSync(join(tmp.path, 'rabbitmq.conf'), [
          `listeners.tcp.default = 127.0.0.1:${port}`,
          ...(options.extraConfig ?? []),
        ].join('\n') + '\n');
        const env: NodeJS.ProcessEnv = {
          PATH: process.env.PATH,
          HOME: tmp.path,
          LANG: 'C.UTF-8',
          RABBITMQ_CONF_ENV_FILE: join(tmp.path, 'rabbitmq-env.conf'),
          RABBITMQ_CONFIG_FILE: join(tmp.path, 'rabbitmq.conf'),
          RABBITMQ_ENABLED_PLUGINS_FILE: join(tmp.path, 'enabled_plugins'),
          RABBITMQ_NODENAME: nodeName,
          RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
          RABBITMQ_NODE_PORT: String(port),
          RABBITMQ_DIST_PORT: String(distPort),
          ERL_EPMD_PORT: String(epmdPort),
          ERL_EPMD_ADDRESS: '127.0.0.1',
          RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
          RABBITMQ_MNESIA_BASE: join(tmp.path, 'mnesia'),
          RABBITMQ_LOG_BASE: join(tmp.path, 'log'),
          RABBITMQ_PID_FILE: join(tmp.path, 'rabbitmq.pid'),
        };
        const url = `amqp://guest:guest@127.0.0.1:${port}//`;
        const amqplibUrl = `amqp://guest:guest@127.0.0.1:${port}/%2F`;
        const proc = await ManagedProcess.start({
          name: 'rabbitmq', command: SERVER_SCRIPT, args: [], dir: tmp.path, env, processGroup: true,
          ready: () => amqpReady(amqplibUrl), readyTimeoutMs: options.readyTimeoutMs ?? 90_000, pollIntervalMs: 250,
          stopGraceMs: 20_000, extraLogFiles: [join(tmp.path, 'log', `${nodeName}.log`)],
        });
        const control = serverControl(proc, tmp);
        return Object.assign(control, {
          host: '127.0.0.1' as const, port, url, amqplibUrl, nodeName, epmd,
          dispose: async () => {
            await proc.stop();
            await epmd.stop();
            await tmp.cleanup();
          },
        });
      } catch (err) {
        await epmd.stop();
        throw err;
      }
    });
  });
}
