/**
 * The Prometheus rules: `promtool check rules` on every rule file, `promtool test rules` on every unit
 * test file (each alert firing when it should and quiet when not), and the committed SLO rules being
 * exactly what `warden slo generate` writes from grafana/slos.yaml.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../agent/config.js';
import { BURN_RATE_ALERTS, generateSloRules, SLO_ALERT_NAME } from '../../agent/slo.js';
import { promtool, tempDir, type TempDir } from '../harness/index.js';

const RULES_DIR = resolve('grafana/prometheus');
const ruleFiles = readdirSync(RULES_DIR).filter((f) => /^warden-.*\.yml$/.test(f)).sort();
const testFiles = readdirSync(join(RULES_DIR, 'tests')).filter((f) => f.endsWith('.yml')).sort();
const CLI = resolve('dist/agent/cli.js');

let tmp: TempDir;
beforeAll(async () => { tmp = await tempDir('grafana-rules'); });
afterAll(async () => { await tmp?.cleanup(); });

function warden(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH } }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

type Rule = { alert?: string; record?: string; expr: string; labels?: Record<string, string> };
const rulesOf = (file: string): Rule[] => (parseYaml(readFileSync(join(RULES_DIR, file), 'utf8')) as { groups: Array<{ rules: Rule[] }> }).groups.flatMap((g) => g.rules);

describe('Prometheus rules', () => {
  it('has the alert and the SLO rule files, and a unit-test file for each', () => {
    expect(ruleFiles).toEqual(['warden-alerts.yml', 'warden-slos.yml']);
    expect(testFiles).toEqual(['warden-alerts.test.yml', 'warden-slos.test.yml']);
  });

  it('promtool check rules passes on every rule file', async () => {
    const r = await promtool(['check', 'rules', ...ruleFiles.map((f) => join(RULES_DIR, f))]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/warden-alerts\.yml\s+SUCCESS: 9 rules found/);
  });

  it('promtool test rules passes on every unit-test file', async () => {
    const r = await promtool(['test', 'rules', ...testFiles.map((f) => join(RULES_DIR, 'tests', f))]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout.match(/SUCCESS/g)).toHaveLength(testFiles.length);
  });

  it('unit-tests every Warden alert, both firing and staying quiet', () => {
    const tests = parseYaml(readFileSync(join(RULES_DIR, 'tests', 'warden-alerts.test.yml'), 'utf8')) as {
      tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts: unknown[] }> }>;
    };
    const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const rule of rulesOf('warden-alerts.yml')) {
      const mine = cases.filter((c) => c.alertname === rule.alert);
      expect(mine.some((c) => c.exp_alerts.length > 0), `${rule.alert} fires in a test`).toBe(true);
      expect(mine.some((c) => c.exp_alerts.length === 0), `${rule.alert} stays quiet in a test`).toBe(true);
    }
    const names = rulesOf('warden-alerts.yml').map((r) => r.alert);
    expect(names).toEqual(expect.arrayContaining(['WardenBreakerOpen', 'WardenLedgerBacklogGrowing', 'WardenLedgerShipErrors', 'WardenLedgerVerifyFailed',
      'WardenCollectorGap', 'WardenDriftDetected', 'WardenSidecarDown', 'WardenSidecarAbsent']));
    expect(rulesOf('warden-alerts.yml').find((r) => r.alert === 'WardenSidecarAbsent')!.expr).toContain('absent(up{job="warden"})');
  });

  it('the SLO unit tests exercise all four burn-rate alerts and the latency SLI', () => {
    const text = readFileSync(join(RULES_DIR, 'tests', 'warden-slos.test.yml'), 'utf8');
    for (const a of BURN_RATE_ALERTS) expect(text).toContain(`long_window: ${a.long}, short_window: ${a.short}, burn_rate: "${a.factor}"`);
    expect(text).toContain('sli: latency');
  });
});

describe('warden slo generate', () => {
  it('the committed warden-slos.yml is what the generator writes from grafana/slos.yaml (nobody hand-edited it)', async () => {
    const out = join(tmp.path, 'slos.yml');
    const r = await warden(['slo', 'generate', '--config', 'grafana/slos.yaml', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('wrote 4 SLO rule group(s)');
    expect(readFileSync(out, 'utf8')).toBe(readFileSync(join(RULES_DIR, 'warden-slos.yml'), 'utf8'));
  });

  it('writes per SLO: error ratios over 5m..3d and the period, objective, budget left, and four MWMB alerts per SLI', () => {
    const cfg = loadConfig({ file: 'grafana/slos.yaml', env: {} });
    const doc = parseYaml(generateSloRules(cfg.slos, 'x')) as { groups: Array<{ name: string; rules: Rule[] }> };
    const g = doc.groups.find((x) => x.name === 'warden-slo-demo-model-call')!;
    const records = g.rules.filter((r) => r.record && r.labels?.sli === 'success').map((r) => r.record);
    expect(records).toEqual(['5m', '30m', '1h', '2h', '6h', '1d', '3d', '30d'].map((w) => `warden:slo_errors:ratio_rate${w}`)
      .concat(['warden:slo_objective:ratio', 'warden:slo_error_budget_remaining:ratio']));
    const alerts = g.rules.filter((r) => r.alert === SLO_ALERT_NAME);
    expect(alerts).toHaveLength(8); // success and latency
    expect(alerts.map((a) => a.labels!.severity)).toEqual(['page', 'page', 'ticket', 'ticket', 'page', 'page', 'ticket', 'ticket']);
    expect(alerts[0].expr).toBe('warden:slo_errors:ratio_rate1h{slo="demo-model-call",sli="success"} > (14.4 * 0.01)\nand\nwarden:slo_errors:ratio_rate5m{slo="demo-model-call",sli="success"} > (14.4 * 0.01)');
    const latency = g.rules.find((r) => r.record === 'warden:slo_errors:ratio_rate5m' && r.labels?.sli === 'latency')!;
    expect(latency.expr).toContain('warden_job_duration_seconds_bucket{system="bullmq",queue="demo-model-call",name="generate",le="0.25"}[5m]');
    // demo-embed has no latency objective: no latency rules.
    expect(doc.groups.find((x) => x.name === 'warden-slo-demo-embed')!.rules.some((r) => r.labels?.sli === 'latency')).toBe(false);
  });

  it('an integer latency threshold matches le="1" (prom-client) and le="1.0" (Prometheus 3 normalizes), checked by promtool', async () => {
    const slos = [{ name: 'slow', queue: 'q', objective: 0.99, latency: { thresholdSeconds: 1, objective: 0.9 }, window: '30d' as const }];
    const rules = join(tmp.path, 'int-threshold.yml');
    writeFileSync(rules, generateSloRules(slos, 'test'));
    const test = join(tmp.path, 'int-threshold.test.yml');
    const series = (le: string, inst: string, good: number) => [
      { series: `warden_job_duration_seconds_bucket{queue="q",le="${le}",instance="${inst}"}`, values: `0+${good}x20` },
      { series: `warden_job_duration_seconds_count{queue="q",instance="${inst}"}`, values: '0+100x20' },
    ];
    writeFileSync(test, JSON.stringify({
      rule_files: [rules], evaluation_interval: '1m',
      tests: [
        { interval: '1m', input_series: series('1', 'a', 80), promql_expr_test: [{ expr: 'warden:slo_errors:ratio_rate5m{sli="latency"}', eval_time: '10m', exp_samples: [{ labels: 'warden:slo_errors:ratio_rate5m{slo="slow",sli="latency",queue="q"}', value: 0.19999999999999996 }] }] },
        { interval: '1m', input_series: series('1.0', 'b', 80), promql_expr_test: [{ expr: 'warden:slo_errors:ratio_rate5m{sli="latency"}', eval_time: '10m', exp_samples: [{ labels: 'warden:slo_errors:ratio_rate5m{slo="slow",sli="latency",queue="q"}', value: 0.19999999999999996 }] }] },
      ],
    }));
    const r = await promtool(['test', 'rules', test]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it('refuses a config without slos, naming what to add', async () => {
    const cfg = join(tmp.path, 'empty.yaml');
    writeFileSync(cfg, 'log: { level: warn }\n');
    const r = await warden(['slo', 'generate', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('the configuration has no slos');
  });

  it('refuses a latency threshold that is not a histogram bucket boundary, listing the usable ones', async () => {
    const cfg = join(tmp.path, 'bad.yaml');
    writeFileSync(cfg, 'slos:\n  - { name: x, queue: q, objective: 0.99, latency: { thresholdSeconds: 0.3, objective: 0.95 } }\n');
    const r = await warden(['slo', 'generate', '--config', cfg]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('slos.0.latency.thresholdSeconds: must be a bucket boundary of warden_job_duration_seconds');
    expect(r.stderr).toContain('0.25, 0.5, 1');
  });

  it('refuses objectives outside (0, 1), duplicate names and unknown keys, naming the key', async () => {
    const cases: Array<[string, string]> = [
      ['slos:\n  - { name: x, queue: q, objective: 1 }\n', 'slos.0.objective: expected a ratio below 1'],
      ['slos:\n  - { name: x, queue: q, objective: 99 }\n', 'slos.0.objective'],
      ['slos:\n  - { name: x, queue: q, objective: 0.9 }\n  - { name: x, queue: r, objective: 0.9 }\n', 'slos.1.name: duplicate SLO name "x"'],
      ['slos:\n  - { name: x, queue: q, objective: 0.9, jobname: a }\n', 'slos.0: unknown key(s) jobname'],
      ['slos:\n  - { name: "a b", queue: q, objective: 0.9 }\n', 'slos.0.name: expected a short name'],
    ];
    for (const [yaml, message] of cases) {
      const cfg = join(tmp.path, 'case.yaml');
      writeFileSync(cfg, yaml);
      const r = await warden(['slo', 'generate', '--config', cfg]);
      expect(r.code, yaml).toBe(2);
      expect(r.stderr, yaml).toContain(message);
    }
  });

  it('prints to stdout without --out', async () => {
    const r = await warden(['slo', 'generate', '--config', 'grafana/slos.yaml']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^# Generated by `warden slo generate` from slos\.yaml/);
    expect(r.stdout).toContain('name: warden-slo-demo-post-process');
  });
});
