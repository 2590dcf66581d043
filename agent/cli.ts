#!/usr/bin/env node
/** The `warden` command: run the sidecar, check config, read and verify the ledger, run the demo. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { ZodError } from 'zod';
import { loadConfig, type WardenConfig } from './config.js';
import { ConfigError, UsageError } from './errors.js';
import { RecordWriter, type OutputFormat } from './format.js';
import { createLogger } from './logger.js';
import { Sidecar } from './sidecar.js';
import { LedgerError, lineage, parseTimeArg, queryLedger, verifyLedger } from '../ledger/index.js';

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
    });

  const config = program.command('config').description('configuration');
  config.command('check').description('validate the configuration and print it as resolved')
    .action((_o, cmd: Command) => {
      const cfg = configFor(common(cmd));
      out(`${JSON.stringify({ ...cfg, redis: { url: cfg.redis.url.replace(/\/\/[^@]*@/, '//***@') } }, null, 2)}\n`);
      out('configuration is valid\n');
    });

  const ledger = program.command('ledger').description('read and verify the audit ledger');
  ledger.command('verify').description('recompute the hash chain; exit 1 naming the first bad record')
    .action(async (_o, cmd: Command) => {
      const cfg = configFor(common(cmd));
      const r = await verifyLedger(cfg.dataDir);
      if (r.ok) {
        const live = r.writing ? ` (seq ${r.writing.seq} was being written by the running agent, pid ${r.writing.pid})` : '';
        out(`ledger intact: ${r.records} records, seq 1..${r.lastSeq}, head ${r.headHash}${live}\n`);
        return;
      }
      const p = r.problem!;
      out(`LEDGER TAMPERED: first bad record seq ${p.seq} (${p.kind}) in ${p.segment} line ${p.line}: ${p.message}\n`);
      process.exitCode = EXIT_TAMPERED;
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
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UsageError) {
      process.stderr.write(`warden: ${err.message}\n`);
      process.exitCode = EXIT_USAGE;
    } else if (err instanceof ZodError) {
      process.stderr.write(`warden: ${err.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}\n`);
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
