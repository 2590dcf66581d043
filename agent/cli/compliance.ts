/**
 * `warden ledger approvals|versions|unapproved|decisions|export`: the compliance questions asked of the
 * ledger in ClickHouse (ledger/compliance/queries.ts; the SQL is in the README), and the streaming export.
 */
import { createWriteStream, existsSync } from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import type { WardenConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { parseTimeArg } from '../../ledger/index.js';
import {
  APPROVALS_PER_DAY_COLUMNS, APPROVAL_COLUMNS, DECISION_COLUMNS, DECISION_COUNT_COLUMNS, UNAPPROVED_COLUMNS, VERSION_COLUMNS,
  approvals, approvalsPerDay, decisionCounts, decisions, unapproved, versions, type TimeRange,
} from '../../ledger/compliance/queries.js';
import { exportEvents, type ExportFormat } from '../../ledger/compliance/export.js';
import { formatRows, progressBar, type OutputFormat } from '../../ledger/compliance/format.js';
import { openStore, type LedgerStore } from '../../ledger/store/store.js';
import { checkOutFile, configFor, formatOption, group, out, positiveInt, provenanceOptions, requireLedgerTable } from './common.js';

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
    await requireLedgerTable(store);
    return await fn(store);
  } finally {
    await store.close();
  }
}

const timeRange = (o: { since?: string; until?: string }): TimeRange => ({
  since: o.since ? parseTimeArg(o.since) : undefined, until: o.until ? parseTimeArg(o.until) : undefined,
});

type Provenance = { source?: string; receivedVia?: string };
type RangeOpts = ComplianceStoreOpts & { since?: string; until?: string; format: OutputFormat };
const rangeOptions = (c: Command): Command => complianceStoreOptions(c
  .option('--since <time>', 'ISO time, epoch ms, or relative (15m, 2h, 7d); inclusive, on the exact event time')
  .option('--until <time>', 'ISO time, epoch ms, or relative; exclusive')
  .addOption(formatOption()));

export function registerComplianceCommands(program: Command): void {
  const ledger = group(program, 'ledger', 'read and verify the audit ledger');

  rangeOptions(provenanceOptions(ledger.command('approvals')).description('approvals granted and denied (ClickHouse store), or --per-day counts per actor')
    .option('--actor <actor>', 'only this approver').option('--queue <name>', 'only this queue')
    .option('--per-day', 'counts per actor per UTC day instead of the approvals')
    .option('--limit <n>', 'at most this many approvals', positiveInt))
    .action(async (o: RangeOpts & Provenance & { actor?: string; queue?: string; perDay?: boolean; limit?: number }, cmd: Command) => {
      const cfg = configFor(cmd);
      const f = { ...timeRange(o), actor: o.actor, queue: o.queue, source: o.source, receivedVia: o.receivedVia };
      await withComplianceStore(cfg, o, async (store) => {
        if (o.perDay) out(formatRows(o.format, APPROVALS_PER_DAY_COLUMNS, await approvalsPerDay(store, f)));
        else out(formatRows(o.format, APPROVAL_COLUMNS, await approvals(store, { ...f, limit: o.limit })));
      });
    });

  rangeOptions(ledger.command('versions').description('models and policies in use, at which versions, per queue / workflow / activity and UTC day (ClickHouse store)')
    .option('--queue <name>', 'only this queue'))
    .action(async (o: RangeOpts & { queue?: string }, cmd: Command) => {
      const cfg = configFor(cmd);
      await withComplianceStore(cfg, o, async (store) => {
        out(formatRows(o.format, VERSION_COLUMNS, await versions(store, { ...timeRange(o), queue: o.queue })));
      });
    });

  rangeOptions(ledger.command('unapproved').description('work that completed although a policy required an approval that was not granted at or before completion (ClickHouse store)')
    .option('--queue <name>', 'only completions on this queue'))
    .action(async (o: RangeOpts & { queue?: string }, cmd: Command) => {
      const cfg = configFor(cmd);
      await withComplianceStore(cfg, o, async (store) => {
        const rows = await unapproved(store, { ...timeRange(o), queue: o.queue });
        out(formatRows(o.format, UNAPPROVED_COLUMNS, rows));
      });
    });

  rangeOptions(provenanceOptions(ledger.command('decisions')).description('policy decisions (ClickHouse store), or --counts per policy, version and decision')
    .option('--actor <actor>').option('--queue <name>').option('--policy <name>')
    .option('--counts', 'counts per policy, policy version and decision instead of the decisions')
    .option('--limit <n>', 'at most this many decisions', positiveInt))
    .action(async (o: RangeOpts & Provenance & { actor?: string; queue?: string; policy?: string; counts?: boolean; limit?: number }, cmd: Command) => {
      const cfg = configFor(cmd);
      const f = { ...timeRange(o), actor: o.actor, queue: o.queue, policy: o.policy, source: o.source, receivedVia: o.receivedVia };
      await withComplianceStore(cfg, o, async (store) => {
        if (o.counts) out(formatRows(o.format, DECISION_COUNT_COLUMNS, await decisionCounts(store, f)));
        else out(formatRows(o.format, DECISION_COLUMNS, await decisions(store, { ...f, limit: o.limit })));
      });
    });

  complianceStoreOptions(provenanceOptions(ledger.command('export')).description('stream events from the ClickHouse store to a JSONL or CSV file, page by page, with progress on stderr')
    .requiredOption('--out <file>', 'file to write (.jsonl or .csv; --format overrides the extension)')
    .addOption(new Option('--format <format>', 'jsonl or csv (default: from the --out extension)').choices(['jsonl', 'csv']))
    .option('--correlation-id <id>').option('--job-id <id>').option('--queue <name>')
    .option('--kind <kind...>', 'one or more event kinds')
    .option('--since <time>', 'ISO time, epoch ms, or relative (15m, 2h, 7d)')
    .option('--until <time>', 'ISO time, epoch ms, or relative')
    .option('--limit <n>', 'at most this many events', positiveInt)
    .option('--page-size <n>', 'events per SELECT', positiveInt, 5000))
    .action(async (o: ComplianceStoreOpts & {
      out: string; format?: ExportFormat; correlationId?: string; jobId?: string; queue?: string; kind?: string[]; since?: string; until?: string; source?: string; receivedVia?: string;
      limit?: number; pageSize: number;
    }, cmd: Command) => {
      const cfg = configFor(cmd);
      const ext = path.extname(o.out).toLowerCase();
      const format: ExportFormat | undefined = o.format ?? (ext === '.csv' ? 'csv' : ext === '.jsonl' || ext === '.ndjson' ? 'jsonl' : undefined);
      if (!format) throw new UsageError(`cannot tell the format of ${o.out} from its extension: name it .jsonl or .csv, or pass --format`);
      const filter = { ...timeRange(o), correlationId: o.correlationId, jobId: o.jobId, queue: o.queue, kind: o.kind, limit: o.limit, source: o.source, receivedVia: o.receivedVia };
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
      checkOutFile(o.out);
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
}
