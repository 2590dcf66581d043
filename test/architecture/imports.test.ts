// Imports run downstream only: core <- hooks | collectors | ledger | policies <- agent. This test
// reads every import of every source file (static, re-export and dynamic) and fails on one that runs
// upstream, so the folder list keeps saying where code runs.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
const LAYERS = ['core', 'hooks', 'collectors', 'ledger', 'policies', 'agent'] as const;
type Layer = (typeof LAYERS)[number];

/** What each layer may import from Warden (besides itself). */
const MAY_IMPORT: Record<Layer, readonly Layer[]> = {
  core: [],
  hooks: ['core'],
  collectors: ['core', 'ledger'],
  ledger: ['core'],
  policies: ['core'],
  agent: ['core', 'hooks', 'collectors', 'ledger', 'policies'],
};

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|mts)$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

export function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles.map((f) => f.fileName);
}

/** The Warden layer a relative specifier lands in, or null for packages and files outside the layers. */
function layerOf(fromFile: string, spec: string): Layer | 'outside' | null {
  if (!spec.startsWith('.')) return null;
  const rel = path.relative(ROOT, path.resolve(path.dirname(fromFile), spec));
  const top = rel.split(path.sep)[0];
  return (LAYERS as readonly string[]).includes(top) ? (top as Layer) : 'outside';
}

function violations(): string[] {
  const bad: string[] = [];
  for (const layer of LAYERS) {
    for (const file of sourceFiles(path.join(ROOT, layer))) {
      for (const spec of importsOf(file)) {
        const target = layerOf(file, spec);
        if (target === null || target === layer) continue;
        if (target === 'outside' || !MAY_IMPORT[layer].includes(target)) {
          bad.push(`${path.relative(ROOT, file)} imports ${spec} (${target}): ${layer}/ may import ${MAY_IMPORT[layer].join(', ') || 'nothing of Warden'}`);
        }
      }
    }
  }
  return bad;
}

describe('imports run downstream only', () => {
  it('no source file imports a layer upstream of its own (or test/, bench/, scripts/)', () => {
    expect(violations()).toEqual([]);
  });

  it('the check sees static, re-export and dynamic imports (so it can fail)', () => {
    const probe = ts.preProcessFile(
      "import a from '../agent/x.js';\nexport { b } from '../ledger/y.js';\nconst c = await import('../policies/z.js');",
      true,
      true,
    );
    expect(probe.importedFiles.map((f) => f.fileName)).toEqual(['../agent/x.js', '../ledger/y.js', '../policies/z.js']);
    expect(layerOf(path.join(ROOT, 'core/event.ts'), '../agent/config.js')).toBe('agent');
    expect(layerOf(path.join(ROOT, 'hooks/bullmq/index.ts'), '../../collectors/bullmq/metadata.js')).toBe('collectors');
  });
});
