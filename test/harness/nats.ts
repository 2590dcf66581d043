import { ensureBinary } from './binaries.js';
import { freePort } from './ports.js';
import { tcpExchange } from './probe.js';
import { ManagedProcess, retryOnPortClash, waitFor } from './process.js';
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

export interface NatsClusterNode extends NatsServer {
  /** The node's server name (`n1`, `n2`, `n3`). */
  readonly name: string;
  readonly clusterPort: number;
}

export interface NatsCluster {
  readonly nodes: readonly NatsClusterNode[];
  /** Every node's client URL, for a client that should fail over between them. */
  readonly urls: string[];
  /** Stops every node and removes their dirs. */
  dispose(): Promise<void>;
}

/**
 * A NATS JetStream cluster of `size` nodes (default 3) on loopback: each its own client and route
 * port, its own store dir, `--cluster_name`, routes to all the others. Resolves once every node
 * advertises JetStream and the cluster has a JetStream meta leader (a stream with replicas = size
 * can be created). Kill one node with `nodes[i].kill9()`; `start()` brings it back on the same ports.
 */
export async function startNatsCluster(o: { size?: number; readyTimeoutMs?: number } = {}): Promise<NatsCluster> {
  const size = o.size ?? 3;
  const bin = await ensureBinary('nats-server', 'nats-server');
  return retryOnPortClash(async () => {
    const ports = await Promise.all(Array.from({ length: size }, async () => ({ client: await freePort(), cluster: await freePort() })));
    const clusterName = `warden-test-${process.pid}-${ports[0].client}`;
    const nodes: NatsClusterNode[] = [];
    try {
      await Promise.all(ports.map(async (p, i) => {
        const tmp = await tempDir(`nats-n${i + 1}`);
        const name = `n${i + 1}`;
        const routes = ports.filter((_, j) => j !== i).map((q) => `nats://127.0.0.1:${q.cluster}`).join(',');
        const args = ['-js', '-sd', tmp.path, '-a', '127.0.0.1', '-p', String(p.client), '-n', name,
          '--cluster_name', clusterName, '--cluster', `nats://127.0.0.1:${p.cluster}`, '--routes', routes];
        const proc = await ManagedProcess.start({
          name: `nats-${name}`, command: bin, args, dir: tmp.path,
          ready: async () => (await natsInfo(p.client)).jetstream === true,
          readyTimeoutMs: o.readyTimeoutMs ?? 30_000, pollIntervalMs: 50,
        });
        nodes[i] = Object.assign(serverControl(proc, tmp), {
          host: '127.0.0.1' as const, port: p.client, url: `nats://127.0.0.1:${p.client}`, info: () => natsInfo(p.client), name, clusterPort: p.cluster,
        });
      }));
    } catch (err) {
      await Promise.all(nodes.filter(Boolean).map((n) => n.dispose().catch(() => undefined)));
      throw err;
    }
    const urls = nodes.map((n) => n.url);
    const cluster: NatsCluster = { nodes, urls, dispose: async () => { await Promise.all(nodes.map((n) => n.dispose().catch(() => undefined))); } };
    try {
      await waitForMetaLeader(urls, size, o.readyTimeoutMs ?? 30_000);
    } catch (err) {
      await cluster.dispose();
      throw err;
    }
    return cluster;
  });
}

/** Until a replicated stream can be created (a meta leader is elected and every peer is known), then removes it. */
async function waitForMetaLeader(urls: string[], replicas: number, timeoutMs: number): Promise<void> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: urls, timeout: 5000 });
  try {
    await waitFor(async () => {
      const jsm = await jetstreamManager(nc, { timeout: 3000 });
      await jsm.streams.add({ name: 'HARNESS_PROBE', subjects: ['harness.probe'], num_replicas: replicas });
      await jsm.streams.delete('HARNESS_PROBE');
      return true;
    }, { timeoutMs, intervalMs: 200, what: `a NATS cluster meta leader with ${replicas} peers` });
  } finally {
    await nc.close();
  }
}
