/**
 * The sidecar's periodic self-verify of its ledger, on a real spool with real signed checkpoints:
 * incremental runs check only new records, full runs re-read everything and the checkpoints, a
 * tampered record turns warden_ledger_verify_ok to 0, and each result is a ledger.verified event.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import { Checkpointer, loadOrCreateSigningKey, Spool } from '../../ledger/index.js';
import { ledgerDirOf, listSegments } from '../../ledger/spool/segments.js';
import { LedgerSelfVerifier } from '../../agent/self-verify.js';
import { WardenMetrics } from '../../agent/metrics.js';
import { tempDir, type TempDir } from '../harness/index.js';

let dir: TempDir;
let spool: Spool;
let checkpointer: Checkpointer;
let metrics: WardenMetrics;

const jobs = (n: number, from: number): WardenEvent[] => Array.from({ length: n }, (_, i) =>
  makeEvent({ kind: 'job.completed', source: 'bullmq', queue: 'q', job_id: String(from + i), job_name: 'gen', correlation_id: `c-${from + i}` }));

async function append(events: WardenEvent[]): Promise<void> {
  checkpointer.add(await spool.append(events));
}

function verifier(fullEvery: number): LedgerSelfVerifier {
  return new LedgerSelfVerifier({ dataDir: dir.path, intervalMs: 0, fullEvery, metrics, record: append, lastSeq: () => spool.lastSeq, logger: pino({ level: 'silent' }) });
}

async function gauge(name: string): Promise<number> {
  const m = (await metrics.registry.getSingleMetric(name)!.get()).values[0];
  return m.value;
}

async function verifiedEvents(): Promise<WardenEvent[]> {
  const out: WardenEvent[] = [];
  for await (const r of Spool.read(dir.path)) if (r.event.kind === 'ledger.verified') out.push(r.event);
  return out;
}

/** Rewrites one record's job_name in place (same length), as someone editing the file on the host would. */
async function tamper(seq: number): Promise<void> {
  const [seg] = await listSegments(ledgerDirOf(dir.path));
  const lines = readFileSync(seg.path, 'utf8').split('\n');
  const i = lines.findIndex((l) => l.endsWith(`"seq":${seq}}`));
  expect(lines[i]).toContain('"job_name":"gen"');
  lines[i] = lines[i].replace('"job_name":"gen"', '"job_name":"GEN"');
  writeFileSync(seg.path, lines.join('\n'));
}

beforeEach(async () => {
  dir = await tempDir('self-verify');
  spool = await Spool.open({ dir: dir.path });
  const key = await loadOrCreateSigningKey(dir.path);
  checkpointer = await Checkpointer.open({ dir: dir.path, key, every: 10, intervalMs: 60_000, lastSeq: 0, onError: () => undefined });
  metrics = new WardenMetrics({ defaultMetrics: false });
});
afterEach(async () => {
  await spool.close();
  await checkpointer.close({ lastSeq: spool.lastSeq });
  await dir.cleanup();
});

describe('ledger self-verify', () => {
  it('a full first run, then incremental runs over only the new records; each result is a ledger.verified event', async () => {
    await append(jobs(50, 1));
    const v = verifier(3);
    const first = await v.runOnce();
    expect(first).toEqual({ ok: true, mode: 'full', records: 50, verifiedSeq: 50, problem: null });
    expect(await gauge('warden_ledger_verify_ok')).toBe(1);
    expect(await gauge('warden_ledger_verify_last_run_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 5);

    await append(jobs(20, 51));
    const second = await v.runOnce();
    // The 20 new jobs and the first run's own ledger.verified event (seq 51).
    expect(second).toEqual({ ok: true, mode: 'incremental', records: 21, verifiedSeq: 71, problem: null });

    const third = await v.runOnce(); // only the second run's event is new
    expect(third).toMatchObject({ ok: true, mode: 'incremental', records: 1, verifiedSeq: 72 });
    expect((await v.runOnce()).mode).toBe('full'); // every 3rd run

    const events = await verifiedEvents();
    expect(events).toHaveLength(4);
    expect(events[0]).toMatchObject({ source: 'warden', actor: 'warden', decision: 'ok', reason: null, attrs: { mode: 'full', from_seq: 1, verified_seq: 50, records: 50 } });
    expect(events[1].attrs).toEqual({ mode: 'incremental', from_seq: 51, verified_seq: 71, records: 21 });
  });

  it('a record altered before it was verified fails the next incremental run, naming it', async () => {
    await append(jobs(10, 1));
    const v = verifier(100);
    expect((await v.runOnce()).ok).toBe(true);
    await append(jobs(10, 11));
    await tamper(15);
    const r = await v.runOnce();
    expect(r).toMatchObject({ ok: false, mode: 'incremental', verifiedSeq: 14 });
    expect(r.problem).toBe('record seq 15 was altered (its hash does not match its content)');
    expect(await gauge('warden_ledger_verify_ok')).toBe(0);
    const last = (await verifiedEvents()).at(-1)!;
    expect(last).toMatchObject({ decision: 'failed', reason: r.problem });
    // It stays failed: the next run starts again from the last good record.
    expect((await v.runOnce()).ok).toBe(false);
  });

  it('an already verified record altered in place is caught by the next full run, not the incremental ones', async () => {
    await append(jobs(30, 1));
    const v = verifier(2);
    expect((await v.runOnce()).mode).toBe('full');
    await tamper(5);
    const incremental = await v.runOnce();
    expect(incremental).toMatchObject({ ok: true, mode: 'incremental' }); // cheap runs read only what is new
    const full = await v.runOnce();
    expect(full).toMatchObject({ ok: false, mode: 'full', verifiedSeq: 4 });
    expect(full.problem).toContain('record seq 5 was altered');
    expect(await gauge('warden_ledger_verify_ok')).toBe(0);
  });

  it('runs on its timer and stops cleanly', async () => {
    await append(jobs(5, 1));
    const v = new LedgerSelfVerifier({ dataDir: dir.path, intervalMs: 50, fullEvery: 12, metrics, record: append, lastSeq: () => spool.lastSeq, logger: pino({ level: 'silent' }), firstRunMs: 10 }).start();
    const deadline = Date.now() + 5000;
    while ((await verifiedEvents()).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await v.stop();
    const n = (await verifiedEvents()).length;
    expect(n).toBeGreaterThanOrEqual(3);
    await new Promise((r) => setTimeout(r, 200));
    expect((await verifiedEvents()).length).toBe(n);
  });

  it('is off with verifyIntervalMs 0', async () => {
    const v = verifier(1).start();
    await new Promise((r) => setTimeout(r, 100));
    await v.stop();
    expect(await verifiedEvents()).toEqual([]);
    expect(await gauge('warden_ledger_verify_last_run_timestamp_seconds')).toBe(0);
  });
});

describe('ledger self-verify config', () => {
  it('defaults to every 5 minutes, a full run every 12th', async () => {
    const { loadConfig } = await import('../../agent/config.js');
    const cfg = loadConfig({ env: {} });
    expect(cfg.ledger.verifyIntervalMs).toBe(300_000);
    expect(cfg.ledger.verifyFullEvery).toBe(12);
    expect(cfg.slos).toEqual([]);
    const file = join(dir.path, 'bad.yaml');
    writeFileSync(file, 'ledger: { verifyIntervalMs: -1 }\n');
    expect(() => loadConfig({ file, env: {} })).toThrow(/ledger\.verifyIntervalMs/);
  });
});
