/**
 * Ledger identity: which sidecar's hash chain a row of `warden_ledger` (or `warden_checkpoints`)
 * belongs to. Every sidecar numbers its records seq 1, 2, 3... in its own chain, so in a table that
 * several sidecars ship into, a record is named by (ledger_id, seq), never by seq alone.
 *
 * Where the ID comes from, first match wins:
 * 1. `ledger.id` in the config (env `WARDEN_LEDGER_ID`): an operator's name for the chain;
 * 2. `<dataDir>/ledger-id`, written on the first start (mode 0600) and read on every later one;
 * 3. on that first start: a random 128-bit ID (32 hex digits), never the hostname (two sidecars on
 *    one host, or a host rebuilt with a new data dir, must not share a chain name); except that a data
 *    dir whose spool already holds records from before ledger IDs existed adopts LEGACY_LEDGER_ID,
 *    which is the ID migration 5 (schema.ts) gives the rows such a sidecar shipped before the upgrade,
 *    so its chain continues, in the store, under one name from seq 1.
 *
 * The ID lives beside the spool it names: copying a data dir copies its ledger's identity with it; two
 * sidecars must never run on copies of one data dir (they would fork one chain).
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { replaceFile } from '../../core/files.js';
import { WardenError } from '../../core/errors.js';

export const LEDGER_ID_COLUMN = 'ledger_id';
/** The ledger ID of rows stored before ledger IDs existed (see the module comment and schema.ts migration 5). */
export const LEGACY_LEDGER_ID = 'legacy';
export const LEDGER_ID_FILE = 'ledger-id';
/** Letters, digits and `._:-`, 1 to 64 characters: safe in file names, logs, SQL literals and metric labels. */
export const LEDGER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

export class LedgerIdError extends WardenError {
  override name = 'LedgerIdError';
  constructor(message: string) {
    super('WARDEN_CONFIG', message);
  }
}

export function checkLedgerId(id: unknown, what = 'ledger id'): string {
  if (typeof id !== 'string' || !LEDGER_ID_PATTERN.test(id)) {
    throw new LedgerIdError(`${what} ${JSON.stringify(id)} is not a ledger id (1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit)`);
  }
  return id;
}

export function ledgerIdPath(dataDir: string): string {
  return path.join(dataDir, LEDGER_ID_FILE);
}

/** The ID stored in the data dir, or null when there is none yet. */
export async function readLedgerId(dataDir: string): Promise<string | null> {
  let text: string;
  try {
    text = await fs.readFile(ledgerIdPath(dataDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return checkLedgerId(text.trim(), `${ledgerIdPath(dataDir)} holds`);
}

export interface ResolvedLedgerId {
  id: string;
  /** Where it came from. */
  source: 'config' | 'file' | 'created' | 'legacy';
}

/** True when the data dir's spool holds a segment with bytes in it (records written before this start). */
async function spoolHasRecords(dataDir: string): Promise<boolean> {
  const dir = path.join(dataDir, 'ledger');
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return false;
  }
  for (const n of names) {
    if (!/^seg-\d{16}\.jsonl$/.test(n)) continue;
    const st = await fs.stat(path.join(dir, n)).catch(() => null);
    if (st && st.size > 0) return true;
  }
  return false;
}

/**
 * The ledger ID of the sidecar using `dataDir` (see the module comment). A configured ID that differs
 * from the one already stored is refused: renaming a chain whose rows are in the store under the old
 * name would make them look like another ledger's (the file must be changed on purpose, by hand).
 */
export async function resolveLedgerId(dataDir: string, configured?: string): Promise<ResolvedLedgerId> {
  const stored = await readLedgerId(dataDir);
  if (configured !== undefined) {
    checkLedgerId(configured, 'ledger.id (WARDEN_LEDGER_ID)');
    if (stored !== null && stored !== configured) {
      throw new LedgerIdError(
        `ledger.id is ${JSON.stringify(configured)} but this data dir's ledger is ${JSON.stringify(stored)} (${ledgerIdPath(dataDir)}); ` +
          'its records are in the store under that name: keep it, or use a new data dir for a new ledger',
      );
    }
    if (stored === null) await replaceFile(ledgerIdPath(dataDir), `${configured}\n`);
    return { id: configured, source: 'config' };
  }
  if (stored !== null) return { id: stored, source: 'file' };
  const legacy = await spoolHasRecords(dataDir);
  const id = legacy ? LEGACY_LEDGER_ID : randomBytes(16).toString('hex');
  await replaceFile(ledgerIdPath(dataDir), `${id}\n`);
  return { id, source: legacy ? 'legacy' : 'created' };
}
