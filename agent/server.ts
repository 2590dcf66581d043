/** The sidecar's HTTP surface: `/metrics` for Prometheus, `/healthz` (alive), `/readyz` (able to do its job), the `/v1` API and the console's files under `/ui`. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { WardenError } from '../core/errors.js';
import type { WardenMetrics } from './metrics.js';

export interface Readiness { ready: boolean; reasons: string[] }

export interface HttpServer { server: Server; url: string; close(): Promise<void> }

export async function startHttpServer(opts: { host: string; port: number; metrics: WardenMetrics; readiness: () => Readiness; api?: { handle(req: IncomingMessage, res: ServerResponse): boolean }; ui?: { handle(req: IncomingMessage, res: ServerResponse): boolean } | null }): Promise<HttpServer> {
  const server = createServer((req, res) => {
    // Answers are never sniffed as another type, nor cached (ledger records, tokens' answers, metrics).
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('cache-control', 'no-store');
    if (opts.api?.handle(req, res)) return;
    if (opts.ui?.handle(req, res)) return;
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      opts.metrics.render().then(
        ({ body, contentType }) => res.writeHead(200, { 'content-type': contentType }).end(body),
        (err) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const r = opts.readiness();
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify(r)}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz, /readyz or /ui\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException) => {
      const where = `${opts.host}:${opts.port}`;
      const why = err.code === 'EADDRINUSE' ? 'the address is in use (another process listens there; set metrics.addr / WARDEN_METRICS_ADDR)'
        : err.code === 'EACCES' ? 'permission denied' : err.code === 'EADDRNOTAVAIL' ? 'no such local address' : err.code ?? err.message;
      reject(new WardenError('WARDEN_UNAVAILABLE', `cannot listen on ${where}: ${why}`, { cause: err }));
    };
    server.once('error', failed);
    server.listen(opts.port, opts.host, () => { server.off('error', failed); resolve(); });
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  return {
    server,
    url: `http://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
