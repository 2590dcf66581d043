/**
 * The sidecar re-verifies its own ledger on a timer, so tampering with the spool on the host raises an
 * alert (warden_ledger_verify_ok == 0) instead of waiting for an auditor to run `warden ledger verify`.
 *
 * Cheap by default: a run checks only the records appended since the last verified one (their hashes
 * recomputed, linked to the verified head). Every `fullEvery`th run, and the first, re-reads the whole
 * chain and checks the signed checkpoints against it, which is what catches an old record rewritten
 * in place. Each result is recorded in the ledger as a `ledger.verified` event, so the compliance
 * dashboard can read the last result from ClickHouse.
 */
import { createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { makeEvent, type WardenEvent } from '../core/event.js';
import { keyPaths, verifyCheckpoints, verifyLedger } from '../ledger/index.js';
import { readRecords } from '../ledger/spool/reader.js';
import { GENESIS_HASH, recordHash } from '../ledger/spool/record.js';
import type { WardenMetrics } from './metrics.js';

export interface SelfVerifyOptions {
  dataDir: string;
  /** 0: never. */
  intervalMs: number;
  fullEvery: number;
  metrics: WardenMetrics;
  /** Appends Warden's own events durably (the pipeline's record()). */
  record: (events: WardenEvent[]) => Promise<void>;
  /** The newest acknowledged seq: an incremental run stops there, short of a batch being written. */
  lastSeq: () => number;
  logger: Logger;
  /** Delay before the first run; default intervalMs (a restart does not re-read a large ledger at once). */
  firstRunMs?: number;
}

export interface SelfVerifyResult {
  ok: boolean;
  mode: 'full' | 'incremental';
  /** Records checked in this run. */
  records: number;
  /** The newest seq verified good. */
  verifiedSeq: number;
  problem: string | null;
}

export class LedgerSelfVerifier {
  private verifiedSeq = 0;
  private head = GENESIS_HASH;
  private runs = 0;
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<unknown> = Promise.resolve();
  private stopped = false;
  /** The last run's result and when it finished (epoch ms); null before the first. */
  last: (SelfVerifyResult & { at: number }) | null = null;

  constructor(private readonly o: SelfVerifyOptions) {}

  start(): this {
    if (this.o.intervalMs > 0) this.schedule(this.o.firstRunMs ?? this.o.intervalMs);
    return this;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.current = this.runOnce().catch((err) => this.o.logger.warn({ err: (err as Error).message }, 'ledger self-verify could not run (will retry)'))
        .finally(() => this.schedule(this.o.intervalMs));
    }, ms);
    this.timer.unref();
  }

  /** One verification, its metrics and its ledger.verified event. Throws only if the ledger cannot be read at all. */
  async runOnce(): Promise<SelfVerifyResult> {
    const full = this.runs % this.o.fullEvery === 0;
    this.runs++;
    const fromSeq = this.verifiedSeq + 1;
    const result = full ? await this.full() : await this.incremental();
    this.last = { ...result, at: Date.now() };
    this.o.metrics.verifyOk.set(result.ok ? 1 : 0);
    this.o.metrics.verifyLastRun.set(Date.now() / 1000);
    if (!result.ok) this.o.logger.error({ problem: result.problem, mode: result.mode }, 'ledger self-verify FAILED: the ledger does not verify');
    await this.o.record([makeEvent({
      kind: 'ledger.verified',
      source: 'warden',
      actor: 'warden',
      decision: result.ok ? 'ok' : 'failed',
      reason: result.problem,
      attrs: { mode: result.mode, from_seq: full ? 1 : fromSeq, verified_seq: result.verifiedSeq, records: result.records },
    })]).catch((err) => this.o.logger.warn({ err: (err as Error).message }, 'could not record the self-verify result in the ledger'));
    return result;
  }

  private async full(): Promise<SelfVerifyResult> {
    const chain = await verifyLedger(this.o.dataDir);
    this.verifiedSeq = chain.lastSeq;
    this.head = chain.headHash;
    if (!chain.ok) return { ok: false, mode: 'full', records: chain.records, verifiedSeq: chain.lastSeq, problem: chain.problem?.message ?? 'the hash chain does not verify' };
    const publicKey = createPublicKey(await readFile(keyPaths(this.o.dataDir).publicFile));
    const cps = await verifyCheckpoints(this.o.dataDir, publicKey);
    if (!cps.ok) return { ok: false, mode: 'full', records: chain.records, verifiedSeq: chain.lastSeq, problem: `signed checkpoints: ${cps.problem?.message ?? 'do not verify'}` };
    return { ok: true, mode: 'full', records: chain.records, verifiedSeq: chain.lastSeq, problem: null };
  }

  private async incremental(): Promise<SelfVerifyResult> {
    const toSeq = this.o.lastSeq();
    let records = 0;
    const fail = (problem: string): SelfVerifyResult => ({ ok: false, mode: 'incremental', records, verifiedSeq: this.verifiedSeq, problem });
    try {
      for await (const r of readRecords(this.o.dataDir, { fromSeq: this.verifiedSeq + 1, toSeq })) {
        const expect = this.verifiedSeq + 1;
        if (r.seq !== expect) return fail(`seq ${expect} is missing (found seq ${r.seq} where it belongs)`);
        if (r.prev !== this.head) return fail(`record seq ${r.seq} does not link to the verified record before it (prev hash differs)`);
        if (recordHash(r.prev, r.seq, r.event) !== r.hash) return fail(`record seq ${r.seq} was altered (its hash does not match its content)`);
        this.verifiedSeq = r.seq;
        this.head = r.hash;
        records++;
      }
    } catch (err) {
      return fail((err as Error).message);
    }
    if (this.verifiedSeq < toSeq) return fail(`the spool ends at seq ${this.verifiedSeq} but seq ${toSeq} was acknowledged`);
    return { ok: true, mode: 'incremental', records, verifiedSeq: this.verifiedSeq, problem: null };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.current;
  }
}
