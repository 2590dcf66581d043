/**
 * `npm run bench [-- <scenario>... [--scale <x>]]`: every scenario, or the named ones. Each prints raw
 * figures and ratios against a baseline measured in the same run (machines here are noisy; absolute
 * times mean little), with the machine's core count. Results go to bench/results/latest.json: machine
 * info, a timestamp and each scenario's figures; running one scenario replaces only its own entry.
 *
 * A scenario is a module exporting `run(options: ScenarioOptions): Promise<ScenarioResult>` (see
 * lib/report.ts). A module without `run` is still accepted: importing it runs it, and only its
 * printed output is kept (its entry in latest.json says so).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
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
    const options: ScenarioOptions = { scale, log: (line) => console.log(line) };
    try {
      const mod = await s.load();
      if (typeof mod.run === 'function') {
        const result = await mod.run(options);
        file.scenarios[key] = { ranAt, durationMs: Math.round(performance.now() - t), machine: machine(), options: { scale }, ...result };
      } else {
        file.scenarios[key] = {
          ranAt, durationMs: Math.round(performance.now() - t), machine: machine(), options: { scale }, figures: {}, ratios: {},
          notes: ['this scenario module has no run() export: it ran on import and its figures are in the printed output only'],
        };
      }
    } catch (err) {
      failed++;
      console.error(`scenario ${key} failed: ${(err as Error).stack ?? err}`);
      file.scenarios[key] = { ranAt, durationMs: Math.round(performance.now() - t), machine: machine(), options: { scale }, error: String((err as Error).message ?? err) };
    }
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

await main();
