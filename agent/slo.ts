/**
 * `warden slo generate`: Prometheus recording and alerting rules from the `slos` in the config, in the
 * style Sloth and Pyrra generate, so nobody hand-edits burn-rate PromQL.
 *
 * Per SLO and SLI (success ratio; latency when configured):
 * - `warden:slo_errors:ratio_rate<w>` for w in 5m 30m 1h 2h 6h 1d 3d and the SLO period: the share of
 *   bad events over that window (failed jobs / finished jobs; attempts slower than the threshold /
 *   attempts, read from the histogram bucket whose `le` is the threshold);
 * - `warden:slo_objective:ratio` and `warden:slo_error_budget_remaining:ratio` for dashboards;
 * - four multi-window multi-burn-rate alerts (Google SRE workbook, ch. 5): 14.4x over 1h and 5m and 6x
 *   over 6h and 30m page; 3x over 1d and 2h and 1x over 3d and 6h open a ticket. Both windows must burn:
 *   the long one proves the budget is really being spent, the short one that it still is (so the
 *   alert resets soon after a fix).
 */
import { stringify } from 'yaml';
import type { SloSpec } from './slo-config.js';

export const SLO_WINDOWS = ['5m', '30m', '1h', '2h', '6h', '1d', '3d'] as const;

/** The four alerts. `for` as Pyrra uses for a 30-day period: long enough to skip one bad scrape. */
export const BURN_RATE_ALERTS = [
  { severity: 'page', factor: 14.4, long: '1h', short: '5m', for: '2m' },
  { severity: 'page', factor: 6, long: '6h', short: '30m', for: '15m' },
  { severity: 'ticket', factor: 3, long: '1d', short: '2h', for: '1h' },
  { severity: 'ticket', factor: 1, long: '3d', short: '6h', for: '3h' },
] as const;

export const SLO_ALERT_NAME = 'WardenSLOErrorBudgetBurn';

type Sli = 'success' | 'latency';

interface RecordingRule { record: string; expr: string; labels: Record<string, string> }
interface AlertingRule { alert: string; expr: string; for: string; labels: Record<string, string>; annotations: Record<string, string> }
export interface RuleGroup { name: string; rules: Array<RecordingRule | AlertingRule> }

/** A number as PromQL and YAML should show it: 1 - 0.99 is 0.01, not 0.010000000000000009. */
const num = (v: number): string => String(Number(v.toPrecision(12)));

function selector(slo: SloSpec, extra: string[] = []): string {
  const m: string[] = [];
  if (slo.system) m.push(`system="${slo.system}"`);
  m.push(`queue="${slo.queue}"`);
  if (slo.jobName) m.push(`name="${slo.jobName}"`);
  return `{${[...m, ...extra].join(',')}}`;
}

/** prom-client writes integer bounds as `1`; Prometheus 3 rewrites them to `1.0` at scrape. Match both. */
function leMatcher(threshold: number): string {
  const s = num(threshold);
  return Number.isInteger(threshold) ? `le=~"${s}|${s}\\\\.0"` : `le="${s}"`;
}

function errorRatioExpr(slo: SloSpec, sli: Sli, window: string): string {
  if (sli === 'success') {
    // `or vector(0)`: a queue that never failed has no failed series, and its error ratio is 0, not absent.
    return `(sum(rate(warden_jobs_total${selector(slo, ['outcome="failed"'])}[${window}])) or vector(0))\n` +
      `/\nsum(rate(warden_jobs_total${selector(slo, ['outcome=~"completed|failed"'])}[${window}]))`;
  }
  const t = slo.latency!.thresholdSeconds;
  return `1 - (\n  sum(rate(warden_job_duration_seconds_bucket${selector(slo, [leMatcher(t)])}[${window}]))\n` +
    `  /\n  sum(rate(warden_job_duration_seconds_count${selector(slo)}[${window}]))\n)`;
}

function sliLabels(slo: SloSpec, sli: Sli): Record<string, string> {
  return { slo: slo.name, sli, queue: slo.queue, ...(slo.jobName ? { name: slo.jobName } : {}) };
}

function rulesFor(slo: SloSpec, sli: Sli): Array<RecordingRule | AlertingRule> {
  const objective = sli === 'success' ? slo.objective : slo.latency!.objective;
  const budget = num(1 - objective);
  const labels = sliLabels(slo, sli);
  const match = `{slo="${slo.name}",sli="${sli}"}`;
  const what = sli === 'success'
    ? `${num(objective * 100)}% of jobs complete`
    : `${num(objective * 100)}% of attempts finish within ${num(slo.latency!.thresholdSeconds)}s`;
  const rules: Array<RecordingRule | AlertingRule> = [];
  for (const w of [...SLO_WINDOWS, ...(SLO_WINDOWS.includes(slo.window as never) ? [] : [slo.window])]) {
    rules.push({ record: `warden:slo_errors:ratio_rate${w}`, expr: errorRatioExpr(slo, sli, w), labels });
  }
  rules.push({ record: 'warden:slo_objective:ratio', expr: `vector(${num(objective)})`, labels });
  rules.push({
    record: 'warden:slo_error_budget_remaining:ratio',
    expr: `1 - warden:slo_errors:ratio_rate${slo.window}${match} / ${budget}`,
    labels,
  });
  for (const a of BURN_RATE_ALERTS) {
    const threshold = `(${num(a.factor)} * ${budget})`;
    rules.push({
      alert: SLO_ALERT_NAME,
      expr: `warden:slo_errors:ratio_rate${a.long}${match} > ${threshold}\nand\nwarden:slo_errors:ratio_rate${a.short}${match} > ${threshold}`,
      for: a.for,
      labels: { severity: a.severity, slo: slo.name, sli, long_window: a.long, short_window: a.short, burn_rate: num(a.factor) },
      annotations: {
        summary: `SLO ${slo.name} (${sli}) is burning its ${slo.window} error budget ${num(a.factor)}x too fast`,
        description: `Objective: ${what} on queue ${slo.queue}${slo.jobName ? `, job ${slo.jobName}` : ''}. ` +
          `Error ratio over ${a.long} is {{ $value | humanizePercentage }} (budget ${num(Number(budget) * 100)}%), and still burning over ${a.short}. ` +
          `At this rate the ${slo.window} budget lasts ${(parseDays(slo.window) / a.factor).toFixed(1)} days.`,
      },
    });
  }
  return rules;
}

const parseDays = (period: string): number => Number(period.replace('d', ''));

export function sloRuleGroups(slos: readonly SloSpec[]): RuleGroup[] {
  return slos.map((slo) => ({
    name: `warden-slo-${slo.name}`,
    rules: [...rulesFor(slo, 'success'), ...(slo.latency ? rulesFor(slo, 'latency') : [])],
  }));
}

/** The rule file: YAML that `promtool check rules` accepts, with a header naming where it came from. */
export function generateSloRules(slos: readonly SloSpec[], source: string): string {
  const header = `# Generated by \`warden slo generate\` from ${source}. Do not edit: change the slos in the config and regenerate.\n`;
  return header + stringify({ groups: sloRuleGroups(slos) }, { lineWidth: 0, aliasDuplicateObjects: false });
}
