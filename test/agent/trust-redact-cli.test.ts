/**
 * Issue 12 (redaction and robustness half), as a user runs the `warden` CLI: nothing stored can crash a
 * reader, config check never prints a secret, and bad addresses, ports, files and flags are clear
 * errors with the documented exit codes (no stack traces).
 */
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeEvent } from '../../core/event.js';
import { Checkpointer, loadOrCreateSigningKey, Spool } from '../../ledger/index.js';
import { freePort, tempDir, type TempDir } from '../harness/index.js';
import { events } from '../harness/ledger.js';

const CLI = resolve('dist/agent/cli.js');
let dir: TempDir;

function warden(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env }, maxBuffer: 16 * 1024 * 1024, timeout: 60_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const BAD_TS = 8640000000000001;

beforeAll(async () => { dir = await tempDir('warden-trust-cli'); });
afterAll(async () => { await dir.cleanup(); });

describe('a stored ts beyond what a date can hold (observation 6, reader part)', () => {
  it('ledger query (table), prove and verify-proof still work, and verify passes', async () => {
    const dataDir = join(dir.path, 'bad-ts');
    const key = await loadOrCreateSigningKey(dataDir);
    const spool = await Spool.open({ dir: dataDir, fsync: false, groupCommitMs: 0 });
    const cp = await Checkpointer.open({ dir: dataDir, key, every: 4, intervalMs: 3_600_000, fsync: false, lastSeq: spool.lastSeq });
    const bad = makeEvent({ kind: 'job.completed', source: 'bullmq', queue: 'q', job_id: '1', ts: BAD_TS, event_id: '01JAAAAAAAAAAAAAAAAAAAAAAA' });
    cp.add(await spool.append([...events(2), bad, ...events(1)]));
    await cp.idle();
    await spool.close();
    await cp.close({ lastSeq: spool.lastSeq });

    const q = await warden(['ledger', 'query', '--data-dir', dataDir]);
    expect(q.stderr).toBe('');
    expect(q.code).toBe(0);
    expect(q.stdout).toContain(`(invalid time ${BAD_TS})`);
    expect(q.stdout.trim().split('\n').length).toBeGreaterThanOrEqual(5);

    const proofFile = join(dir.path, 'bad-ts-proof.json');
    const p = await warden(['ledger', 'prove', bad.event_id, '--data-dir', dataDir, '--out', proofFile]);
    expect(p.stderr).toBe('');
    expect(p.code).toBe(0);
    const v = await warden(['ledger', 'verify-proof', proofFile, '--public-key', key.publicFile]);
    expect(v.stderr).toBe('');
    expect(v.stdout).toMatch(/proof valid: event 01JAAAAAAAAAAAAAAAAAAAAAAA \(job\.completed, \(invalid time 8640000000000001\)\)/);
    expect(v.code).toBe(0);
    expect((await warden(['ledger', 'verify', '--data-dir', dataDir])).code).toBe(0);
  });
});

describe('config check never prints a secret (observation 8)', () => {
  it('masks API tokens, the ClickHouse password and URL userinfo', async () => {
    const tok = 'tok-0123456789abcdef0123456789';
    const r = await warden(['config', 'check'], {
      WARDEN_API_TOKENS: `grafana:compliance:${tok}`,
      WARDEN_CLICKHOUSE_URL: 'http://chuser:urlPassw0rd@127.0.0.1:8123',
      WARDEN_CLICKHOUSE_PASSWORD: 'chPassw0rd',
      WARDEN_REDIS_URL: 'redis://default:redisPassw0rd@127.0.0.1:6379/0',
      WARDEN_NATS_URL: 'nats://natsuser:natsPassw0rd@127.0.0.1:4222',
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const s of [tok, 'urlPassw0rd', 'chPassw0rd', 'redisPassw0rd', 'natsPassw0rd']) expect(r.stdout).not.toContain(s);
    const cfg = JSON.parse(r.stdout.slice(0, r.stdout.lastIndexOf('}') + 1));
    expect(cfg.api.tokens[0]).toEqual({ name: 'grafana', role: 'compliance', token: '***' });
    expect(cfg.clickhouse.url).toBe('http://chuser:***@127.0.0.1:8123');
    expect(cfg.redis.url).toBe('redis://default:***@127.0.0.1:6379/0');
    expect(cfg.bullmq.prefix).toBe('bull'); // the rest is still printed
  });
});

describe('clear errors instead of crashes (observation 9)', () => {
  it('WARDEN_METRICS_ADDR with port 99999 fails config check and start with exit 2, no stack', async () => {
    const env = { WARDEN_METRICS_ADDR: '127.0.0.1:99999', WARDEN_DATA_DIR: join(dir.path, 'port') };
    const [c, s] = await Promise.all([warden(['config', 'check'], env), warden(['start'], env)]);
    for (const r of [c, s]) {
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/metrics\.addr: the port must be 0\.\.65535/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('a port in use is a clear error with exit 3, no stack', async () => {
    const port = await freePort();
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', () => r()));
    try {
      const r = await warden(['start'], { WARDEN_METRICS_ADDR: `127.0.0.1:${port}`, WARDEN_DATA_DIR: join(dir.path, 'inuse'), WARDEN_REDIS_URL: 'redis://127.0.0.1:1', WARDEN_CLICKHOUSE: 'off', WARDEN_LOG_LEVEL: 'error' });
      expect(r.stderr).toContain(`warden: cannot listen on 127.0.0.1:${port}: the address is in use`);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.code).toBe(3);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('--out to a directory or into a missing folder is a usage error (exit 2)', async () => {
    const dataDir = join(dir.path, 'out');
    const spool = await Spool.open({ dir: dataDir, fsync: false, groupCommitMs: 0 });
    await spool.append(events(3));
    await spool.close();
    const asDir = join(dir.path, 'a-dir');
    mkdirSync(asDir);
    const [d, m, e] = await Promise.all([
      warden(['ledger', 'consistency', '--data-dir', dataDir, '--out', asDir]),
      warden(['ledger', 'consistency', '--data-dir', dataDir, '--out', join(dir.path, 'missing', 'p.json')]),
      warden(['ledger', 'export', '--data-dir', dataDir, '--out', join(dir.path, 'missing', 'x.jsonl'), '--clickhouse-url', 'http://127.0.0.1:1']),
    ]);
    expect(d.stderr).toContain(`warden: --out ${asDir} is a directory`);
    expect(m.stderr).toMatch(/warden: --out .*p\.json: the folder .*missing does not exist/);
    expect(e.stderr).toMatch(/warden: --out .*x\.jsonl: the folder .*missing does not exist/);
    for (const r of [d, m, e]) {
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.code).toBe(2);
    }
  });

  it('--limit 1e20 names the maximum; --until before --since is a usage error naming both', async () => {
    const dataDir = join(dir.path, 'flags');
    const l = await warden(['ledger', 'query', '--data-dir', dataDir, '--limit', '1e20']);
    expect(l.code).toBe(2);
    expect(l.stderr).toMatch(/--limit.*from 1 to 999999999/);
    const u = await warden(['ledger', 'query', '--data-dir', dataDir, '--since', '2026-01-02T00:00:00Z', '--until', '2026-01-01T00:00:00Z']);
    expect(u.stderr).toMatch(/until \(2026-01-01T00:00:00\.000Z\) is before since \(2026-01-02T00:00:00\.000Z\)/);
    expect(u.code).toBe(2);
  });
});
