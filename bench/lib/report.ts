/**
 * What every scenario shares: the result shape `bench/run.ts` writes to bench/results/latest.json,
 * the machine description, and small statistics and formatting helpers.
 *
 * Figures are raw measurements of this run; ratios compare two figures measured side by side in the
 * same run (the machines here are noisy, so an absolute rate alone means little).
 */
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Machine {
  cores: number;
  cpu: string;
  memGiB: number;
  node: string;
  platform: string;
  /** 1-minute load average when the scenario started: how busy the machine already was. */
  loadAvg1: number;
}

export interface TargetCheck {
  /** The target as the issue states it. */
  target: string;
  /** Whether this run met it; null when this run could not decide (e.g. sizes too small). */
  met: boolean | null;
  /** The figures it was judged on. */
  detail: string;
}

export interface ScenarioResult {
  /** Raw figures: rates, latencies, CPU, RSS, sizes. Numbers or small nested objects. */
  figures: Record<string, unknown>;
  /** Side-by-side ratios (dimensionless), e.g. warden/plain throughput. */
  ratios: Record<string, number>;
  targets?: TargetCheck[];
  /** How it was measured, and anything the reader should know about this run. */
  notes?: string[];
}

/** What run.ts records per scenario: the result plus when, where and how long. */
export interface ScenarioRecord extends ScenarioResult {
  ranAt: string;
  durationMs: number;
  machine: Machine;
  /** The options the scenario ran with (its size). */
  options: Record<string, unknown>;
}

export interface ScenarioOptions {
  /** 1 = the full size documented in the scenario; tests pass a small fraction. */
  scale: number;
  /** Where lines go (stdout in `npm run bench`, collected in tests). */
  log: (line: string) => void;
}

export const DEFAULT_OPTIONS: ScenarioOptions = { scale: 1, log: (line) => console.log(line) };

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpu: cpus[0]?.model ?? 'unknown',
    memGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadAvg1: Math.round(os.loadavg()[0] * 100) / 100,
  };
}

/** `n` scaled by the run's size, never below `min`. */
export function scaled(n: number, opts: ScenarioOptions, min = 1): number {
  return Math.max(min, Math.round(n * opts.scale));
}

export function median(values: number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Per second, from a count and milliseconds, rounded. */
export const perSecond = (n: number, ms: number): number => (ms > 0 ? Math.round((n / ms) * 1000) : 0);

export const round = (x: number, digits = 2): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

export const ratio = (a: number, b: number): number => (b > 0 ? round(a / b, 3) : Number.NaN);

export const fmt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : String(n));

export const mib = (bytes: number): number => round(bytes / 2 ** 20, 1);

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Prints a result's ratios and target checks in the scenario's own words (the figures were printed as measured). */
export function printSummary(result: ScenarioResult, log: (line: string) => void): void {
  const m = machine();
  log(`-- ${m.cores} cores (${m.cpu}), load ${m.loadAvg1}`);
  for (const [k, v] of Object.entries(result.ratios ?? {})) log(`   ratio ${k}: ${v}`); // ?? {}: a module written to another shape still prints
  for (const t of result.targets ?? []) log(`   target ${t.met === null ? 'n/a' : t.met ? 'MET ' : 'MISS'} ${t.target}: ${t.detail}`);
}

/** The repository root, whether this module runs from dist/bench/lib or (in tests) from bench/lib. */
export function repoRoot(): string {
  const here = fileURLToPath(import.meta.url);
  const parts = here.split(path.sep);
  const dist = parts.lastIndexOf('dist');
  return dist >= 0 ? parts.slice(0, dist).join(path.sep) : path.resolve(path.dirname(here), '..', '..');
}
