/** The config's policies section and bullmq.outputs: defaults, environment, and errors that name the key. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../agent/config.js';
import { ConfigError } from '../../agent/errors.js';

const message = (fn: () => unknown): string => {
  try { fn(); } catch (err) { expect(err).toBeInstanceOf(ConfigError); return (err as Error).message; }
  throw new Error('expected a ConfigError');
};

describe('config: policies and outputs', () => {
  it('defaults: no policy file, 1 s evaluation, not dry-run; WARDEN_POLICY_FILE sets the file', () => {
    expect(loadConfig({ env: {} }).policies).toEqual({ evaluateIntervalMs: 1000, dryRun: false });
    expect(loadConfig({ env: { WARDEN_POLICY_FILE: '/etc/warden/policies.yaml' } }).policies.file).toBe('/etc/warden/policies.yaml');
  });

  it('names bad keys', () => {
    expect(message(() => loadConfig({ env: {}, overrides: { 'policies.evaluateIntervalMs': 'fast' } }))).toMatch(/policies\.evaluateIntervalMs: .*expected number/);
    expect(message(() => loadConfig({ env: {}, overrides: { 'policies.dryrun': true } }))).toMatch(/policies: unknown key\(s\) dryrun/);
    expect(message(() => loadConfig({ env: {}, overrides: { 'bullmq.outputs': { score: 'data.score' } } }))).toMatch(/bullmq\.outputs\.score: expected a path starting with returnvalue\./);
    expect(message(() => loadConfig({ env: {}, overrides: { 'bullmq.metadata': { served_model: 'model' } } }))).toMatch(/bullmq\.metadata\.served_model: /);
  });

  it('accepts outputs and served-model paths', () => {
    const c = loadConfig({ env: {}, overrides: { 'bullmq.outputs': { score: 'returnvalue.eval.score' }, 'bullmq.metadata': { served_model: 'returnvalue.model' } } });
    expect(c.bullmq.outputs).toEqual({ score: 'returnvalue.eval.score' });
    expect(c.bullmq.metadata.served_model).toBe('returnvalue.model');
  });
});
