/**
 * The sidecar as users run it: the real `warden start` child process (dist/agent/cli.js), configured
 * through environment variables, with its CPU and RSS read from /proc and its progress read from its
 * own /metrics. A tiny OTLP/HTTP sink accepts its spans so span export is part of what is measured.
 */
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { freePort, httpGet, ManagedProcess, sumMetric } from '../../test/harness/index.js';

export { sumMetric };
import { ProcSampler } from './proc-sampler.js';
import { repoRoot } from './report.js';

/** The built CLI (tests build dist/ in their global setup; `npm run bench` builds first). */
const cliPath = (): string => path.join(repoRoot(), 'dist', 'agent', 'cli.js');

/**
 * Node flags the Dockerfile starts the sidecar with (NODE_OPTIONS there; test/grafana/compose.test.ts
 * checks they agree). A heap cap makes V8 collect instead of growing its reserved heap without need.
 */
export const DEPLOYED_NODE_ARGS = '--max-old-space-size=384';

export interface SidecarProcess {
  url: string;
  proc: ManagedProcess;
  pid: number;
  dataDir: string;
  /** Raw Prometheus text from /metrics. */
  metricsText(): Promise<string>;
  /** Sum of a metric's samples (optionally only those whose labels include `labels`). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  sampler(intervalMs?: number): ProcSampler;
  stop(): Promise<void>;
}

export interface SidecarOptions {
  redisUrl: string;
  /** Parent directory; the data dir is `<dir>/data`, the log `<dir>/warden.log`. */
  dir: string;
  queues: string[];
  /** OTLP/HTTP base URL for spans; unset: no export. */
  otlp?: string;
  /** `off` (default), or a ClickHouse server URL to ship to. */
  clickhouseUrl?: string;
  env?: Record<string, string>;
}

export async function startSidecar(o: SidecarOptions): Promise<SidecarProcess> {
  mkdirSync(o.dir, { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const dataDir = path.join(o.dir, 'data');
  const proc = await ManagedProcess.start({
    name: 'warden',
    command: process.execPath,
    // The sidecar runs as deployed: the Dockerfile's heap cap (DEPLOYED_NODE_ARGS). WARDEN_BENCH_SIDECAR_NODE_ARGS
    // replaces it, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` (where the sidecar spends its time) or '' (Node's defaults).
    args: [...(process.env.WARDEN_BENCH_SIDECAR_NODE_ARGS ?? DEPLOYED_NODE_ARGS).split(' ').filter(Boolean), cliPath(), 'start'],
    dir: o.dir,
    env: {
      PATH: process.env.PATH,
      WARDEN_REDIS_URL: o.redisUrl,
      WARDEN_DATA_DIR: dataDir,
      WARDEN_METRICS_ADDR: `127.0.0.1:${port}`,
      WARDEN_LOG_LEVEL: 'warn',
      WARDEN_QUEUES: o.queues.join(','),
      ...(o.clickhouseUrl ? { WARDEN_CLICKHOUSE: 'server', WARDEN_CLICKHOUSE_URL: o.clickhouseUrl } : { WARDEN_CLICKHOUSE: 'off' }),
      ...(o.otlp ? { OTEL_EXPORTER_OTLP_ENDPOINT: o.otlp } : {}),
      // WARDEN_BENCH_SIDECAR_ENV, e.g. `MALLOC_ARENA_MAX=2`: extra environment for the sidecar (comma-separated K=V).
      ...Object.fromEntries((process.env.WARDEN_BENCH_SIDECAR_ENV ?? '').split(',').filter((kv) => kv.includes('=')).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
      ...o.env,
    },
    // /healthz, not /readyz: a sidecar whose ClickHouse is down (the outage scenario) is alive but not ready.
    ready: async () => (await httpGet(`${url}/healthz`)).status === 200,
    readyTimeoutMs: 30_000,
    stopGraceMs: 20_000,
  });
  const metricsText = async () => (await httpGet(`${url}/metrics`, 10_000)).body;
  return {
    url,
    proc,
    pid: proc.pid!,
    dataDir,
    metricsText,
    metric: async (name, labels = {}) => sumMetric(await metricsText(), name, labels),
    sampler: (intervalMs) => new ProcSampler(proc.pid!, intervalMs).start(),
    stop: () => proc.stop(),
  };
}

/** Accepts OTLP/HTTP trace exports and only counts bytes: the sidecar's export cost is measured, not a collector's. */
export async function startSpanSink(): Promise<{ url: string; requests: () => number; bytes: () => number; close(): Promise<void> }> {
  let requests = 0;
  let bytes = 0;
  const server: Server = createServer((req, res) => {
    req.on('data', (c: Buffer) => { bytes += c.length; });
    req.on('end', () => { requests++; res.writeHead(200, { 'content-type': 'application/json' }).end('{}'); });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    bytes: () => bytes,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}
