/**
 * The API's route table: each route is a method, a path (exact, or a pattern whose groups become
 * `params`), the roles it accepts and its handler. The dispatcher refuses in a fixed order: a path no
 * route knows is a 404, a role the route does not accept a 403, a known path with another method a 405
 * with `Allow`. A route may be a catch-all (a pattern over a prefix, listed after the specific routes)
 * whose handler answers the 404 for its own family of endpoints.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Caller, Role } from './auth.js';
import { ApiError } from './errors.js';

export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  path: string;
  caller: Caller;
  /** The request body (empty unless the route sets `body`). */
  body: Buffer;
  /** The pattern's groups, in order (empty for an exact path). */
  params: string[];
}

export interface Route {
  /** An HTTP method, or '*' for any. */
  method: string;
  /** An exact path, or a pattern matched against the whole path. */
  path: string | RegExp;
  roles: readonly Role[];
  /** Keep the request body for the handler (otherwise it is read and dropped). */
  body?: boolean;
  /** Answers the request; returns how many records or rows it served (for the read audit). */
  handle(ctx: RouteContext): Promise<number>;
}

export type Resolution =
  | { route: Route; params: string[]; refusal?: undefined }
  | { route?: undefined; params?: undefined; refusal: ApiError };

export class Router {
  constructor(
    private readonly routes: readonly Route[],
    /** The 404 for a path no route knows. */
    private readonly notFound: (path: string) => ApiError = (path) => new ApiError(404, `no such endpoint: ${path}`),
  ) {}

  /** The route for a request, or why it is refused (404, then 403, then 405). Never throws. */
  resolve(method: string, path: string, role: Role): Resolution {
    const known: { route: Route; params: string[] }[] = [];
    for (const route of this.routes) {
      const params = matchPath(route.path, path);
      if (params) known.push({ route, params });
    }
    if (known.length === 0) return { refusal: this.notFound(path) };
    const hit = known.find((k) => k.route.method === method || k.route.method === '*');
    const roles = (hit ?? known[0]).route.roles;
    if (!roles.includes(role)) return { refusal: new ApiError(403, `role "${role}" may not ${method} ${path} (needs ${roles.join(' or ')})`) };
    if (!hit) {
      const allow = [...new Set(known.map((k) => k.route.method))];
      return { refusal: new ApiError(405, `${path} accepts ${allow.join(', ')} only`, { headers: { allow: allow.join(', ') } }) };
    }
    return hit;
  }
}

function matchPath(pattern: string | RegExp, path: string): string[] | null {
  if (typeof pattern === 'string') return pattern === path ? [] : null;
  const m = pattern.exec(path);
  return m && m[0] === path ? m.slice(1).map((g) => g ?? '') : null;
}
