/** `warden breaker list|open|close|auto`: the circuit breakers of a running sidecar, through its HTTP API. */
import type { Command } from 'commander';
import type { BreakerState } from '../../policies/detect/breaker.js';
import type { WardenConfig } from '../config.js';
import { WardenError } from '../../core/errors.js';
import { UsageError } from '../errors.js';
import { configFor, group, out } from './common.js';

export interface BreakerOpts { url?: string; token?: string; actor?: string; policy?: string; json?: boolean }

export function registerBreakerCommands(program: Command): void {
  const breaker = group(program, 'breaker', 'circuit breakers of the running sidecar (through its HTTP API)');
  const withApi = (c: Command) => c
    .option('--url <url>', 'sidecar base URL (default: http://<metrics.addr> from the config)')
    .option('--token <token>', 'API bearer token (default: $WARDEN_API_TOKEN)')
    .option('--json', 'print the JSON response');
  withApi(breaker.command('list').description('every breaker with its state (compliance or admin token)'))
    .action(async (o: BreakerOpts, cmd: Command) => {
      const body = await call(configFor(cmd), o, 'GET', '/v1/breakers');
      print(body, o);
    });
  for (const [name, desc] of [['open', 'force open (held until auto)'], ['close', 'force closed (held until auto)'], ['auto', 'hand the breaker back to its policy']] as const) {
    withApi(breaker.command(name).argument('<scope>', 'breaker scope, e.g. bullmq.queue.ingest, temporal.activity.callModel').description(`${desc}; admin token; recorded with the actor`))
      .requiredOption('--actor <name>', 'who is doing this (written to the ledger)')
      .option('--policy <name>', 'only the breaker of this policy')
      .action(async (scope: string, o: BreakerOpts, cmd: Command) => {
        const q = new URLSearchParams({ actor: o.actor! });
        if (o.policy) q.set('policy', o.policy);
        const body = await call(configFor(cmd), o, 'POST', `/v1/breakers/${encodeURIComponent(scope)}/${name}?${q}`);
        print(body, o);
      });
  }
}

/** One call to the sidecar's breaker API (base URL from --url or metrics.addr, token from --token or WARDEN_API_TOKEN). */
export async function call<T = { breakers: BreakerState[] }>(cfg: WardenConfig, o: BreakerOpts, method: string, path: string): Promise<T> {
  const base = o.url ?? `http://${cfg.metrics.addr}`;
  const token = o.token ?? process.env.WARDEN_API_TOKEN;
  if (!token) throw new UsageError('the breaker commands need an API token: --token <token> or WARDEN_API_TOKEN');
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
  } catch (err) {
    throw new WardenError('WARDEN_UNAVAILABLE', `cannot reach the sidecar at ${base}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
  }
  const text = await res.text();
  if (!res.ok) {
    let msg = text;
    try { msg = (JSON.parse(text) as { error: string }).error; } catch { /* not JSON */ }
    throw new UsageError(`${method} ${path.split('?')[0]} failed (${res.status}): ${msg}`);
  }
  return JSON.parse(text) as T;
}

function print(body: { breakers: BreakerState[] }, o: BreakerOpts): void {
  if (o.json) { out(`${JSON.stringify(body, null, 2)}\n`); return; }
  if (body.breakers.length === 0) { out('no breakers\n'); return; }
  for (const b of body.breakers) {
    const held = b.forced ? `  forced ${b.forced} by ${b.forced_by}` : '';
    out(`${b.key}  ${b.phase}  policy ${b.policy}@${b.policy_version}  since ${new Date(b.since).toISOString()}${held}  ${b.reason}\n`);
  }
}
