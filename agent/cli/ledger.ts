/**
 * `warden ledger verify|prove|schema|verify-proof|consistency|query|lineage`: read the spool, verify it
 * (or the rows shipped to ClickHouse) against the signed checkpoints, and prove inclusion and consistency.
 */
import { isoTime } from '../../core/time.js';
import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { EXIT } from '../../core/errors.js';
import type { WardenConfig } from '../config.js';
import { UsageError } from '../errors.js';
import {
  checkpointsPath, keyIdOf, keyPaths, lineage, loadPublicKey, parseTimeArg, proveConsistency, proveInclusion, queryLedger,
  readCheckpointFile, verifyCheckpoints, verifyConsistencyProof, verifyInclusionProof, verifyLedger, verifyStore, listLedgers,
  type StoreVerifyResult,
} from '../../ledger/index.js';
import { checkLedgerId, LEGACY_LEDGER_ID, readLedgerId } from '../../ledger/store/ledger-id.js';
import { RecordWriter, type OutputFormat } from '../../ledger/compliance/format.js';
import { openStore } from '../../ledger/store/store.js';
import { checkOutFile, configFor, emitJson, formatOption, group, out, positiveInt, provenanceOptions, publicKeysFor, requireLedgerTable, sizeArg } from './common.js';

interface VerifyOpts {
  publicKey?: string[];
  checkpoints?: string;
  store?: 'clickhouse' | 'embedded';
  clickhouseUrl?: string;
  clickhouseUser?: string;
  clickhousePassword?: string;
  clickhouseDatabase?: string;
  expectComplete?: boolean;
  ledgerId?: string;
}

/**
 * `ledger verify --store`: the chain and the signed roots recomputed from the ClickHouse rows, for
 * every ledger the store holds (or the one `--ledger-id` names). This data dir's own ledger is checked
 * against its checkpoint file (and shipper.json); another sidecar's against the signed checkpoints the
 * store holds for it, with the public keys given (--public-key, one per sidecar).
 */
async function verifyStoreCommand(cfg: WardenConfig, o: VerifyOpts): Promise<void> {
  // Config keys clickhouse.* are used when the config has them; flags win.
  const ch = ((cfg as unknown as Record<string, unknown>).clickhouse ?? {}) as Record<string, string | undefined>;
  const url = o.store === 'clickhouse' ? o.clickhouseUrl ?? ch.url : undefined;
  if (o.store === 'clickhouse' && !url) throw new UsageError('--store clickhouse needs --clickhouse-url <url> (or clickhouse.url in the config)');
  if (o.ledgerId !== undefined) checkLedgerId(o.ledgerId, '--ledger-id');
  // A data dir without a ledger-id file predates ledger IDs: its rows are the legacy ledger's.
  const localId = (await readLedgerId(cfg.dataDir)) ?? cfg.ledger.id ?? LEGACY_LEDGER_ID;
  const file = o.checkpoints ?? checkpointsPath(cfg.dataDir);
  const present = await readCheckpointFile(file);
  if (o.checkpoints && !present.exists) throw new UsageError(`no checkpoint file at ${file}`);
  const keys = await publicKeysFor(cfg, o.publicKey);
  if (present.lines.length > 0 && keys.length === 0) {
    throw new UsageError(`${file} holds ${present.lines.length} signed checkpoints but no public key was found at ${keyPaths(cfg.dataDir).publicFile}; pass --public-key <pem>`);
  }
  const store = await openStore({
    url, user: o.clickhouseUser ?? ch.user, password: o.clickhousePassword ?? ch.password,
    database: o.clickhouseDatabase ?? ch.database, dataDir: cfg.dataDir,
  });
  try {
    await requireLedgerTable(store);
    const ids = o.ledgerId !== undefined ? [o.ledgerId] : await listLedgers(store);
    // This data dir's ledger is checked even when none of its rows are there (all deleted: truncation).
    if (o.ledgerId === undefined && !ids.includes(localId) && present.lines.length > 0) ids.push(localId);
    if (ids.length === 0) {
      out('warden_ledger holds no rows and warden_checkpoints no checkpoints: nothing to verify\n');
      return;
    }
    out(`${ids.length} ledger(s) in the ${store.kind} store ${store.target}: ${ids.join(', ')}\n`);
    let bad = 0;
    for (const id of ids) {
      const local = id === localId;
      // --checkpoints with --ledger-id: that file is the named ledger's copy, wherever it came from.
      const useFile = local || (o.ledgerId !== undefined && o.checkpoints !== undefined);
      const r = await verifyStore(store, {
        ledgerId: id, publicKeys: keys, expectComplete: o.expectComplete,
        ...(useFile ? { checkpointsFile: file } : {}),
        ...(local ? { dataDir: cfg.dataDir } : {}),
      });
      if (!reportStoreResult(r, local)) bad++;
    }
    if (bad > 0) {
      out(`${bad} of ${ids.length} ledger(s) TAMPERED\n`);
      process.exitCode = EXIT.TAMPERED;
    } else if (ids.length > 1) out(`all ${ids.length} ledgers intact\n`);
  } finally {
    await store.close();
  }
}

/** Prints one ledger's verdict; true when it verified. */
function reportStoreResult(r: StoreVerifyResult, local: boolean): boolean {
  const c = r.checkpoints;
  const L = `ledger ${r.ledgerId}${local ? ' (this data dir)' : ''}`;
  out(`${L}: checked ${r.rows} rows of warden_ledger: hash chain recomputed from genesis` +
    (c.count > 0 ? `, Merkle roots compared with ${c.count} signed checkpoints in ${c.file}` : '') +
    `${r.shipperCommitted !== null ? ` (shipper.json: seq 1..${r.shipperCommitted} shipped)` : ''}\n`);
  for (const w of r.warnings) out(`warning: ${L}: ${w}\n`);
  if (r.ok) {
    out(`${L}: store intact: ${r.records} records, seq 1..${r.lastSeq}, head ${r.headHash}\n`);
    if (c.count === 0) out(`${L}: no signed checkpoints (${c.file}): only the hash chain was checked\n`);
    else {
      out(`${L}: Merkle roots recomputed from the rows match ${c.matched} signed checkpoints (seq 1..${c.verifiedSize}), key ${c.keyIds.join(', ')}` +
        `${c.tornTail ? ' (a partial last checkpoint line was ignored)' : ''}\n`);
    }
    if (r.lastSeq > c.verifiedSize) out(`${L}: ${r.lastSeq - c.verifiedSize} newer record(s) (seq ${c.verifiedSize + 1}..${r.lastSeq}) are covered by the hash chain only, until the next checkpoint\n`);
    out(`${L}: verified in ${(r.elapsedMs / 1000).toFixed(2)} s (${Math.round(r.records / Math.max(r.elapsedMs / 1000, 1e-3))} records/s)\n`);
    return true;
  }
  const p = r.problem!;
  if (p.seq === null) out(`CHECKPOINTS INVALID: checkpoint line ${p.checkpointLine} (${p.kind}) of ledger ${r.ledgerId}: ${p.message}\n`);
  else {
    const range = p.fromSeq !== undefined && p.toSeq !== undefined && p.toSeq !== p.fromSeq ? ` [seq ${p.fromSeq}..${p.toSeq}]` : '';
    out(`STORE TAMPERED: first bad record seq ${p.seq} (${p.kind}) of ledger ${r.ledgerId}${range}: ${p.message}\n`);
    out(`${L}: records before it verified: ${r.records} (seq 1..${r.lastSeq}); signed roots matched up to seq ${c.verifiedSize}\n`);
  }
  return false;
}

export function registerLedgerCommands(program: Command): void {
  const ledger = group(program, 'ledger', 'read and verify the audit ledger');
  ledger.command('verify').description('recompute the hash chain and check every signed checkpoint; exit 1 naming the first bad record or checkpoint')
    .option('--public-key <pem...>', 'public key(s) the checkpoints are signed with (default: <data-dir>/keys/ledger-ed25519.pub.pem)')
    .option('--checkpoints <file>', 'check this checkpoint file (e.g. a copy kept outside the host) instead of <data-dir>/checkpoints.jsonl')
    .addOption(new Option('--store <store>', 'verify the rows shipped to ClickHouse instead of the spool: a server (clickhouse, see --clickhouse-url) or the embedded store in <data-dir>/chdb')
      .choices(['clickhouse', 'embedded']))
    .option('--clickhouse-url <url>', 'with --store clickhouse: the server URL (default: config clickhouse.url)')
    .option('--clickhouse-user <user>', 'with --store clickhouse: user (default: config clickhouse.user)')
    .option('--clickhouse-password <password>', 'with --store clickhouse: password (default: config clickhouse.password)')
    .option('--clickhouse-database <db>', 'with --store clickhouse: database (default: config clickhouse.database, else default)')
    .option('--expect-complete', 'with --store: every checkpointed record must be in the store (missing ones are truncation, not "not yet shipped")')
    .option('--ledger-id <id>', 'with --store: check only this ledger (default: every ledger the store holds; see <data-dir>/ledger-id)')
    .action(async (o: VerifyOpts, cmd: Command) => {
      const cfg = configFor(cmd);
      if (o.store) {
        await verifyStoreCommand(cfg, o);
        return;
      }
      const r = await verifyLedger(cfg.dataDir);
      if (r.ok) {
        const live = r.writing ? ` (seq ${r.writing.seq} was being written by the running agent, pid ${r.writing.pid})` : '';
        out(`ledger intact: ${r.records} records, seq 1..${r.lastSeq}, head ${r.headHash}${live}\n`);
      } else {
        const p = r.problem!;
        out(`LEDGER TAMPERED: first bad record seq ${p.seq} (${p.kind}) in ${p.segment} line ${p.line}: ${p.message}\n`);
        process.exitCode = EXIT.TAMPERED;
      }
      const file = o.checkpoints ?? checkpointsPath(cfg.dataDir);
      const present = await readCheckpointFile(file);
      if (o.checkpoints && !present.exists) throw new UsageError(`no checkpoint file at ${file}`);
      if (present.lines.length === 0) {
        out(`no signed checkpoints (${file}): only the hash chain was checked\n`);
        return;
      }
      const keys = await publicKeysFor(cfg, o.publicKey);
      if (keys.length === 0) {
        throw new UsageError(`${file} holds ${present.lines.length} signed checkpoints but no public key was found at ${keyPaths(cfg.dataDir).publicFile}; pass --public-key <pem>`);
      }
      const c = await verifyCheckpoints(cfg.dataDir, keys, { file });
      const torn = c.tornTail ? ' (a partial last line, a write in progress or cut off by a crash, was ignored)' : '';
      if (c.ok) {
        const newer = c.spoolRecords - c.verifiedSize;
        out(`checkpoints intact: ${c.checkpoints} signed by key ${c.keyIds.join(', ')}; Merkle roots match the spool for seq 1..${c.verifiedSize}; ` +
          `${c.consistencyProofs} consistency proofs show the log only grew${torn}\n`);
        if (newer > 0) out(`${newer} newer record(s) (seq ${c.verifiedSize + 1}..${c.spoolRecords}) are covered by the hash chain only, until the next checkpoint\n`);
        return;
      }
      const p = c.problem!;
      const range = p.fromSeq !== undefined ? ` [seq ${p.fromSeq}..${p.toSeq}]` : '';
      out(`LEDGER TAMPERED: checkpoint line ${p.line} (${p.kind})${range}: ${p.message}\n`);
      if (c.keyIds.length === 0 && p.kind === 'signature') out(`(verified with key ${keys.map(keyIdOf).join(', ')})\n`);
      process.exitCode = EXIT.TAMPERED;
    });

  ledger.command('prove').argument('<event-id>').description('a self-contained inclusion proof of one record against the latest signed checkpoint (JSON)')
    .option('--out <file>', 'write the proof to a file instead of stdout')
    .action(async (eventId: string, o: { out?: string }, cmd: Command) => {
      if (o.out) checkOutFile(o.out);
      const cfg = configFor(cmd);
      const proof = await proveInclusion(cfg.dataDir, eventId);
      emitJson(proof, o.out, `inclusion proof: record seq ${proof.leaf_index + 1}${proof.ledger_id ? ` of ledger ${proof.ledger_id}` : ''} is leaf ${proof.leaf_index} of the checkpoint of size ${proof.checkpoint.size} ` +
        `(root ${proof.checkpoint.root}, key ${proof.checkpoint.key_id}); check it with: warden ledger verify-proof <file> --public-key <pem>`);
    });

  ledger.command('schema').description('print the ClickHouse DDL: the single-node migrations, or with --cluster the ON CLUSTER / Replicated / Distributed form')
    .option('--cluster <name>', 'cluster name (from the servers\' remote_servers config)')
    .option('--database <db>', 'database the Distributed tables point at (default: currentDatabase())')
    .option('--zoo-prefix <path>', 'ZooKeeper path prefix for the replicated tables', '/clickhouse/tables/{shard}/warden')
    .action(async (o: { cluster?: string; database?: string; zooPrefix: string }) => {
      const { MIGRATIONS, clusterSchema } = await import('../../ledger/store/index.js');
      if (o.cluster) {
        for (const st of clusterSchema(o.cluster, { database: o.database, zooPrefix: o.zooPrefix })) out(`-- ${st.table}\n${st.sql};\n\n`);
        return;
      }
      for (const m of MIGRATIONS) {
        out(`-- migration ${m.version}: ${m.name}${m.requires ? ` (only where the engine has ${m.requires})` : ''}\n`);
        for (const sql of m.statements) out(`${sql};\n\n`);
      }
    });

  ledger.command('verify-proof').argument('<proof-file>').description('check an inclusion proof with only the public key (no data directory); exit 1 if invalid')
    .requiredOption('--public-key <pem>', 'the ledger public key (ledger-ed25519.pub.pem)')
    .action(async (file: string, o: { publicKey: string }) => {
      const key = await loadPublicKey(o.publicKey);
      let doc: unknown;
      try {
        doc = JSON.parse(readFileSync(file, 'utf8'));
      } catch (err) {
        out(`INVALID PROOF: step "format" failed: cannot read ${file} as JSON (${(err as Error).message})\n`);
        process.exitCode = EXIT.TAMPERED;
        return;
      }
      const v = verifyInclusionProof(doc, key);
      for (const step of v.steps) out(`${step}\n`);
      if (!v.ok) {
        out(`INVALID PROOF: step "${v.step}" failed: ${v.message}\n`);
        process.exitCode = EXIT.TAMPERED;
        return;
      }
      const e = v.record.event;
      const named = typeof (doc as { ledger_id?: unknown }).ledger_id === 'string' ? ` ${(doc as { ledger_id: string }).ledger_id}` : '';
      out(`proof valid: event ${e.event_id} (${e.kind}, ${isoTime(e.ts)}) is record seq ${v.seq} of the ledger${named} signed at ${isoTime(v.checkpoint.ts)} by key ${v.checkpoint.key_id}\n`);
    });

  ledger.command('consistency').description('prove and check that the log only grew between two sizes (default: the first and the last checkpoint)')
    .option('--from <size>', 'the older size', sizeArg)
    .option('--to <size>', 'the newer size', sizeArg)
    .option('--public-key <pem>', 'check the cited checkpoints\' signatures with this key (default: <data-dir>/keys/ledger-ed25519.pub.pem)')
    .option('--out <file>', 'write the proof to a file instead of stdout')
    .action(async (o: { from?: number; to?: number; publicKey?: string; out?: string }, cmd: Command) => {
      if (o.out) checkOutFile(o.out); // before any work: a bad --out is a usage error, not a lost proof
      const cfg = configFor(cmd);
      const proof = await proveConsistency(cfg.dataDir, { from: o.from, to: o.to });
      const [key] = await publicKeysFor(cfg, o.publicKey ? [o.publicKey] : undefined);
      const v = verifyConsistencyProof(proof, key);
      const summary = v.ok
        ? `${v.steps.join('\n')}\nthe log only grew: seq 1..${proof.from.size} are unchanged in the log of size ${proof.to.size}`
        : `${v.steps.join('\n')}\nINCONSISTENT: ${v.message}`;
      emitJson(proof, o.out, summary);
      if (!v.ok) process.exitCode = EXIT.TAMPERED;
    });

  const query = ledger.command('query').description('list ledger records matching filters')
    .option('--correlation-id <id>').option('--job-id <id>').option('--queue <name>')
    .option('--kind <kind...>', 'one or more event kinds, e.g. job.failed')
    .option('--since <time>', 'ISO time, epoch ms, or relative (15m, 2h, 7d)')
    .option('--until <time>', 'ISO time, epoch ms, or relative (15m, 2h, 7d)')
    .option('--limit <n>', 'at most this many records', positiveInt)
    .addOption(formatOption());
  provenanceOptions(query)
    .action(async (o: { correlationId?: string; jobId?: string; queue?: string; kind?: string[]; source?: string; receivedVia?: string; since?: string; until?: string; limit?: number; format: OutputFormat }, cmd: Command) => {
      const cfg = configFor(cmd);
      const writer = new RecordWriter(o.format, out);
      for await (const rec of queryLedger(cfg.dataDir, {
        correlationId: o.correlationId, jobId: o.jobId, queue: o.queue, kind: o.kind, source: o.source, receivedVia: o.receivedVia,
        since: o.since ? parseTimeArg(o.since) : undefined, until: o.until ? parseTimeArg(o.until) : undefined, limit: o.limit,
      })) writer.write(rec);
      writer.end();
    });

  ledger.command('lineage').argument('<correlation-id>').description('the ordered story of one piece of work')
    .addOption(formatOption())
    .action(async (cid: string, o: { format: OutputFormat }, cmd: Command) => {
      const cfg = configFor(cmd);
      const writer = new RecordWriter(o.format, out);
      for (const rec of await lineage(cfg.dataDir, cid)) writer.write(rec);
      writer.end();
    });
}
