import path from 'node:path';
import { ensureBinary } from './binaries.js';
import { freePort } from './ports.js';
import { httpGet } from './probe.js';
import { ManagedProcess, retryOnPortClash } from './process.js';
import { inTempDir, serverControl, type ServerControl } from './server.js';
import { tempDir } from './tmp.js';

/** The Debian package's config; only paths, ports and logs are overridden on the command line. */
const CONFIG_FILE = '/etc/clickhouse-server/config.xml';

export interface ClickHouseOptions {
  /** Extra `--key=value` config overrides (after the `--`). */
  extraArgs?: readonly string[];
  readyTimeoutMs?: number;
}

export interface ClickHouseServer extends ServerControl {
  readonly host: '127.0.0.1';
  readonly httpPort: number;
  /** Native protocol port (clickhouse-client). */
  readonly tcpPort: number;
  /** `http://127.0.0.1:HTTP` — what @clickhouse/client takes as `url`. */
  readonly url: string;
  /** Runs `sql` over HTTP (POST body) and returns the response text; throws ClickHouseQueryError on non-200. */
  query(sql: string): Promise<string>;
}

export class ClickHouseQueryError extends Error {
  override readonly name = 'ClickHouseQueryError';
  constructor(
    readonly status: number,
    readonly body: string,
    readonly sql: string,
  ) {
    super(`ClickHouse answered HTTP ${status}: ${body.trim()}\nSQL: ${sql}`);
  }
}

async function clickHouseQuery(url: string, sql: string): Promise<string> {
  const res = await fetch(url, { method: 'POST', body: sql, signal: AbortSignal.timeout(30_000) });
  const body = await res.text();
  if (res.status !== 200) throw new ClickHouseQueryError(res.status, body, sql);
  return body;
}

/**
 * Starts a private clickhouse-server (Debian's 18.16) with a throwaway dir and its own HTTP, native and
 * interserver ports. Runs as whatever user we are (root here), which this build allows.
 */
export async function startClickHouse(options: ClickHouseOptions = {}): Promise<ClickHouseServer> {
  const bin = await ensureBinary('clickhouse-server', 'clickhouse-server clickhouse-client');
  return retryOnPortClash(async () => {
    const tmp = await tempDir('clickhouse');
    return inTempDir(tmp, async () => {
      const [httpPort, tcpPort, interserverPort] = [await freePort(), await freePort(), await freePort()];
      const d = (sub: string): string => path.join(tmp.path, sub);
      const args = [
        `--config-file=${CONFIG_FILE}`,
        '--',
        `--path=${tmp.path}/`,
        `--tmp_path=${d('tmp')}/`,
        `--user_files_path=${d('uf')}/`,
        `--format_schema_path=${d('fs')}/`,
        `--logger.log=${d('log')}`,
        `--logger.errorlog=${d('err')}`,
        `--http_port=${httpPort}`,
        `--tcp_port=${tcpPort}`,
        `--interserver_http_port=${interserverPort}`,
        // The stock config listens on ::1 and 127.0.0.1; freePort() only checked 127.0.0.1, and a port
        // taken on ::1 would make the server fail. This override replaces the whole listen_host list.
        '--listen_host=127.0.0.1',
        ...(options.extraArgs ?? []),
      ];
      const url = `http://127.0.0.1:${httpPort}`;
      const proc = await ManagedProcess.start({
        name: 'clickhouse',
        command: bin,
        args,
        dir: tmp.path,
        ready: async () => {
          const { status, body } = await httpGet(`${url}/ping`, 1_000);
          return status === 200 && body.trim() === 'Ok.';
        },
        readyTimeoutMs: options.readyTimeoutMs ?? 30_000,
        pollIntervalMs: 25,
        stopGraceMs: 15_000,
        extraLogFiles: [d('err'), d('log')],
      });
      return Object.assign(serverControl(proc, tmp), {
        host: '127.0.0.1' as const,
        httpPort,
        tcpPort,
        url,
        query: (sql: string) => clickHouseQuery(url, sql),
      });
    });
  });
}
