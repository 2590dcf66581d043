/**
 * `npm run bench [-- <scenario>... [--scale <x>]]`: every scenario, or the named ones. Each prints raw
 * figures and ratios against a baseline measured in the same run (machines here are noisy; absolute
 * times mean little), with the machine's core count. Results go to bench/results/latest.json: machine
 * info, a timestamp and each scenario's figures; running one scenario replaces only its own entry.
 *
 * A scenario is a module exporting `run(options: ScenarioOptions): Promise<ScenarioResult>` (see
 * lib/report.ts). A module without `run` is still accepted: importing it runs it, and only its
 * printed output is kept (its entry in latest.json says so).
 *
 * Each scenario runs in its own Node process (this file again, told which scenario and where to
 * write its result): a scenario's figures must not depend on which ran before it in one process.
 * They did: in the full run of 2026-12-07 the Temporal interceptor's per-call figure was 2.55 x the
 * official one after four scenarios had run in the same process, 1.40 with the scenario alone (1.78
 * after worker-overhead only, 1.60 after ledger only: other code through the same core modules, a
 * larger heap); only Warden's variant paid it.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderFigures, replaceFigures } from './lib/markdown.js';
import { machine, printSummary, repoRoot, type ScenarioOptions, type ScenarioRecord, type ScenarioResult } from './lib/report.js';

type ScenarioModule = { run?: (options: ScenarioOptions) => Promise<ScenarioResult> };

const SCENARIOS: Record<string, { what: string; load: () => Promise<ScenarioModule> }> = {
  'worker-overhead': { what: 'BullMQ throughput: plain vs warden/bullmq hooks vs bullmq-otel (ratios to plain)', load: () => import('./worker-overhead.js') },
  capacity: { what: 'highest BullMQ event rate here vs what the sidecar (warden start) turns into ledger + metrics + spans; its CPU and RSS', load: () => import('./capacity.js') },
  ledger: { what: 'spool append + p99 commit; verify vs raw sha256; shipping vs raw @clickhouse/client insert; chdb vs server', load: () => import('./ledger.js') },
  outage: { what: 'sidecar RSS while ClickHouse is down and the spool backlog grows to millions of records; drain rate after', load: () => import('./outage.js') },
  temporal: { what: 'activity interceptor cost per call vs none and vs the official OpenTelemetry interceptor (MockActivityEnvironment)', load: () => import('./temporal.js') },
  fleet: { what: 'fleet capture rate: two sidecars in fleet mode (queues under leases, 2/2) vs one, on four queues\' backlog', load: () => import('./fleet.js') },
  'temporal-cpu': { what: 'CPU per workflow in a real Temporal worker process: none vs each part of Warden\'s hooks vs all of them vs the official OpenTelemetry interceptors', load: () => import('./temporal-cpu.js') },
  query: { what: 'lineage and a day\'s approvals on 1 M and 10 M ledger rows: ClickHouse server vs embedded chdb', load: () => import('./query.js') },
};

/** WARDEN_BENCH_RESULTS moves the file (tests write to a temp dir); WARDEN_BENCH_DOC the page whose figures section is regenerated. */
export const RESULTS_FILE = process.env.WARDEN_BENCH_RESULTS ?? path.join(repoRoot(), 'bench', 'results', 'latest.json');
// Results written elsewhere (tests, experiments) must not rewrite the page, unless a page is named too.
const DOC_FILE = process.env.WARDEN_BENCH_DOC ?? (process.env.WARDEN_BENCH_RESULTS ? null : path.join(repoRoot(), 'docs', 'benchmarks.md'));

/** Regenerates the figures section of docs/benchmarks.md from the results (a page without the markers is left alone). */
async function refreshDoc(file: ResultsFile): Promise<void> {
  if (!DOC_FILE) return;
  let doc: string;
  try {
    doc = await readFile(DOC_FILE, 'utf8');
  } catch {
    return;
  }
  const next = replaceFigures(doc, renderFigures(file, Object.keys(SCENARIOS)));
  if (next !== doc) await writeFile(DOC_FILE, next);
}

interface ResultsFile {
  updated: string;
  machine: ReturnType<typeof machine>;
  scenarios: Record<string, ScenarioRecord | (Partial<ScenarioRecord> & { error: string })>;
}

function parseArgs(argv: string[]): { names: string[]; scale: number } {
  const names: string[] = [];
  let scale = 1;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--scale') scale = Number(argv[++i]);
    else if (a.startsWith('--scale=')) scale = Number(a.slice(8));
    else names.push(a);
  }
  if (!(scale > 0)) throw new Error('--scale must be a positive number (1 = full size)');
  return { names, scale };
}

async function readResults(): Promise<ResultsFile | null> {
  try {
    return JSON.parse(await readFile(RESULTS_FILE, 'utf8')) as ResultsFile;
  } catch {
    return null;
  }
}

/** Set in a scenario's own process: the file its result goes to (the parent reads and merges it). */
const CHILD_RESULT = 'WARDEN_BENCH_CHILD_RESULT';

type Outcome = Omit<ScenarioRecord, 'ranAt' | 'durationMs' | 'machine' | 'options'> | { error: string };

/** In the scenario's own process: run it and write what the parent records. */
async function runHere(key: string, scale: number): Promise<Outcome> {
  const options: ScenarioOptions = { scale, log: (line) => console.log(line) };
  const mod = await SCENARIOS[key].load();
  if (typeof mod.run === 'function') return await mod.run(options);
  return { figures: {}, ratios: {}, notes: ['this scenario module has no run() export: it ran on import and its figures are in the printed output only'] };
}

/** Runs one scenario in a fresh Node process (same flags), its output on ours; resolves with its outcome. */
async function runIsolated(key: string, scale: number): Promise<Outcome> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-bench-'));
  const resultFile = path.join(dir, 'result.json');
  try {
    const code = await new Promise<number | string>((resolve) => {
      const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), key, '--scale', String(scale)], {
        stdio: 'inherit', env: { ...process.env, [CHILD_RESULT]: resultFile },
      });
      child.on('error', (err) => resolve(err.message));
      child.on('exit', (c, signal) => resolve(signal ?? c ?? 1));
    });
    try {
      return JSON.parse(await readFile(resultFile, 'utf8')) as Outcome;
    } catch {
      return { error: `the scenario's process ended (${code}) without a result` };
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function childMain(resultFile: string): Promise<void> {
  const { names, scale } = parseArgs(process.argv.slice(2));
  let outcome: Outcome;
  try {
    outcome = await runHere(names[0], scale);
  } catch (err) {
    console.error(`scenario ${names[0]} failed: ${(err as Error).stack ?? err}`);
    outcome = { error: String((err as Error).message ?? err) };
  }
  await writeFile(resultFile, JSON.stringify(outcome));
  process.exit(0); // scenarios may leave handles (clients, timers) behind; the result is written
}

async function main(): Promise<void> {
  const { names, scale } = parseArgs(process.argv.slice(2));
  const unknown = names.filter((n) => !SCENARIOS[n]);
  if (unknown.length) {
    console.error(`unknown scenario ${unknown.map((n) => `"${n}"`).join(', ')}; choose from: ${Object.keys(SCENARIOS).join(', ')}`);
    process.exit(2);
  }
  const m = machine();
  console.log(`node ${m.node}, ${m.cores} cores, ${m.cpu}, ${m.memGiB} GiB, load ${m.loadAvg1}${scale !== 1 ? `, scale ${scale}` : ''}`);
  const previous = await readResults();
  const file: ResultsFile = { updated: new Date().toISOString(), machine: m, scenarios: { ...(previous?.scenarios ?? {}) } };
  const started = performance.now();
  let failed = 0;
  for (const [key, s] of Object.entries(SCENARIOS)) {
    if (names.length && !names.includes(key)) continue;
    console.log(`\n== ${key}: ${s.what}`);
    const ranAt = new Date().toISOString();
    const t = performance.now();
    const outcome = await runIsolated(key, scale);
    const base = { ranAt, durationMs: Math.round(performance.now() - t), machine: machine(), options: { scale } };
    if ('error' in outcome) failed++;
    file.scenarios[key] = { ...base, ...outcome } as ResultsFile['scenarios'][string];
    console.log(`(${key}: ${((performance.now() - t) / 1000).toFixed(1)} s)`);
    await mkdir(path.dirname(RESULTS_FILE), { recursive: true });
    await writeFile(RESULTS_FILE, `${JSON.stringify(file, null, 2)}\n`); // after each scenario: a later crash keeps the earlier ones
  }
  await refreshDoc(file);
  console.log(`\nall done in ${((performance.now() - started) / 1000).toFixed(1)} s; results in ${path.relative(process.cwd(), RESULTS_FILE)}`);
  for (const [key, r] of Object.entries(file.scenarios)) {
    if (names.length && !names.includes(key)) continue;
    console.log(`\n${key}${'error' in r ? `: FAILED (${r.error})` : ''}`);
    if (!('error' in r)) printSummary(r as ScenarioResult, (l) => console.log(l));
  }
  process.exit(failed ? 1 : 0);
}

const childResult = process.env[CHILD_RESULT];
await (childResult ? childMain(childResult) : main());
