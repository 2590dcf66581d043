/**
 * Where the history collector's visibility scan stands, per namespace: the close time (epoch ms) up
 * to which every closed run was read, and the run IDs already read that closed in that same
 * millisecond. Written (atomically) only after the records of those runs are durable in the spool, so
 * a crash makes the collector read some runs again, never skip one; the ledger index and the records'
 * deterministic event IDs keep the re-read from adding anything twice.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { replaceFile } from '../../core/files.js';

export interface NamespacePosition {
  /** Every run that closed before this (epoch ms) has been read. */
  closeMs: number;
  /** Runs that closed within `closeMs`'s millisecond and have been read. */
  runIds: string[];
}

interface CheckpointFile { version: 1; namespaces: Record<string, NamespacePosition> }

export class TemporalCheckpoint {
  readonly file: string;
  private data: CheckpointFile = { version: 1, namespaces: {} };

  constructor(dataDir: string) {
    this.file = join(dataDir, 'temporal-positions.json');
  }

  async load(): Promise<void> {
    try {
      const d = JSON.parse(await readFile(this.file, 'utf8')) as CheckpointFile;
      if (d.version === 1 && d.namespaces && typeof d.namespaces === 'object') this.data = d;
    } catch {
      // Missing or unreadable: scan from the oldest retained run (the ledger index drops what is held).
    }
  }

  get(namespace: string): NamespacePosition | undefined {
    return this.data.namespaces[namespace];
  }

  /** Records a position whose runs' records are durable. */
  async save(namespace: string, pos: NamespacePosition): Promise<void> {
    this.data = { version: 1, namespaces: { ...this.data.namespaces, [namespace]: { closeMs: pos.closeMs, runIds: [...pos.runIds] } } };
    await replaceFile(this.file, JSON.stringify(this.data));
  }
}
