/** Reads the committed dashboards and provisioning, and expands what Grafana would expand before a query runs. */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';

export const GRAFANA_DIR = resolve('grafana');
export const DASHBOARD_DIR = join(GRAFANA_DIR, 'dashboards');

export interface Target { refId: string; datasource?: { type: string; uid: string }; expr?: string; rawSql?: string }
export interface Panel {
  id: number; type: string; title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
  fieldConfig?: { defaults?: unknown; overrides?: Array<{ properties: Array<{ id: string; value: unknown }> }> };
}
export interface Dashboard { uid: string; title: string; panels: Panel[]; templating: { list: Array<{ name: string; type: string; datasource?: { uid: string }; query?: unknown }> } }

export function loadDashboards(): Array<{ file: string; dashboard: Dashboard }> {
  return readdirSync(DASHBOARD_DIR).filter((f) => f.endsWith('.json')).sort()
    .map((file) => ({ file, dashboard: JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8')) as Dashboard }));
}

export function loadDashboard(file: string): Dashboard {
  return JSON.parse(readFileSync(join(DASHBOARD_DIR, file), 'utf8')) as Dashboard;
}

/** Panels including those nested in collapsed rows. */
export function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

export interface ProvisionedDatasource { name: string; uid: string; type: string }

export function provisionedDatasources(): ProvisionedDatasource[] {
  const dir = join(GRAFANA_DIR, 'provisioning', 'datasources');
  return readdirSync(dir).filter((f) => /\.ya?ml$/.test(f))
    .flatMap((f) => (parseYaml(readFileSync(join(dir, f), 'utf8')) as { datasources: ProvisionedDatasource[] }).datasources);
}

/** Grafana's variable syntaxes: $var, ${var}, ${var:format}, [[var]]. */
const VARIABLE = /\$\{(\w+)(?::(\w+))?\}|\$(\w+)|\[\[(\w+)\]\]/g;

/**
 * A panel's PromQL as Grafana sends it: template variables replaced by `vars` (multi-value variables
 * with "All" become their allValue `.*`), and the built-ins by the values Grafana computes.
 */
export function expandPromql(expr: string, vars: Record<string, string>, builtins = { rateInterval: '1m', interval: '15s', range: '5m' }): string {
  return expr.replace(VARIABLE, (whole, a, _fmt, b, c) => {
    const name = (a ?? b ?? c) as string;
    if (name === '__rate_interval') return builtins.rateInterval;
    if (name === '__interval') return builtins.interval;
    if (name === '__range') return builtins.range;
    if (name in vars) return vars[name];
    throw new Error(`unknown variable ${whole} in ${expr}`);
  });
}

/** The ClickHouse plugin's macros and the template variables, expanded as the plugin does for a time range. */
export function expandSql(sql: string, vars: Record<string, string>, from: Date, to: Date): string {
  const f = Math.floor(from.getTime() / 1000);
  const t = Math.floor(to.getTime() / 1000);
  return sql
    .replace(/\$__timeFilter\((\w+)\)/g, (_m, col) => `${col} >= toDateTime(${f}) AND ${col} <= toDateTime(${t})`)
    .replace(/\$__fromTime\b/g, `toDateTime(${f})`)
    .replace(/\$__toTime\b/g, `toDateTime(${t})`)
    .replace(VARIABLE, (whole, a, _fmt, b, c) => {
      const name = (a ?? b ?? c) as string;
      if (name in vars) return vars[name];
      throw new Error(`unknown variable ${whole} in ${sql}`);
    });
}

/** Every PromQL target of a dashboard, with its panel. */
export function promTargets(d: Dashboard): Array<{ panel: Panel; target: Target }> {
  return allPanels(d).flatMap((panel) => (panel.targets ?? []).filter((t) => typeof t.expr === 'string').map((target) => ({ panel, target })));
}

export function sqlTargets(d: Dashboard): Array<{ panel: Panel; target: Target }> {
  return allPanels(d).flatMap((panel) => (panel.targets ?? []).filter((t) => typeof t.rawSql === 'string').map((target) => ({ panel, target })));
}
