/**
 * A real ClickHouse cluster on loopback: one ZooKeeper (Debian's `zookeeper` package, Java) and N
 * ClickHouse 18.16 servers, one shard each, all on free ports with throwaway dirs. Each server gets a
 * copy of the Debian config plus a `config.d/cluster.xml` with the `remote_servers` entry (every
 * server's native port), the ZooKeeper node, its `{shard}`/`{replica}` macros and the distributed DDL
 * queue, so `ON CLUSTER` DDL, `ReplicatedMergeTree` and `Distributed` tables all run for real.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ensureBinary, findBinary } from './binaries.js';
import { freePort } from './ports.js';
import { httpGet, tcpExchange } from './probe.js';
import { ManagedProcess, waitFor } from './process.js';
import { tempDir, type TempDir } from './tmp.js';

export interface ClusterNode {
  readonly url: string;
  readonly httpPort: number;
  readonly tcpPort: number;
  readonly process: ManagedProcess;
  query(sql: string): Promise<string>;
}

export interface ClickHouseCluster {
  /** The `remote_servers` name. */
  readonly name: string;
  readonly nodes: readonly ClusterNode[];
  readonly zookeeperPort: number;
  dispose(): Promise<void>;
}

const ZK_JAR = '/usr/share/java/zookeeper.jar';
const ZK_CLI = '/usr/share/zookeeper/bin/zkCli.sh';
const exists = (p: string): Promise<boolean> => fs.stat(p).then(() => true, () => false);

/** Debian's `zookeeper` package (the jar; not `zookeeperd`, which would also start a system service), installed when missing and root. */
async function ensureZooKeeper(): Promise<void> {
  if (await exists(ZK_JAR)) return;
  if (process.getuid?.() !== 0) throw new Error('ZooKeeper is missing: sudo apt-get install -y zookeeper');
  await new Promise<void>((resolve, reject) => {
    execFile('apt-get', ['install', '-y', 'zookeeper'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 300_000 },
      (err, _out, stderr) => (err ? reject(new Error(`apt-get install -y zookeeper failed: ${stderr}`)) : resolve()));
  });
}

async function startZooKeeper(tmp: TempDir, port: number): Promise<ManagedProcess> {
  await ensureZooKeeper();
  const java = findBinary('java');
  if (!java) throw new Error('java is needed for ZooKeeper: apt-get install -y default-jre-headless zookeeper');
  const dir = path.join(tmp.path, 'zk');
  await fs.mkdir(path.join(dir, 'data'), { recursive: true });
  const cfg = path.join(dir, 'zoo.cfg');
  await fs.writeFile(cfg, [
    'tickTime=500', `dataDir=${dir}/data`, `clientPort=${port}`, 'clientPortAddress=127.0.0.1', 'admin.enableServer=false',
    '4lw.commands.whitelist=ruok', 'maxClientCnxns=0', '',
  ].join('\n'));
  return ManagedProcess.start({
    name: 'zookeeper', command: java,
    // The jar's manifest names its dependencies (Debian's /usr/share/java).
    args: ['-Xmx256m', '-cp', `/etc/zookeeper/conf:${ZK_JAR}`, 'org.apache.zookeeper.server.quorum.QuorumPeerMain', cfg],
    dir,
    ready: async () => (await tcpExchange(port, 'ruok', (r) => r.includes('imok'), 1_000)).includes('imok'),
    readyTimeoutMs: 60_000, pollIntervalMs: 100, stopGraceMs: 5_000,
  });
}

function clusterXml(name: string, tcpPorts: readonly number[], zkPort: number, shard: number): string {
  const shards = tcpPorts.map((p) => `      <shard><replica><host>127.0.0.1</host><port>${p}</port></replica></shard>`).join('\n');
  return `<?xml version="1.0"?>
<yandex>
  <remote_servers>
    <${name}>
${shards}
    </${name}>
  </remote_servers>
  <zookeeper><node><host>127.0.0.1</host><port>${zkPort}</port></node></zookeeper>
  <macros><shard>${String(shard).padStart(2, '0')}</shard><replica>r1</replica></macros>
  <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
</yandex>
`;
}

/** Starts ZooKeeper and `shards` ClickHouse servers forming cluster `name`. */
export async function startClickHouseCluster(opts: { shards?: number; name?: string } = {}): Promise<ClickHouseCluster> {
  const bin = await ensureBinary('clickhouse-server', 'clickhouse-server clickhouse-client');
  const name = opts.name ?? 'warden_test';
  const n = opts.shards ?? 2;
  const tmp = await tempDir('clickhouse-cluster');
  const procs: ManagedProcess[] = [];
  try {
    const zkPort = await freePort();
    procs.push(await startZooKeeper(tmp, zkPort));
    const ports: { http: number; tcp: number; inter: number }[] = [];
    for (let i = 0; i < n; i++) ports.push({ http: await freePort(), tcp: await freePort(), inter: await freePort() });
    const nodes: ClusterNode[] = [];
    await Promise.all(ports.map(async (p, i) => {
      const d = path.join(tmp.path, `ch${i + 1}`);
      await fs.mkdir(path.join(d, 'config.d'), { recursive: true });
      await fs.copyFile('/etc/clickhouse-server/config.xml', path.join(d, 'config.xml'));
      await fs.copyFile('/etc/clickhouse-server/users.xml', path.join(d, 'users.xml'));
      await fs.writeFile(path.join(d, 'config.d', 'cluster.xml'), clusterXml(name, ports.map((x) => x.tcp), zkPort, i + 1));
      const url = `http://127.0.0.1:${p.http}`;
      const proc = await ManagedProcess.start({
        name: 'clickhouse', command: bin,
        args: [
          `--config-file=${path.join(d, 'config.xml')}`, '--',
          `--path=${d}/data/`, `--tmp_path=${d}/tmp/`, `--user_files_path=${d}/uf/`, `--format_schema_path=${d}/fs/`,
          `--logger.log=${d}/log`, `--logger.errorlog=${d}/err`,
          `--http_port=${p.http}`, `--tcp_port=${p.tcp}`, `--interserver_http_port=${p.inter}`, '--listen_host=127.0.0.1',
        ],
        dir: d,
        ready: async () => { const r = await httpGet(`${url}/ping`, 1_000); return r.status === 200 && r.body.trim() === 'Ok.'; },
        readyTimeoutMs: 60_000, pollIntervalMs: 50, stopGraceMs: 15_000, extraLogFiles: [`${d}/err`],
      });
      procs.push(proc);
      nodes[i] = {
        url, httpPort: p.http, tcpPort: p.tcp, process: proc,
        async query(sql: string) {
          const res = await fetch(url, { method: 'POST', body: sql, signal: AbortSignal.timeout(60_000) });
          const body = await res.text();
          if (res.status !== 200) throw new Error(`ClickHouse ${url} answered HTTP ${res.status}: ${body.trim()}\nSQL: ${sql}`);
          return body;
        },
      };
    }));
    // Every node talks to ZooKeeper before the cluster is handed out (a session may still be connecting).
    for (const node of nodes) {
      await waitFor(async () => { await node.query("SELECT count() FROM system.zookeeper WHERE path = '/'"); return true; }, { timeoutMs: 60_000, intervalMs: 200, what: `${node.url} to reach ZooKeeper` });
    }
    // Measured here: 18.16's first ON CLUSTER query segfaults the server (zkutil::ZooKeeper::createImpl,
    // NULL read) against ZooKeeper 3.8 while the DDL queue path is missing; created beforehand, it works.
    for (const p of ['/clickhouse', '/clickhouse/task_queue', '/clickhouse/task_queue/ddl']) {
      await new Promise<void>((resolve) => execFile(ZK_CLI, ['-server', `127.0.0.1:${zkPort}`, 'create', p, ''], { timeout: 60_000 }, () => resolve()));
    }
    await waitFor(async () => Number((await nodes[0].query("SELECT count() FROM system.zookeeper WHERE path = '/clickhouse/task_queue' AND name = 'ddl'")).trim()) === 1,
      { timeoutMs: 10_000, intervalMs: 100, what: 'the distributed DDL queue path in ZooKeeper' });
    return {
      name, nodes, zookeeperPort: zkPort,
      async dispose() {
        for (const p of procs.reverse()) await p.stop().catch(() => undefined);
        await tmp.cleanup();
      },
    };
  } catch (err) {
    for (const p of procs.reverse()) await p.stop().catch(() => undefined);
    await tmp.cleanup();
    throw err;
  }
}
