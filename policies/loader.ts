/**
 * Reads and validates a policy file. The sha256 of the file's bytes is the digest written with every
 * decision, so an auditor can tell which file (not just which policy version) decided.
 */
import { sha256Hex } from '../core/hash.js';
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { PolicyFileSchema, type PolicyFile } from './schema.js';
import { WardenError } from '../core/errors.js';

/** A policy file that cannot be used; `problems` each name the key that is wrong. */
export class PolicyFileError extends WardenError {
  override name = 'PolicyFileError';
  constructor(readonly file: string, readonly problems: string[]) {
    super('WARDEN_POLICY_FILE', `invalid policy file ${file}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export interface LoadedPolicies extends PolicyFile {
  file: string;
  /** sha256 (hex) of the file's bytes. */
  digest: string;
}

/** `policies[2].retryStorm.budgetRatio` from zod's path. */
export function keyOf(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out || '(top level)';
}

export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((i) => {
    const key = keyOf(i.path);
    if (i.code === 'unrecognized_keys') return `${key}: unknown key(s) ${i.keys.join(', ')}`;
    // zod says "Invalid input: expected number, received string"; the key already says where.
    return `${key}: ${i.message.replace(/^Invalid input: /, '')}`;
  });
}

export function parsePolicies(text: string | Buffer, file = '(inline)'): LoadedPolicies {
  const bytes = typeof text === 'string' ? Buffer.from(text) : text;
  let doc: unknown;
  try {
    doc = parseYaml(bytes.toString('utf8'));
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : '';
    throw new PolicyFileError(file, [`not valid YAML${where}: ${(err as Error).message.split('\n')[0]}`]);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new PolicyFileError(file, ['(top level): expected a mapping with apiVersion: warden/v1 and policies: [...]']);
  }
  const r = PolicyFileSchema.safeParse(doc);
  if (!r.success) throw new PolicyFileError(file, formatIssues(r.error.issues));
  return { ...r.data, file, digest: sha256Hex(bytes) };
}

export function loadPolicyFile(file: string): LoadedPolicies {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (err) {
    throw new PolicyFileError(file, [`cannot read the file: ${(err as Error).message}`]);
  }
  return parsePolicies(bytes, file);
}
