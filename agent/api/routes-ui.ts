/**
 * The console's static files: `GET /ui` and `/ui/<file>` serve the top-level `ui/` folder shipped in
 * the package (plain ES modules, CSS, no build step, nothing from a CDN). The files hold no data and
 * need no token; everything they show comes from the /v1 API with the token the user enters (kept in
 * sessionStorage), so the console has exactly the API's roles and every ledger read is audited there.
 *
 * Answers carry a strict Content-Security-Policy (only this origin's scripts, styles and API; no
 * inline script, no framing), nosniff and no-store (set by the server for every answer), and the
 * content type of the file's extension; anything else under /ui is a 404.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const UI_PREFIX = '/ui';

export const CONSOLE_CSP = [
  "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:", "connect-src 'self'",
  "font-src 'self'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** The installed `ui/` folder (beside dist/ in the package, or the checkout's), found upwards from this module. */
export function uiDir(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const d = join(dir, 'ui');
    if (existsSync(join(d, 'index.html'))) return d;
    dir = dirname(dir);
  }
  return null;
}

export interface UiFiles {
  /** Handles GET/HEAD under /ui; returns false for other paths. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Bytes of every file served (the bundle size the README states). */
  readonly bytes: number;
}

/**
 * Reads the folder once at start (a few tens of KiB), so a request never touches the disk and a
 * path can only name a file that was there: no traversal is possible.
 */
export function uiFiles(dir: string | null = uiDir()): UiFiles {
  const files = new Map<string, { body: Buffer; type: string }>();
  if (dir) {
    for (const name of readdirSync(dir)) {
      const ext = name.slice(name.lastIndexOf('.'));
      const type = TYPES[ext];
      const full = join(dir, name);
      if (type && statSync(full).isFile()) files.set(name, { body: readFileSync(full), type });
    }
  }
  let bytes = 0;
  for (const f of files.values()) bytes += f.body.length;
  return {
    bytes,
    handle(req, res) {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== UI_PREFIX && !path.startsWith(`${UI_PREFIX}/`)) return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return true;
      }
      // /ui -> /ui/ so the page's relative module URLs resolve under /ui/.
      if (path === UI_PREFIX) {
        res.writeHead(308, { location: `${UI_PREFIX}/` }).end();
        return true;
      }
      const name = path.slice(UI_PREFIX.length + 1) || 'index.html';
      const f = files.get(name);
      if (!f) {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(dir ? `no such console file: ${name}\n` : 'the console files (ui/) are not installed\n');
        return true;
      }
      res.writeHead(200, {
        'content-type': f.type, 'content-length': f.body.length, 'content-security-policy': CONSOLE_CSP,
        'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY',
      });
      res.end(req.method === 'HEAD' ? undefined : f.body);
      return true;
    },
  };
}
