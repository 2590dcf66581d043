/** Runs the real `warden start` command as a child process, as a user would (so kill -9 is real). */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePort, httpGet, ManagedProcess } from './index.js';

export interface SidecarProcess {
  url: string;
  proc: ManagedProcess;
  metrics(): Promise<string>;
}

const CLI = resolve('dist/agent/cli.js');

export async function startSidecarProcess(o: { redisUrl: string; dataDir: string; otlp?: string; queues?: string[]; env?: Record<string, string>; config?: string }): Promise<SidecarProcess> {
  mkdirSync(o.dataDir, { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = await ManagedProcess.start({
    name: 'warden',
    command: process.execPath,
    args: [CLI, 'start', ...(o.config ? ['--config', o.config] : [])],
    dir: o.dataDir,
    cwd: process.cwd(),
    env: {
      PATH: process.env.PATH,
      WARDEN_REDIS_URL: o.redisUrl,
      WARDEN_DATA_DIR: join(o.dataDir, 'data'),
      WARDEN_METRICS_ADDR: `127.0.0.1:${port}`,
      WARDEN_LOG_LEVEL: 'info',
      ...(o.queues ? { WARDEN_QUEUES: o.queues.join(',') } : {}),
      ...(o.otlp ? { OTEL_EXPORTER_OTLP_ENDPOINT: o.otlp } : {}),
      ...o.env,
    },
    ready: async () => (await httpGet(`${url}/readyz`)).status === 200,
    readyTimeoutMs: 20_000,
    stopGraceMs: 10_000,
  });
  return { url, proc, metrics: async () => (await httpGet(`${url}/metrics`)).body };
}

export { sumMetric } from './index.js';
