/**
 * `warden policy check FILE`: validate a policy file without starting anything.
 * `warden policy backtest FILE`: the policies' pure decider over the recorded ledger, offline; prints
 * every decision it would have taken and writes nothing.
 * `warden policy explain SCOPE`: what the policies covering a scope see now (window counts, budget,
 * baseline, the signal closest to tripping): from the running sidecar's API, or offline from the ledger.
 */
import { Option, type Command } from 'commander';
import { EXIT } from '../../core/errors.js';
import type { WardenEvent } from '../../core/event.js';
import { parseTimeArg, queryLedger } from '../../ledger/spool/query.js';
import { backtest, type BacktestDecision } from '../../policies/backtest.js';
import { Decider, type ScopeExplanation } from '../../policies/detect/decider.js';
import { loadPolicyFile, PolicyFileError } from '../../policies/loader.js';
import { collectedScopes } from '../policies.js';
import { call, type BreakerOpts } from './breaker.js';
import { configFor, group, out } from './common.js';

export function registerPolicyCommands(program: Command): void {
  const policy = group(program, 'policy', 'governance policies');
  policy.command('check').argument('<file>', 'policy file (YAML)').description('validate a policy file; exit 1 naming every bad key')
    .action((file: string) => {
      try {
        const p = loadPolicyFile(file);
        out(`policy file is valid: ${p.policies.length} policies, sha256 ${p.digest}\n`);
        for (const x of p.policies) {
          const what = [x.retryStorm ? 'retryStorm' : '', x.drift ? 'drift' : ''].filter(Boolean).join('+');
          out(`  ${x.name}@${x.version}  ${what}  scope ${JSON.stringify(x.scope)}  breaker ${x.breaker.action}${x.dryRun ? '  (dry run)' : ''}\n`);
        }
      } catch (err) {
        if (!(err instanceof PolicyFileError)) throw err;
        // The checked file is invalid, as a ledger that does not verify: exit 1, naming every bad key
        // (a policy file named by the config that is invalid is a config error: exit 2).
        process.stderr.write(`${err.message}\n`);
        process.exitCode = EXIT.TAMPERED;
      }
    });

  policy.command('backtest').argument('<file>', 'policy file (YAML) to try')
    .description('run the policies over the recorded ledger, offline: every decision they would have taken (writes nothing)')
    .option('--since <time>', 'ISO time, epoch ms, or relative (15m, 2h, 7d); default: the whole ledger')
    .option('--until <time>', 'ISO time, epoch ms, or relative')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'jsonl']).default('table'))
    .action(async (file: string, o: { since?: string; until?: string; format: 'table' | 'jsonl' }, cmd: Command) => {
      const cfg = configFor(cmd);
      const policies = loadPolicyFile(file);
      const until = o.until ? parseTimeArg(o.until) : undefined;
      const r = await backtest(policies, events(cfg.dataDir, o.since ? parseTimeArg(o.since) : undefined, until), { endMs: until, collected: collectedScopes(cfg) });
      if (o.format === 'jsonl') {
        for (const d of r.decisions) out(`${JSON.stringify(d)}\n`);
        return;
      }
      const span = r.firstTs === null ? 'no events' : `${new Date(r.firstTs).toISOString()} .. ${new Date(r.lastTs!).toISOString()}`;
      out(`backtest of ${file} (sha256 ${policies.digest.slice(0, 12)}) over ${r.events} recorded events (${span}); ${r.skipped} records of the sidecar's own skipped\n`);
      out(table(r.decisions));
      out(`${r.decisions.length} decision(s)\n`);
    });

  policy.command('explain').argument('<scope>', 'breaker scope, e.g. bullmq.queue.ingest, temporal.activity.callModel')
    .description('window counts, budget, baseline and the signal closest to tripping, per policy covering the scope (from the running sidecar; --offline FILE: from the ledger)')
    .option('--url <url>', 'sidecar base URL (default: http://<metrics.addr> from the config)')
    .option('--token <token>', 'API bearer token (default: $WARDEN_API_TOKEN; compliance or admin)')
    .option('--offline <file>', 'no sidecar: replay the ledger through this policy file and explain the scope as of its last event')
    .option('--json', 'print JSON')
    .action(async (scope: string, o: BreakerOpts & { offline?: string }, cmd: Command) => {
      const cfg = configFor(cmd);
      let policies: ScopeExplanation[];
      if (o.offline) {
        const d = new Decider({ policies: loadPolicyFile(o.offline) });
        let last = 0;
        for await (const ev of events(cfg.dataDir)) {
          if (ev.ts > last) last = ev.ts;
          if (ev.source !== 'warden') d.observe([ev], ev.ts);
        }
        d.tick(last);
        policies = d.explain(scope);
      } else {
        policies = (await call<{ policies: ScopeExplanation[] }>(cfg, o, 'GET', `/v1/breakers/${encodeURIComponent(scope)}/explain`)).policies;
      }
      if (o.json) { out(`${JSON.stringify({ scope, policies }, null, 2)}\n`); return; }
      for (const p of policies) out(explainText(p));
    });
}

async function* events(dataDir: string, since?: number, until?: number): AsyncGenerator<WardenEvent> {
  for await (const rec of queryLedger(dataDir, { since, until })) yield rec.event;
}

const iso = (ms: number) => new Date(ms).toISOString();

function evidenceText(d: BacktestDecision): string {
  const e = d.evidence;
  const keys = ['signals', 'qualifiers', 'retries', 'retry_budget', 'first_attempts', 'top_reason', 'probes_ok', 'probes_failed', 'baseline_failure_rate', 'probe_band_upper', 'finding', 'method', 'score'];
  return keys.filter((k) => e[k] !== undefined).map((k) => `${k}=${String(e[k]).slice(0, 60)}`).join(' ');
}

function table(ds: readonly BacktestDecision[]): string {
  const rows = [['time', 'policy', 'scope', 'decision', 'transition', 'evidence'], ...ds.map((d) => [iso(d.ts), `${d.policy}@${d.policy_version}`, d.scope, d.decision, d.transition ?? '', evidenceText(d)])];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const lines = rows.map((r) => `${r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()}\n`);
  if (rows.length === 1) lines.push('(no decisions)\n');
  return lines.join('');
}

const pct = (x: number) => `${(x * 100).toFixed(1)} %`;

function explainText(p: ScopeExplanation): string {
  const lines = [`${p.scope}  policy ${p.policy}@${p.policy_version}  ${p.phase}${p.forced ? ` (forced by an admin)` : ''}${p.since ? ` since ${iso(p.since)}` : ''}`];
  if (p.reason) lines.push(`  last transition: ${p.reason}`);
  if (p.half_open_at) lines.push(`  half-opens at ${iso(p.half_open_at)}`);
  if (p.probes) lines.push(`  probes: ${p.probes.ok} ok, ${p.probes.failed} failed (${p.probes.needed} successes needed)`);
  if (p.window) {
    const w = p.window;
    lines.push(`  window ${w.window_ms} ms: ${w.first_attempts} first attempts, ${w.retries} retries, ${w.completed} completed, ${w.failed_attempts} failed attempts, ${w.terminal_failures} failed for good, ${w.stalls} stalls${w.top_reason ? `; top reason "${w.top_reason.slice(0, 80)}"` : ''}`);
  }
  if (p.budget) lines.push(`  retry budget: ${p.budget.retries} retries of ${p.budget.allowed} allowed (ratio ${p.budget.ratio.toFixed(3)} vs ${p.budget.budget_ratio.toFixed(3)})`);
  if (p.baseline !== undefined) {
    lines.push(p.baseline
      ? `  baseline failure rate ${pct(p.baseline.failure_rate)} over ${p.baseline.outcomes} outcomes; probes close within ${p.baseline.probe_band_upper === null ? '(no band yet: any failed probe re-opens)' : `<= ${pct(p.baseline.probe_band_upper)}`}`
      : '  baseline: none yet (any failed probe re-opens)');
  }
  for (const s of p.signals ?? []) {
    const state = s.sample < s.minSample ? `sample ${s.sample} < ${s.minSample}` : s.over ? 'OVER' : `${(s.closeness * 100).toFixed(0)} % of threshold`;
    lines.push(`  ${s.trips ? 'trips    ' : 'qualifies'}  ${s.signal.padEnd(21)} ${fmt(s.value)} vs ${fmt(s.threshold)}  ${state}`);
  }
  if (p.closest !== undefined) lines.push(`  closest to tripping: ${p.closest ?? '(none has enough sample)'}`);
  return `${lines.join('\n')}\n`;
}

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(3));
