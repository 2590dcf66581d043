#!/usr/bin/env node
/** The `warden` command: run the sidecar, check config, read and verify the ledger, run the demo. */
import type { KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { ZodError } from 'zod';
import { loadConfig, type WardenConfig } from './config.js';
import { ConfigError, UsageError } from './errors.js';
import { RecordWriter, type OutputFormat } from './format.js';
import { createLogger } from './logger.js';
import { Sidecar } from './sidecar.js';
import {
  LedgerError, checkpointsPath, keyIdOf, keyPaths, lineage, loadPublicKey, parseTimeArg, proveConsistency, proveInclusion, queryLedger,
  readCheckpointFile, verifyCheckpoints, verifyConsistencyProof, verifyInclusionProof, verifyLedger, verifyStore,
} from '../ledger/index.js';
import { openStore } from '../ledger/store/store.js';
import { createWriteStream } from 'node:fs';
import path from 'node:path';
import {
  APPROVALS_PER_DAY_COLUMNS, APPROVAL_COLUMNS, DECISION_COLUMNS, DECISION_COUNT_COLUMNS, UNAPPROVED_COLUMNS, VERSION_COLUMNS,
  approvals, approvalsPerDay, decisionCounts, decisions, unapproved, versions, type TimeRange,
} from '../ledger/compliance/queries.js';
import { exportEvents, type ExportFormat } from '../ledger/compliance/export.js';
import { formatRows, progressBar } from '../ledger/compliance/format.js';
import type { LedgerStore } from '../ledger/store/store.js';
import { PolicyFileError } from '../policies/loader.js';
import { registerPolicyCommands } from './policy-cli.js';

const EXIT_TAMPERED = 1;
const EXIT_USAGE = 2;

interface CommonOpts { config?: string; dataDir?: string }

const configFor = (o: CommonOpts): WardenConfig => loadConfig({ file: o.config, overrides: { dataDir: o.dataDir } });
const out = (s: string) => process.stdout.write(s);

const formatOption = () => new Option('--format <format>', 'output format').choices(['table', 'jsonl', 'csv']).default('table');
const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a positive whole number');
  return n;
};
const sizeArg = (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a log size (a whole number >= 0)');
  return n;
};

/** --public-key files, else the data directory's public key, else the public half of the configured signing key. */
async function publicKeysFor(cfg: WardenConfig, given: string[] | undefined): Promise<KeyObject[]> {
  if (given && given.length > 0) return Promise.all(given.map((f) => loadPublicKey(f)));
  const { publicFile } = keyPaths(cfg.dataDir);
  if (existsSync(publicFile)) return [await loadPublicKey(publicFile)];
  if (cfg.ledger.signingKeyFile) return [await loadPublicKey(cfg.ledger.signingKeyFile)];
  return [];
}

/** A JSON document to --out (summary on stdout) or to stdout (summary on stderr, so the JSON stays parseable). */
function emitJson(doc: unknown, file: string | undefined, summary: string): void {
  const json = `${JSON.stringify(doc, null, 2)}\n`;
  if (file) {
    writeFileSync(file, json);
    out(`${summary}\nwrote ${file}\n`);
  } else {
    out(json);
    process.stderr.write(`${summary}\n`);
  }
}

interface VerifyOpts {
  publicKey?: string[];
  checkpoints?: string;
  store?: 'clickhouse' | 'embedded';
  clickhouseUrl?: string;
  clickhouseUser?: string;
  clickhousePassword?: string;
  clickhouseDatabase?: string;
  expectComplete?: boolean;
}

/** `ledger verify --store`: the chain and the signed roots recomputed from the ClickHouse rows. */
async function verifyStoreCommand(cfg: WardenConfig, o: VerifyOpts): Promise<void> {
  // Config keys clickhouse.* are used when the config has them; flags win.
  const ch = ((cfg as unknown as Record<string, unknown>).clickhouse ?? {}) as Record<string, string | undefined>;
  const url = o.store === 'clickhouse' ? o.clickhouseUrl ?? ch.url : undefined;
  if (o.store === 'clickhouse' && !url) throw new UsageError('--store clickhouse needs --clickhouse-url <url> (or clickhouse.url in the config)');
  const file = o.checkpoints ?? checkpointsPath(cfg.dataDir);
  const present = await readCheckpointFile(file);
  if (o.checkpoints && !present.exists) throw new UsageError(`no checkpoint file at ${file}`);
  const keys = present.lines.length > 0 ? await publicKeysFor(cfg, o.publicKey) : [];
  if (present.lines.length > 0 && keys.length === 0) {
    throw new UsageError(`${file} holds ${present.lines.length} signed checkpoints but no public key was found at ${keyPaths(cfg.dataDir).publicFile}; pass --public-key <pem>`);
  }
  const store = await openStore({
    url, user: o.clickhouseUser ?? ch.user, password: o.clickhousePassword ?? ch.password,
    database: o.clickhouseDatabase ?? ch.database, dataDir: cfg.dataDir,
  });
  try {
    const [t] = await store.query<{ n: string }>("SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = 'warden_ledger'");
    if (Number(t?.n ?? 0) === 0) throw new UsageError(`${store.target} has no warden_ledger table: nothing was shipped there`);
    const r = await verifyStore(store, { dataDir: cfg.dataDir, publicKeys: keys, checkpointsFile: file, expectComplete: o.expectComplete });
    const c = r.checkpoints;
    out(`checked ${r.rows} rows of warden_ledger in the ${r.store} store: hash chain recomputed from genesis` +
      (c.count > 0 ? `, Merkle roots compared with ${c.count} signed checkpoints in ${c.file}` : '') +
      `${r.shipperCommitted !== null ? ` (shipper.json: seq 1..${r.shipperCommitted} shipped)` : ''}\n`);
    for (const w of r.warnings) out(`warning: ${w}\n`);
    if (r.ok) {
      out(`store intact: ${r.records} records, seq 1..${r.lastSeq}, head ${r.headHash}\n`);
      if (c.count === 0) out(`no signed checkpoints (${c.file}): only the hash chain was checked\n`);
      else {
        out(`Merkle roots recomputed from the rows match ${c.matched} signed checkpoints (seq 1..${c.verifiedSize}), key ${c.keyIds.join(', ')}` +
          `${c.tornTail ? ' (a partial last checkpoint line was ignored)' : ''}\n`);
      }
      if (r.lastSeq > c.verifiedSize) out(`${r.lastSeq - c.verifiedSize} newer record(s) (seq ${c.verifiedSize + 1}..${r.lastSeq}) are covered by the hash chain only, until the next checkpoint\n`);
      out(`verified in ${(r.elapsedMs / 1000).toFixed(2)} s (${Math.round(r.records / Math.max(r.elapsedMs / 1000, 1e-3))} records/s)\n`);
      return;
    }
    const p = r.problem!;
    if (p.seq === null) out(`CHECKPOINTS INVALID: checkpoint line ${p.checkpointLine} (${p.kind}): ${p.message}\n`);
    else {
      const range = p.fromSeq !== undefined && p.toSeq !== undefined && p.toSeq !== p.fromSeq ? ` [seq ${p.fromSeq}..${p.toSeq}]` : '';
      out(`STORE TAMPERED: first bad record seq ${p.seq} (${p.kind})${range}: ${p.message}\n`);
      out(`records before it verified: ${r.records} (seq 1..${r.lastSeq}); signed roots matched up to seq ${c.verifiedSize}\n`);
    }
    process.exitCode = EXIT_TAMPERED;
  } finally {
    await store.close();
  }
}

interface ComplianceStoreOpts {
  clickhouseUrl?: string;
  clickhouseUser?: string;
  clickhousePassword?: string;
  clickhouseDatabase?: string;
}

/** The store options of the compliance commands (`ledger approvals|versions|unapproved|decisions|export`). */
function complianceStoreOptions(cmd: Command): Command {
  return cmd
    .option('--clickhouse-url <url>', 'ClickHouse server URL (default: config clickhouse.url; without one, the embedded store in <data-dir>/chdb)')
    .option('--clickhouse-user <user>', 'user (default: config clickhouse.user); a read-only user is enough')
    .option('--clickhouse-password <password>', 'password (default: config clickhouse.password or WARDEN_CLICKHOUSE_PASSWORD)')
    .option('--clickhouse-database <db>', 'database (default: config clickhouse.database, else default)');
}

/** Opens the configured ClickHouse store (read only: no migration), checks the ledger table is there, runs `fn`, closes. */
async function withComplianceStore<T>(cfg: WardenConfig, o: ComplianceStoreOpts, fn: (store: LedgerStore) => Promise<T>): Promise<T> {
  const ch = cfg.clickhouse;
  const url = o.clickhouseUrl ?? ch.url;
  if (!url && !existsSync(path.join(cfg.dataDir, 'chdb'))) {
    throw new UsageError(`no ClickHouse store: pass --clickhouse-url <url> (or set clickhouse.url), or query the embedded store of a data directory that has one (${path.join(cfg.dataDir, 'chdb')} does not exist)`);
  }
  const store = await openStore({
    url, user: o.clickhouseUser ?? ch.user, password: o.clickhousePassword ?? ch.password, database: o.clickhouseDatabase ?? ch.database, dataDir: cfg.dataDir,
  });
  try {
    const [t] = await store.query<{ n: string }>("SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = 'warden_ledger'");
    if (Number(t?.n ?? 0) === 0) throw new UsageError(`${store.target} has no warden_ledger table: nothing was shipped there`);
    return await fn(store);
  } finally {
    await store.close();
  }
}

const timeRange = (o: { since?: string; until?: string }): TimeRange => ({
  since: o.since ? parseTimeArg(o.since) : undefined, until: o.until ? parseTimeArg(o.until) : undefined,
});

export function buildCli(): Command {
  const program = new Command('warden')
    .description('Observability and governance sidecar for BullMQ and Temporal workers')
    .showHelpAfterError()
    .option('-c, --config <file>', 'YAML config file (environment variables override it)')
    .option('-d, --data-dir <dir>', 'data directory (ledger spool, positions); default ./.warden or WARDEN_DATA_DIR');

  const common = (cmd: Command): CommonOpts => cmd.optsWithGlobals<CommonOpts>();

  program.command('start').description('run the sidecar: collect BullMQ events into the ledger, metrics and traces')
    .action(async (_o, cmd: Command) => {
      const config = configFor(common(cmd));
      const logger = createLogger(config.log.level);
      const sidecar = await Sidecar.start(config, logger);
      await untilSignal();
      logger.info('shutting down: flushing the ledger');
      await sidecar.stop();
      // Everything durable is flushed and closed; a Redis client still retrying a connection that was
      // never made may hold timers for seconds, so do not wait for them.
      process.exit(process.exitCode ?? 0);
    });

  const config = program.command('config').description('configuration');
  config.command('check').description('validate the configuration and print it as resolved')
    .action((_o, cmd: Command) => {
      const cfg = configFor(common(cmd));
      const mask = (u: string | undefined) => u?.replace(/\/\/[^@]*@/, '//***@');
      const celery = { ...cfg.celery, brokerUrl: mask(cfg.celery.brokerUrl), resultBackend: mask(cfg.celery.resultBackend) };
      out(`${JSON.stringify({ ...cfg, redis: { url: mask(cfg.redis.url) }, celery }, null, 2)}\n`);
      out('configuration is valid\n');
    });

  const ledger = program.command('ledger').description('read and verify the audit ledger');
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
    .action(async (o: VerifyOpts, cmd: Command) => {
      const cfg = configFor(common(cmd));
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
        process.exitCode = EXIT_TAMPERED;
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
      process.exitCode = EXIT_TAMPERED;
    });

  ledger.command('prove').argument('<event-id>').description('a self-contained inclusion proof of one record against the latest signed checkpoint (JSON)')
    .option('--out <file>', 'write the proof to a file instead of stdout')
    .action(async (eventId: string, o: { out?: string }, cmd: Command) => {
      const cfg = configFor(common(cmd));
      const proof = await proveInclusion(cfg.dataDir, eventId);
      emitJson(proof, o.out, `inclusion proof: record seq ${proof.leaf_index + 1} is leaf ${proof.leaf_index} of the checkpoint of size ${proof.checkpoint.size} ` +
        `(root ${proof.checkpoint.root}, key ${proof.checkpoint.key_id}); check it with: warden ledger verify-proof <file> --public-key <pem>`);
    });

  ledger.command('schema').description('print the ClickHouse DDL: the single-node migrations, or with --cluster the ON CLUSTER / Replicated / Distributed form')
    .option('--cluster <name>', 'cluster name (from the servers\' remote_servers config)')
    .option('--database <db>', 'database the Distributed tables point at (default: currentDatabase())')
    .option('--zoo-prefix <path>', 'ZooKeeper path prefix for the replicated tables', '/clickhouse/tables/{shard}/warden')
    .action(async (o: { cluster?: string; database?: string; zooPrefix: string }) => {
      const { MIGRATIONS, clusterSchema } = await import('../ledger/store/index.js');
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
        process.exitCode = EXIT_TAMPERED;
        return;
      }
      const v = verifyInclusionProof(doc, key);
      for (const step of v.steps) out(`${step}\n`);
      if (!v.ok) {
        out(`INVALID PROOF: step "${v.step}" failed: ${v.message}\n`);
        process.exitCode = EXIT_TAMPERED;
        return;
      }
      const e = v.record.event;
      out(`proof valid: event ${e.event_id} (${e.kind}, ${new Date(e.ts).toISOString()}) is record seq ${v.seq} of the ledger signed at ${new Date(v.checkpoint.ts).toISOString()}\n`);
    });

  ledger.command('consistency').description('prove and check that the log only grew between two sizes (default: the first and the last checkpoint)')
    .option('--from <size>', 'the older size', sizeArg)
    .option('--to <size>', 'the newer size', sizeArg)
    .option('--public-key <pem>', 'check the cited checkpoints\' signatures with this key (default: <data-dir>/keys/ledger-ed25519.pub.pem)')
    .option('--out <file>', 'write the proof to a file instead of stdout')
    .action(async (o: { from?: number; to?: number; publicKey?: string; out?: string }, cmd: Command) => {
      const cfg = configFor(common(cmd));
      const proof = await proveConsistency(cfg.dataDir, { from: o.from, to: o.to });
      const [key] = await publicKeysFor(cfg, o.publicKey ? [o.publicKey] : undefined);
      const v = verifyConsistencyProof(proof, key);
      const summary = v.ok
        ? `${v.steps.join('\n')}\nthe log only grew: seq 1..${proof.from.size} are unchanged in the log of size ${proof.to.size}`
        : `${v.steps.join('\n')}\nINCONSISTENT: ${v.message}`;
      emitJson(proof, o.out, summary);
      if (!v.ok) process.exitCode = EXIT_TAMPERED;
    });

  ledger.command('query').description('list ledger records matching filters')
    .option('--correlation-id <id>').option('--job-id <id>').option('--queue <name>')
    .option('--kind <kind...>', 'one or more event kinds, e.g. job.failed')
    .option('--since <time>', 'ISO time, epoch ms, or relative (15m, 2h, 7d)')
    .option('--until <time>', 'ISO time, epoch ms, or relative (15m, 2h, 7d)')
    .option('--limit <n>', 'at most this many records', positiveInt)
    .addOption(formatOption())
    .action(async (o: { correlationId?: string; jobId?: string; queue?: string; kind?: string[]; since?: string; until?: string; limit?: number; format: OutputFormat }, cmd: Command) => {
      const cfg = configFor(common(cmd));
      const writer = new RecordWriter(o.format, out);
      for await (const rec of queryLedger(cfg.dataDir, {
        correlationId: o.correlationId, jobId: o.jobId, queue: o.queue, kind: o.kind,
        since: o.since ? parseTimeArg(o.since) : undefined, until: o.until ? parseTimeArg(o.until) : undefined, limit: o.limit,
      })) writer.write(rec);
      writer.end();
    });

  ledger.command('lineage').argument('<correlation-id>').description('the ordered story of one piece of work')
    .addOption(formatOption())
    .action(async (cid: string, o: { format: OutputFormat }, cmd: Command) => {
      const cfg = configFor(common(cmd));
      const writer = new RecordWriter(o.format, out);
      for (const rec of await lineage(cfg.dataDir, cid)) writer.write(rec);
      writer.end();
    });

  // Compliance questions asked of the ledger in ClickHouse (ledger/compliance.ts; the SQL is in the README).
  type RangeOpts = ComplianceStoreOpts & { since?: string; until?: string; format: OutputFormat };
  const rangeOptions = (c: Command): Command => complianceStoreOptions(c
    .option('--since <time>', 'ISO time, epoch ms, or relative (15m, 2h, 7d); inclusive, on the exact event time')
    .option('--until <time>', 'ISO time, epoch ms, or relative; exclusive')
    .addOption(formatOption()));

  rangeOptions(ledger.command('approvals').description('approvals granted and denied (ClickHouse store), or --per-day counts per actor')
    .option('--actor <actor>', 'only this approver').option('--queue <name>', 'only this queue')
    .option('--per-day', 'counts per actor per UTC day instead of the approvals')
    .option('--limit <n>', 'at most this many approvals', positiveInt))
    .action(async (o: RangeOpts & { actor?: string; queue?: string; perDay?: boolean; limit?: number }, cmd: Command) => {
      const cfg = configFor(common(cmd));
      const f = { ...timeRange(o), actor: o.actor, queue: o.queue };
      await withComplianceStore(cfg, o, async (store) => {
        if (o.perDay) out(formatRows(o.format, APPROVALS_PER_DAY_COLUMNS, await approvalsPerDay(store, f)));
        else out(formatRows(o.format, APPROVAL_COLUMNS, await approvals(store, { ...f, limit: o.limit })));
      });
    });

  rangeOptions(ledger.command('versions').description('models and policies in use, at which versions, per queue / workflow / activity and UTC day (ClickHouse store)')
    .option('--queue <name>', 'only this queue'))
    .action(async (o: RangeOpts & { queue?: string }, cmd: Command) => {
      const cfg = configFor(common(cmd));
      await withComplianceStore(cfg, o, async (store) => {
        out(formatRows(o.format, VERSION_COLUMNS, await versions(store, { ...timeRange(o), queue: o.queue })));
      });
    });

  rangeOptions(ledger.command('unapproved').description('work that completed although a policy required an approval that was not granted at or before completion (ClickHouse store)')
    .option('--queue <name>', 'only completions on this queue'))
    .action(async (o: RangeOpts & { queue?: string }, cmd: Command) => {
      const cfg = configFor(common(cmd));
      await withComplianceStore(cfg, o, async (store) => {
        const rows = await unapproved(store, { ...timeRange(o), queue: o.queue });
        out(formatRows(o.format, UNAPPROVED_COLUMNS, rows));
      });
    });

  rangeOptions(ledger.command('decisions').description('policy decisions (ClickHouse store), or --counts per policy, version and decision')
    .option('--actor <actor>').option('--queue <name>').option('--policy <name>')
    .option('--counts', 'counts per policy, policy version and decision instead of the decisions')
    .option('--limit <n>', 'at most this many decisions', positiveInt))
    .action(async (o: RangeOpts & { actor?: string; queue?: string; policy?: string; counts?: boolean; limit?: number }, cmd: Command) => {
      const cfg = configFor(common(cmd));
      const f = { ...timeRange(o), actor: o.actor, queue: o.queue, policy: o.policy };
      await withComplianceStore(cfg, o, async (store) => {
        if (o.counts) out(formatRows(o.format, DECISION_COUNT_COLUMNS, await decisionCounts(store, f)));
        else out(formatRows(o.format, DECISION_COLUMNS, await decisions(store, { ...f, limit: o.limit })));
      });
    });

  complianceStoreOptions(ledger.command('export').description('stream events from the ClickHouse store to a JSONL or CSV file, page by page, with progress on stderr')
    .requiredOption('--out <file>', 'file to write (.jsonl or .csv; --format overrides the extension)')
    .addOption(new Option('--format <format>', 'jsonl or csv (default: from the --out extension)').choices(['jsonl', 'csv']))
    .option('--correlation-id <id>').option('--job-id <id>').option('--queue <name>')
    .option('--kind <kind...>', 'one or more event kinds')
    .option('--since <time>', 'ISO time, epoch ms, or relative (15m, 2h, 7d)')
    .option('--until <time>', 'ISO time, epoch ms, or relative')
    .option('--limit <n>', 'at most this many events', positiveInt)
    .option('--page-size <n>', 'events per SELECT', positiveInt, 5000))
    .action(async (o: ComplianceStoreOpts & {
      out: string; format?: ExportFormat; correlationId?: string; jobId?: string; queue?: string; kind?: string[]; since?: string; until?: string;
      limit?: number; pageSize: number;
    }, cmd: Command) => {
      const cfg = configFor(common(cmd));
      const ext = path.extname(o.out).toLowerCase();
      const format: ExportFormat | undefined = o.format ?? (ext === '.csv' ? 'csv' : ext === '.jsonl' || ext === '.ndjson' ? 'jsonl' : undefined);
      if (!format) throw new UsageError(`cannot tell the format of ${o.out} from its extension: name it .jsonl or .csv, or pass --format`);
      const filter = { ...timeRange(o), correlationId: o.correlationId, jobId: o.jobId, queue: o.queue, kind: o.kind, limit: o.limit };
      const tty = process.stderr.isTTY === true;
      let lastPct = -1;
      let lastAt = 0;
      const onProgress = ({ done, total }: { done: number; total: number }): void => {
        if (tty) {
          process.stderr.write(`\r${progressBar(done, total)}`);
          return;
        }
        // Plain lines (a log, a CI job): at every 10% step or every 5 s, whichever comes first.
        const pct = total > 0 ? Math.floor((done / total) * 10) : 10;
        if (pct !== lastPct || Date.now() - lastAt > 5000) {
          process.stderr.write(`export: ${done} / ${total} events (${total > 0 ? Math.floor((done / total) * 100) : 100}%)\n`);
          lastPct = pct;
          lastAt = Date.now();
        }
      };
      await withComplianceStore(cfg, o, async (store) => {
        const file = createWriteStream(o.out);
        const failed = new Promise<never>((_, reject) => file.once('error', reject));
        failed.catch(() => undefined);
        const write = (chunk: string): Promise<void> | void => {
          if (file.write(chunk)) return;
          return Promise.race([new Promise<void>((r) => file.once('drain', () => r())), failed]);
        };
        const r = await exportEvents(store, filter, format, write, { pageSize: o.pageSize, onProgress });
        await Promise.race([new Promise<void>((res) => file.end(() => res())), failed]);
        if (tty) process.stderr.write('\n');
        process.stderr.write(`export: exported ${r.rows} / ${r.total} events to ${o.out} (${format}, last seq ${r.lastSeq})\n`);
      });
    });

  const slo = program.command('slo').description('service level objectives');
  slo.command('generate').description('write Prometheus recording rules and multi-window multi-burn-rate alerts for the slos in the config')
    .option('--out <file>', 'write the rule file here instead of stdout')
    .action(async (o: { out?: string }, cmd: Command) => {
      const opts = common(cmd);
      const cfg = configFor(opts);
      if (cfg.slos.length === 0) throw new UsageError('the configuration has no slos: add a `slos:` list (name, queue, objective, optional latency) to the file given with --config');
      const { generateSloRules } = await import('./slo.js');
      const text = generateSloRules(cfg.slos, opts.config ? path.basename(opts.config) : 'the configuration');
      if (o.out) {
        writeFileSync(o.out, text);
        process.stderr.write(`slo: wrote ${cfg.slos.length} SLO rule group(s) to ${o.out}\n`);
      } else out(text);
    });
  registerPolicyCommands(program, (cmd) => configFor(common(cmd)));

  program.command('demo').description('run a small AI-agent pipeline on BullMQ beside the sidecar (needs Redis)')
    .option('--duration <seconds>', 'how long to produce jobs', positiveInt, 60)
    .option('--rate <jobs>', 'documents ingested per second', positiveInt, 20)
    .option('--storm', 'make the model call fail hard for a while (a retry storm)')
    .option('--no-sidecar', 'run only the demo workers (a sidecar runs elsewhere)')
    .action(async (o: { duration: number; rate: number; storm?: boolean; sidecar: boolean }, cmd: Command) => {
      const cfg = configFor(common(cmd));
      const logger = createLogger(cfg.log.level);
      const { runDemo } = await import('./demo.js');
      const sidecar = o.sidecar ? await Sidecar.start(cfg, logger) : null;
      await runDemo({ redisUrl: cfg.redis.url, prefix: cfg.bullmq.prefix, durationSec: o.duration, rate: o.rate, storm: !!o.storm, logger, stopSignal: untilSignal() });
      if (sidecar) {
        logger.info('demo finished: waiting for the sidecar to catch up, then stopping');
        await new Promise((r) => setTimeout(r, 2000));
        await sidecar.stop();
      }
      out(`demo done. Try: npx warden ledger query --kind job.failed --data-dir ${cfg.dataDir}\n`);
    });

  return program;
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

export async function main(argv: string[]): Promise<void> {
  // `warden ledger query | head`: the reader went away; stop quietly instead of crashing on EPIPE.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`warden: ${err.message}\n`);
      process.exitCode = EXIT_USAGE;
    } else if (err instanceof ZodError) {
      process.stderr.write(`warden: ${err.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}\n`);
      process.exitCode = EXIT_USAGE;
    } else if (err instanceof PolicyFileError) {
      process.stderr.write(`warden: ${err.message}\n`);
      process.exitCode = EXIT_USAGE;
    } else if (err instanceof LedgerError) {
      // Bad time argument, corrupt or locked spool, no ledger at that path: the message says what to do.
      process.stderr.write(`warden: ${(err as Error).message}\n`);
      process.exitCode = EXIT_USAGE;
    } else {
      throw err;
    }
  }
}

await main(process.argv);
