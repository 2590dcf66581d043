import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ensureBinary } from './binaries.js';
import { freePort } from './ports.js';
import { httpGet } from './probe.js';
import { ManagedProcess, retryOnPortClash } from './process.js';
import { inTempDir, serverControl, type ServerControl } from './server.js';
import { tempDir } from './tmp.js';

export interface PrometheusOptions {
  /** `host:port` (scraped at /metrics) or a full URL such as `http://127.0.0.1:9464/metrics`. */
  scrapeTargets: readonly string[];
  /** Rule files (absolute paths) to load. */
  ruleFiles?: readonly string[];
  /** Scrape and rule-evaluation interval. Default 1 s, so tests do not wait long. */
  scrapeIntervalSec?: number;
  /** Where to send alerts, e.g. `http://127.0.0.1:PORT` from startAlertmanager(). */
  alertmanagerUrl?: string;
  /** `job` label of the targets. Default `warden`. */
  jobName?: string;
  /** Extra prometheus flags, e.g. `--rules.alert.resend-delay=1s`. */
  extraArgs?: readonly string[];
  readyTimeoutMs?: number;
}

export interface PromSample {
  metric: Record<string, string>;
  value: number;
  /** Unix seconds. */
  timestamp: number;
}

export interface PromSeries {
  metric: Record<string, string>;
  values: Array<{ timestamp: number; value: number }>;
}

export interface PromTarget {
  labels: Record<string, string>;
  scrapeUrl: string;
  health: 'up' | 'down' | 'unknown';
  lastError: string;
}

export interface PrometheusServer extends ServerControl {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  /** The generated prometheus.yml (JSON, which YAML accepts). */
  readonly configFile: string;
  /** Instant query (`/api/v1/query`). Scalars come back as one sample with no labels. */
  query(promql: string, time?: Date): Promise<PromSample[]>;
  /** Range query (`/api/v1/query_range`). */
  queryRange(promql: string, start: Date, end: Date, stepSec: number): Promise<PromSeries[]>;
  /** Active scrape targets. Empty for the first ~5 s: Prometheus applies discovered targets on a 5 s tick. */
  targets(): Promise<PromTarget[]>;
  /** Re-reads the config and rule files (`POST /-/reload`). */
  reload(): Promise<void>;
}

export class PrometheusQueryError extends Error {
  override readonly name = 'PrometheusQueryError';
  constructor(
    readonly errorType: string,
    detail: string,
    readonly promql: string,
  ) {
    super(`Prometheus rejected the query (${errorType}): ${detail}\nPromQL: ${promql}`);
  }
}

type ApiResponse = { status: 'success' | 'error'; data?: unknown; errorType?: string; error?: string };

async function api(url: string, promql: string, init?: RequestInit): Promise<unknown> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  let body: ApiResponse;
  try {
    body = JSON.parse(text) as ApiResponse;
  } catch {
    throw new PrometheusQueryError(`http_${res.status}`, text.slice(0, 500), promql);
  }
  if (body.status !== 'success') throw new PrometheusQueryError(body.errorType ?? `http_${res.status}`, body.error ?? text, promql);
  return body.data;
}

/** Builds one scrape job; per-target paths and schemes go through the `__metrics_path__`/`__scheme__` labels. */
function scrapeConfig(opts: PrometheusOptions): Record<string, unknown> {
  const interval = `${opts.scrapeIntervalSec ?? 1}s`;
  const groups = new Map<string, { targets: string[]; labels: Record<string, string> }>();
  for (const t of opts.scrapeTargets) {
    const u = new URL(/^[a-z]+:\/\//i.test(t) ? t : `http://${t}/metrics`);
    const scheme = u.protocol.replace(':', '');
    const metricsPath = u.pathname === '/' ? '/metrics' : u.pathname;
    const key = `${scheme} ${metricsPath}`;
    const g = groups.get(key) ?? { targets: [], labels: { __scheme__: scheme, __metrics_path__: metricsPath } };
    g.targets.push(u.host);
    groups.set(key, g);
  }
  const config: Record<string, unknown> = {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    rule_files: [...(opts.ruleFiles ?? [])].map((f) => path.resolve(f)),
    scrape_configs: [{ job_name: opts.jobName ?? 'warden', static_configs: [...groups.values()] }],
  };
  if (opts.alertmanagerUrl) {
    const am = new URL(opts.alertmanagerUrl);
    config.alerting = {
      alertmanagers: [
        {
          scheme: am.protocol.replace(':', ''),
          path_prefix: am.pathname,
          api_version: 'v2',
          static_configs: [{ targets: [am.host] }],
        },
      ],
    };
  }
  return config;
}

/** Prometheus and Alertmanager both answer `GET /-/ready` with 200 once they serve. */
function startReadyOnHttp(name: string, command: string, args: string[], dir: string, url: string, readyTimeoutMs = 30_000): Promise<ManagedProcess> {
  return ManagedProcess.start({
    name,
    command,
    args,
    dir,
    ready: async () => (await httpGet(`${url}/-/ready`, 1_000)).status === 200,
    readyTimeoutMs,
    pollIntervalMs: 50,
  });
}

/** Starts a private Prometheus scraping `scrapeTargets`, with its TSDB in a throwaway dir. */
export async function startPrometheus(options: PrometheusOptions): Promise<PrometheusServer> {
  const bin = await ensureBinary('prometheus', 'prometheus');
  return retryOnPortClash(async () => {
    const tmp = await tempDir('prometheus');
    return inTempDir(tmp, async () => {
      const port = await freePort();
      const configFile = path.join(tmp.path, 'prometheus.yml');
      await fs.promises.writeFile(configFile, JSON.stringify(scrapeConfig(options), null, 2));
      const url = `http://127.0.0.1:${port}`;
      const args = [
        `--config.file=${configFile}`,
        `--web.listen-address=127.0.0.1:${port}`,
        `--storage.tsdb.path=${path.join(tmp.path, 'data')}`,
        '--web.enable-lifecycle', // for reload()
        ...(options.extraArgs ?? []),
      ];
      const proc = await startReadyOnHttp('prometheus', bin, args, tmp.path, url, options.readyTimeoutMs);
      const q = (p: string, params: Record<string, string>): Promise<unknown> =>
        api(`${url}/api/v1/${p}?${new URLSearchParams(params).toString()}`, params.query ?? p);
      return Object.assign(serverControl(proc, tmp), {
        host: '127.0.0.1' as const,
        port,
        url,
        configFile,
        async query(promql: string, time?: Date): Promise<PromSample[]> {
          const params: Record<string, string> = { query: promql };
          if (time) params.time = String(time.getTime() / 1000);
          const data = (await q('query', params)) as { resultType: string; result: unknown };
          if (data.resultType === 'scalar' || data.resultType === 'string') {
            const [ts, v] = data.result as [number, string];
            return [{ metric: {}, value: Number(v), timestamp: ts }];
          }
          return (data.result as Array<{ metric: Record<string, string>; value: [number, string] }>).map((r) => ({
            metric: r.metric,
            value: Number(r.value[1]),
            timestamp: r.value[0],
          }));
        },
        async queryRange(promql: string, start: Date, end: Date, stepSec: number): Promise<PromSeries[]> {
          const data = (await q('query_range', {
            query: promql,
            start: String(start.getTime() / 1000),
            end: String(end.getTime() / 1000),
            step: String(stepSec),
          })) as { result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }> };
          return data.result.map((r) => ({
            metric: r.metric,
            values: r.values.map(([timestamp, v]) => ({ timestamp, value: Number(v) })),
          }));
        },
        async targets(): Promise<PromTarget[]> {
          const data = (await q('targets', { state: 'active' })) as { activeTargets: PromTarget[] };
          return data.activeTargets.map((t) => ({ labels: t.labels, scrapeUrl: t.scrapeUrl, health: t.health, lastError: t.lastError }));
        },
        async reload(): Promise<void> {
          const res = await fetch(`${url}/-/reload`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
          if (res.status !== 200) throw new Error(`Prometheus reload failed: HTTP ${res.status} ${await res.text()}`);
        },
      });
    });
  });
}

export interface PromtoolResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs promtool (from Debian's `prometheus` package). `stdin` feeds e.g. `promtool check metrics`;
 * a non-zero exit is returned, not thrown, since tests assert on it.
 */
export async function promtool(args: readonly string[], opts: { stdin?: string; cwd?: string } = {}): Promise<PromtoolResult> {
  const bin = await ensureBinary('promtool', 'prometheus');
  return new Promise((resolve, reject) => {
    const child = spawn(bin, [...args], { cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    child.stdin.on('error', () => undefined); // promtool may exit before reading all of stdin
    child.stdin.end(opts.stdin ?? '');
  });
}

// ---- Alertmanager --------------------------------------------------------------------------------

export interface AlertmanagerOptions {
  /** Every alert goes to this webhook (e.g. a node:http server in the test). Ignored if `configYaml` is set. */
  webhookUrl?: string;
  /** A complete alertmanager.yml instead of the generated one. */
  configYaml?: string;
  extraArgs?: readonly string[];
  readyTimeoutMs?: number;
}

export interface AlertmanagerServer extends ServerControl {
  readonly host: '127.0.0.1';
  readonly port: number;
  /** `http://127.0.0.1:PORT` — pass as `alertmanagerUrl` to startPrometheus(). */
  readonly url: string;
  /** Alerts Alertmanager currently holds (`GET /api/v2/alerts`). */
  alerts(): Promise<Array<{ labels: Record<string, string>; annotations: Record<string, string>; status: { state: string } }>>;
}

/** Starts a private Alertmanager (Debian's `prometheus-alertmanager`), clustering off. */
export async function startAlertmanager(options: AlertmanagerOptions = {}): Promise<AlertmanagerServer> {
  const bin = await ensureBinary('alertmanager', 'prometheus-alertmanager');
  return retryOnPortClash(async () => {
    const tmp = await tempDir('alertmanager');
    return inTempDir(tmp, async () => {
      const port = await freePort();
      const configFile = path.join(tmp.path, 'alertmanager.yml');
      const generated = {
        // Zero waits so tests see notifications promptly.
        route: { receiver: 'default', group_by: ['alertname'], group_wait: '0s', group_interval: '1s', repeat_interval: '1h' },
        receivers: [
          options.webhookUrl
            ? { name: 'default', webhook_configs: [{ url: options.webhookUrl, send_resolved: true }] }
            : { name: 'default' },
        ],
      };
      await fs.promises.writeFile(configFile, options.configYaml ?? JSON.stringify(generated, null, 2));
      const url = `http://127.0.0.1:${port}`;
      const args = [
        `--config.file=${configFile}`,
        `--storage.path=${path.join(tmp.path, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--cluster.listen-address=', // the default gossips on 0.0.0.0:9094; empty disables clustering
        ...(options.extraArgs ?? []),
      ];
      const proc = await startReadyOnHttp('alertmanager', bin, args, tmp.path, url, options.readyTimeoutMs);
      return Object.assign(serverControl(proc, tmp), {
        host: '127.0.0.1' as const,
        port,
        url,
        async alerts() {
          const res = await fetch(`${url}/api/v2/alerts`, { signal: AbortSignal.timeout(10_000) });
          if (res.status !== 200) throw new Error(`Alertmanager /api/v2/alerts: HTTP ${res.status}`);
          return (await res.json()) as Array<{ labels: Record<string, string>; annotations: Record<string, string>; status: { state: string } }>;
        },
      });
    });
  });
}
