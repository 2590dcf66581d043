/**
 * Smoke test of `npm run bench`: every scenario runs at a tiny size against real servers and returns
 * a result of the shape bench/run.ts records; the runner merges one scenario into an existing
 * results file. Figures at this size mean nothing; only shape and sanity are checked.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BEGIN, END } from '../../bench/lib/markdown.js';
import type { ScenarioOptions, ScenarioResult } from '../../bench/lib/report.js';

const run = promisify(execFile);
let dir: string;
beforeAll(async () => { dir = await mkdtemp(path.join(os.tmpdir(), 'warden-bench-test-')); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

function tiny(scale: number): ScenarioOptions & { lines: string[] } {
  const lines: string[] = [];
  return { scale, log: (l) => lines.push(l), lines };
}

function expectShape(r: ScenarioResult, lines: string[]): void {
  expect(Object.keys(r.figures).length).toBeGreaterThan(0);
  expect(Object.keys(r.ratios).length).toBeGreaterThan(0);
  for (const [k, v] of Object.entries(r.ratios)) {
    expect(Number.isFinite(v), `ratio ${k} = ${v}`).toBe(true);
    expect(v, `ratio ${k}`).toBeGreaterThan(0);
  }
  for (const t of r.targets ?? []) {
    expect(t.target.length).toBeGreaterThan(0);
    expect([true, false, null]).toContain(t.met);
  }
  expect(JSON.parse(JSON.stringify(r))).toEqual(r); // what run.ts writes to latest.json
  expect(lines.some((l) => /\b\d+ cores\b/.test(l))).toBe(true); // the core count is printed
}

describe('bench scenarios at tiny sizes', () => {
  it('worker-overhead: three variants, ratios to plain; both instrumentations make spans, plain none', async () => {
    const { run: scenario } = await import('../../bench/worker-overhead.js');
    const o = tiny(0.01);
    const r = await scenario(o);
    expectShape(r, o.lines);
    const spans = r.figures.spansPerJob as Record<string, number>;
    expect(spans.plain).toBe(0);
    expect(spans.warden).toBeGreaterThanOrEqual(1); // one consumer span per job (+ producer spans)
    expect(spans['bullmq-otel']).toBeGreaterThanOrEqual(1); // fails if its OTel API copy cannot see the provider
    expect(r.ratios['warden/plain process']).toBeGreaterThan(0);
  });

  it('worker-overhead orders its variants by a Williams design: over n repetitions each follows each other once', async () => {
    const { williamsRow } = await import('../../bench/worker-overhead.js');
    for (const n of [2, 4, 6]) {
      const follows = new Map<string, number>();
      for (let r = 0; r < n; r++) {
        const row = williamsRow(r, n);
        expect([...row].sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i)); // each variant once per row
        for (let i = 1; i < n; i++) follows.set(`${row[i - 1]}>${row[i]}`, (follows.get(`${row[i - 1]}>${row[i]}`) ?? 0) + 1);
      }
      expect(follows.size).toBe(n * (n - 1)); // every ordered pair of distinct variants ...
      expect([...follows.values()].every((c) => c === 1)).toBe(true); // ... exactly once
    }
  });

  it('capacity: the warden start process records every job (3 records per job) and reports CPU and RSS', async () => {
    const { run: scenario } = await import('../../bench/capacity.js');
    const o = tiny(0.015);
    const r = await scenario(o);
    expectShape(r, o.lines);
    expect(r.figures.recordsPerJob).toBe(3); // added, started, completed
    const b = r.figures.sidecarCatchUp as { rssMaxMiB: number; cpuPercent: number };
    expect(b.rssMaxMiB).toBeGreaterThan(20);
    expect(b.cpuPercent).toBeGreaterThan(0);
    // The floor re-reads the same stream and job hashes and re-appends the sidecar's own records.
    const floor = r.figures.floorMicrosPerJob as { total: number; stream: number; snapshots: number; spool: number };
    for (const part of [floor.stream, floor.snapshots, floor.spool]) expect(part).toBeGreaterThan(0);
    expect(floor.total).toBeCloseTo(floor.stream + floor.snapshots + floor.spool, 0);
  });

  it('ledger: append, verify, ship to the server, raw insert and chdb all complete', async () => {
    const { run: scenario } = await import('../../bench/ledger.js');
    const o = tiny(0.02);
    const r = await scenario(o);
    expectShape(r, o.lines);
    const ship = r.figures.ship as Record<string, number>;
    expect(ship.serverRecordsPerSec).toBeGreaterThan(0);
    expect(ship.chdbRecordsPerSec).toBeGreaterThan(0);
    expect(r.figures.records).toBe(2000);
  });

  it('fleet: one sidecar holds all four queues, two split them 2/2, and both read every stream entry', async () => {
    const { run: scenario } = await import('../../bench/fleet.js');
    const o = tiny(0.02);
    const r = await scenario(o);
    expectShape(r, o.lines);
    const one = r.figures.one as { leasesHeld: number[]; entries: number; entriesPerSec: number };
    const two = r.figures.two as { leasesHeld: number[]; entries: number; entriesPerSec: number };
    expect(one.leasesHeld).toEqual([4]);
    expect(two.leasesHeld).toEqual([2, 2]);
    expect(one.entries).toBeGreaterThanOrEqual(4 * 100 * 4); // added, waiting, active, completed per job
    expect(two.entries).toBe(one.entries);
    expect(r.targets?.[0].target).toMatch(/1\.7x/);
  }, 180_000);

  it('outage: the backlog reaches its target with ClickHouse down, then drains to zero', async () => {
    const { run: scenario } = await import('../../bench/outage.js');
    const o = tiny(0.003);
    const r = await scenario(o);
    expectShape(r, o.lines);
    expect(r.figures.backlogRecords as number).toBeGreaterThanOrEqual(6000);
    expect((r.figures.drain as { recordsPerSec: number }).recordsPerSec).toBeGreaterThan(0);
    expect(r.targets?.[0].met).toBeNull(); // too small to judge "bounded"
  });

  it('temporal: per-call cost of no interceptor, the official one and Warden\'s; Warden emits two events per call', async () => {
    const { run: scenario } = await import('../../bench/temporal.js');
    const o = tiny(0.005);
    const r = await scenario(o);
    expectShape(r, o.lines);
    const n = r.figures.callsPerVariantPerRound as number;
    const rounds = r.figures.rounds as number;
    // Two variants carry Warden's interceptor; each runs a warm-up of n calls plus `rounds` rounds.
    expect(r.figures.eventsEmitted).toBe(2 * 2 * n * (rounds + 1));
    expect(Object.keys(r.figures.nsPerCall as object).sort()).toEqual(['none', 'official', 'warden', 'wardenPlusOfficial']);
    // The real-server part: three variants, each ran its workflows to completion; Warden's hooks emitted.
    const real = r.figures.realServer as { workflowsPerSec: Record<string, number>; wardenEventsEmitted: number; workflowsPerVariantPerRound: number };
    expect(Object.keys(real.workflowsPerSec).sort()).toEqual(['none', 'official', 'warden']);
    for (const v of Object.values(real.workflowsPerSec)) expect(v).toBeGreaterThan(0);
    expect(real.wardenEventsEmitted).toBeGreaterThanOrEqual(real.workflowsPerVariantPerRound * 6); // start, 2 x (started, completed), end
    expect(r.targets?.[0].met).toBeNull(); // too small to judge
  }, 180_000);

  it('query: generated rows answer lineage (10 records) and the day\'s approvals the same on server and chdb', async () => {
    const { run: scenario } = await import('../../bench/query.js');
    const o = tiny(0.01);
    const r = await scenario(o);
    expectShape(r, o.lines);
    type M = Record<string, { lineage: { rows: number }; dayApprovals: { rows: number } }>;
    const server = r.figures.server as M;
    const chdb = r.figures.chdb as M;
    for (const size of ['10000', '100000']) {
      expect(server[size].lineage.rows).toBe(10);
      expect(chdb[size].lineage.rows).toBe(10);
      expect(server[size].dayApprovals.rows).toBeGreaterThan(0);
      expect(chdb[size].dayApprovals.rows).toBe(server[size].dayApprovals.rows);
    }
  });

  it('run.js: one scenario alone replaces only its own entry in the results file and regenerates the page\'s figures; unknown names exit 2', async () => {
    const file = path.join(dir, 'latest.json');
    const doc = path.join(dir, 'benchmarks.md');
    await writeFile(file, JSON.stringify({ updated: 'x', machine: {}, scenarios: { other: { figures: { kept: 1 }, ratios: {} } } }));
    await writeFile(doc, `# prose stays\n\n${BEGIN}\nold figures\n${END}\n\nmore prose\n`);
    const env = { ...process.env, WARDEN_BENCH_RESULTS: file, WARDEN_BENCH_DOC: doc };
    const { stdout } = await run(process.execPath, ['dist/bench/run.js', 'worker-overhead', '--scale', '0.01'], { env });
    expect(stdout).toMatch(/\d+ cores/);
    const written = JSON.parse(await readFile(file, 'utf8'));
    expect(written.scenarios.other.figures.kept).toBe(1);
    expect(written.scenarios['worker-overhead'].machine.cores).toBeGreaterThan(0);
    expect(written.scenarios['worker-overhead'].ratios['warden/plain process']).toBeGreaterThan(0);
    const page = await readFile(doc, 'utf8');
    expect(page).not.toContain('old figures');
    expect(page).toContain('### worker-overhead');
    expect(page).toContain('| warden/plain process |');
    expect(page.startsWith('# prose stays')).toBe(true);
    expect(page.trimEnd().endsWith('more prose')).toBe(true);
    const bad = await run(process.execPath, ['dist/bench/run.js', 'no-such'], { env }).catch((e: { code: number; stderr: string }) => e);
    expect((bad as { code: number }).code).toBe(2);
    expect((bad as { stderr: string }).stderr).toContain('worker-overhead');
  });
});
