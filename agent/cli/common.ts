/** What every `warden` command shares: the global options, the config they select, output, argument parsers. */
import type { KeyObject } from 'node:crypto';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig, type WardenConfig } from '../config.js';
import { UsageError } from '../errors.js';
import { keyPaths, loadPublicKey } from '../../ledger/index.js';
import { StoreQueryError } from '../../ledger/store/errors.js';
import type { LedgerStore } from '../../ledger/store/store.js';

/** The global options (`-c, --config`, `-d, --data-dir`), on the program and seen by every command. */
export interface CommonOpts { config?: string; dataDir?: string }

export const commonOpts = (cmd: Command): CommonOpts => cmd.optsWithGlobals<CommonOpts>();

/** The configuration the command's global options select (file < environment < --data-dir). */
export const configFor = (cmd: Command): WardenConfig => {
  const o = commonOpts(cmd);
  return loadConfig({ file: o.config, overrides: { dataDir: o.dataDir } });
};

export const out = (s: string) => process.stdout.write(s);

/** The command group `name` of the program (`ledger`, ...), created on first use, so several modules can add to one group. */
export function group(program: Command, name: string, description: string): Command {
  return program.commands.find((c) => c.name() === name) ?? program.command(name).description(description);
}

export const formatOption = () => new Option('--format <format>', 'output format').choices(['table', 'jsonl', 'csv']).default('table');
/** The largest count a flag takes (--limit, --page-size): the same bound as the API's limit parameter. */
export const MAX_COUNT = 999_999_999;
export const positiveInt = (v: string) => {
  const n = Number(v);
  if (!/^\s*\d+\s*$/.test(v) || !Number.isSafeInteger(n) || n <= 0 || n > MAX_COUNT) {
    throw new InvalidArgumentError(`expected a positive whole number from 1 to ${MAX_COUNT}`);
  }
  return n;
};
export const sizeArg = (v: string) => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a log size (a whole number >= 0)');
  return n;
};

/** --public-key files, else the data directory's public key, else the public half of the configured signing key. */
export async function publicKeysFor(cfg: WardenConfig, given: string[] | undefined): Promise<KeyObject[]> {
  if (given && given.length > 0) return Promise.all(given.map((f) => loadPublicKey(f)));
  const { publicFile } = keyPaths(cfg.dataDir);
  if (existsSync(publicFile)) return [await loadPublicKey(publicFile)];
  if (cfg.ledger.signingKeyFile) return [await loadPublicKey(cfg.ledger.signingKeyFile)];
  return [];
}

/** A JSON document to --out (summary on stdout) or to stdout (summary on stderr, so the JSON stays parseable). */
export function emitJson(doc: unknown, file: string | undefined, summary: string): void {
  const json = `${JSON.stringify(doc, null, 2)}\n`;
  if (file) {
    checkOutFile(file);
    try {
      writeFileSync(file, json, { mode: 0o600 });
    } catch (err) {
      throw new UsageError(`--out ${file}: cannot write it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    out(`${summary}\nwrote ${file}\n`);
  } else {
    out(json);
    process.stderr.write(`${summary}\n`);
  }
}

/** An --out file must be a file in a folder that exists: a usage error (exit 2) naming it, never an uncaught exception. */
export function checkOutFile(file: string): void {
  if (existsSync(file) && statSync(file).isDirectory()) throw new UsageError(`--out ${file} is a directory: name a file`);
  const dir = path.dirname(path.resolve(file));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UsageError(`--out ${file}: the folder ${dir} does not exist`);
}

/**
 * Checks that the store holds the ledger table before a command reads it. A check query ClickHouse
 * refuses (an unknown database, a user without access) is a usage error: the flags or the config name
 * a store that is not there. An unreachable store stays StoreUnavailableError (exit 3).
 */
export async function requireLedgerTable(store: LedgerStore): Promise<void> {
  let n: number;
  try {
    const [t] = await store.query<{ n: string }>("SELECT count() AS n FROM system.tables WHERE database = currentDatabase() AND name = 'warden_ledger'");
    n = Number(t?.n ?? 0);
  } catch (err) {
    if (err instanceof StoreQueryError) throw new UsageError(err.message);
    throw err;
  }
  if (n === 0) throw new UsageError(`${store.target} has no warden_ledger table: nothing was shipped there`);
}

/** Resolves on SIGINT or SIGTERM. */
export function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

/** `--source` and `--received-via` (ledger/filter.ts ProvenanceFilter), on every command that lists records. */
export function provenanceOptions(cmd: Command): Command {
  return cmd
    .option('--source <system>', 'only records of this source: bullmq, temporal, or warden (the sidecar\'s own records)')
    .option('--received-via <credential>', 'only records ingested through this credential (http:<token name>, nats:<stream>), or "none": only what the sidecar observed or wrote itself');
}
