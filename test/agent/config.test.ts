import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../agent/config.js';
import { ConfigError } from '../../agent/errors.js';
import { tempDir, type TempDir } from '../harness/index.js';

let dir: TempDir;
beforeAll(async () => { dir = await tempDir('warden-config'); });
afterAll(async () => { await dir.cleanup(); });

const file = (name: string, text: string) => { const p = join(dir.path, name); writeFileSync(p, text); return p; };
const problems = (fn: () => unknown): string => {
  try { fn(); } catch (err) { expect(err).toBeInstanceOf(ConfigError); return (err as Error).message; }
  throw new Error('expected a ConfigError');
};

describe('config', () => {
  it('has defaults that run the sidecar with nothing configured', () => {
    const c = loadConfig({ env: {} });
    expect(c.dataDir).toBe('./.warden');
    expect(c.redis.url).toBe('redis://127.0.0.1:6379');
    expect(c.metrics.addr).toBe('127.0.0.1:9464');
    expect(c.bullmq.prefix).toBe('bull');
    expect(c.bullmq.queues).toEqual([]);
  });

  it('layers file < environment < flags', () => {
    const p = file('layer.yaml', 'dataDir: /from/file\nbullmq:\n  queues: [a]\n  batchSize: 10\nmetrics:\n  addr: 0.0.0.0:1\n');
    const c = loadConfig({ file: p, env: { WARDEN_QUEUES: 'x, y', WARDEN_METRICS_ADDR: '127.0.0.1:9999', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }, overrides: { dataDir: '/from/flag' } });
    expect(c.dataDir).toBe('/from/flag');
    expect(c.bullmq.queues).toEqual(['x', 'y']);
    expect(c.bullmq.batchSize).toBe(10);
    expect(c.metrics.addr).toBe('127.0.0.1:9999');
    expect(c.tracing.endpoint).toBe('http://127.0.0.1:4318');
  });

  it('names the bad key, the unknown key, and what was expected', () => {
    const p = file('bad.yaml', 'bullmq:\n  batchSize: many\n  quues: [a]\nredis:\n  url: localhost:6379\n');
    const msg = problems(() => loadConfig({ file: p, env: {} }));
    expect(msg).toContain('bullmq.batchSize');
    expect(msg).toMatch(/bullmq: unknown key\(s\) quues/);
    expect(msg).toContain('redis.url: expected a redis:// or rediss:// URL');
    expect(msg).toContain(p);
  });

  it('reports broken YAML with its line, and a missing file with its path', () => {
    const p = file('broken.yaml', 'bullmq:\n  queues: [a, b\nredis: {\n');
    expect(problems(() => loadConfig({ file: p, env: {} }))).toMatch(/not valid YAML at line \d+/);
    expect(problems(() => loadConfig({ file: join(dir.path, 'nope.yaml'), env: {} }))).toContain('cannot read the file');
  });

  it('rejects a bad environment value naming the variable\'s key', () => {
    expect(problems(() => loadConfig({ env: { WARDEN_METRICS_ADDR: 'nine-four-six-four' } }))).toContain('metrics.addr: expected host:port');
  });

  it('validates metadata paths', () => {
    const p = file('meta.yaml', 'bullmq:\n  metadata:\n    model_version: model.version\n');
    expect(problems(() => loadConfig({ file: p, env: {} }))).toContain('bullmq.metadata.model_version');
  });

  it('configures consuming hook events from NATS (defaults, env, errors naming the key)', () => {
    const d = loadConfig({ env: {} });
    expect(d.nats).toMatchObject({ eventStream: 'WARDEN_EVENTS', consumer: 'warden-sidecar', batchSize: 256, ackWaitMs: 30_000 });
    expect(d.ingest.dedupeWindow).toBe(100_000);
    const c = loadConfig({ env: { WARDEN_NATS_URL: 'nats://10.0.0.5:4222', WARDEN_NATS_CONSUMER: 'sidecars-eu' } });
    expect(c.nats).toMatchObject({ url: 'nats://10.0.0.5:4222', consumer: 'sidecars-eu' });
    const p = file('nats.yaml', 'nats:\n  batchSize: 0\n  consumer: "has space"\ningest:\n  dedupeWindow: 10\n');
    const msg = problems(() => loadConfig({ file: p, env: {} }));
    expect(msg).toContain('nats.batchSize');
    expect(msg).toContain('nats.consumer');
    expect(msg).toContain('ingest.dedupeWindow');
  });

  it('refuses keys that are valid alone but not together, naming the key', () => {
    expect(problems(() => loadConfig({ env: { WARDEN_CLICKHOUSE: 'server' } }))).toContain('clickhouse.url: required when clickhouse.mode is "server"');
    expect(loadConfig({ env: { WARDEN_CLICKHOUSE: 'server', WARDEN_CLICKHOUSE_URL: 'http://127.0.0.1:8123' } }).clickhouse.mode).toBe('server');
    const token = 'a'.repeat(24);
    const msg = problems(() => loadConfig({ env: { WARDEN_API_TOKENS: `ops:admin:${token},ops:compliance:${'b'.repeat(24)},ci:ingest:${token}` } }));
    expect(msg).toContain('api.tokens.1.name: duplicate token name "ops"');
    expect(msg).toContain('api.tokens.2.token: the same token as api.tokens.0');
  });
});
