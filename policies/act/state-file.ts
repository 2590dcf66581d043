/**
 * Breaker states on disk (`<dataDir>/policies/breakers.json`), replaced atomically on every change,
 * so a restart (even after kill -9) resumes open breakers and knows what it did to each queue.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { replaceFile } from '../../core/files.js';
import type { BreakerState } from '../detect/breaker.js';
import { WardenError } from '../../core/errors.js';

export const stateFile = (dataDir: string) => path.join(dataDir, 'policies', 'breakers.json');

export class PolicyStateError extends WardenError {
  override name = 'PolicyStateError';
  constructor(message: string) {
    super('WARDEN_LEDGER', message);
  }
}

export async function readBreakerStates(dataDir: string): Promise<BreakerState[]> {
  let text: string;
  try {
    text = await readFile(stateFile(dataDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  try {
    const doc = JSON.parse(text) as { version: number; breakers: BreakerState[] };
    if (doc.version !== 1 || !Array.isArray(doc.breakers)) throw new Error('unknown layout');
    return doc.breakers;
  } catch (err) {
    throw new PolicyStateError(`${stateFile(dataDir)} is not a breaker state file (${(err as Error).message}); move it aside to start with every breaker closed`);
  }
}

export async function writeBreakerStates(dataDir: string, states: BreakerState[]): Promise<void> {
  await replaceFile(stateFile(dataDir), `${JSON.stringify({ version: 1, breakers: states }, null, 1)}\n`);
}
