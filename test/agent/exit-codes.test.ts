/**
 * The exit codes of README "Exit codes", each from a real run of dist/agent/cli.js: 0 ok, 1 tampered,
 * 2 usage or config, 3 a dependency unavailable; and the error line: `warden: <message>`, with a stack
 * trace only for an internal error (4). No run here reaches 4 honestly: an internal error is a bug, so
 * the report format for it is checked on reportError directly.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, WardenError } from '../../core/errors.js';
import { makeEvent } from '../../core/event.js';
import { reportError } from '../../agent/cli/program.js';
import { Spool } from '../../ledger/spool/spool.js';
import { freePort, tempDir, type TempDir } from '../harness/index.js';

const CLI = resolve('dist/agent/cli.js');
const STACK = /^\s+at .*:\d+:\d+\)?$/m;
let dir: TempDir;

function warden(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => { dir = await tempDir('warden-exit'); });
afterAll(async () => { await dir.cleanup(); });

describe('warden exit codes', () => {
  it('0: a valid configuration', async () => {
    const r = await warden(['config', 'check', '--data-dir', join(dir.path, 'ok')]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(EXIT.OK);
    expect(r.stdout).toContain('configuration is valid');
  });

  it('1: a spool with a changed record does not verify', async () => {
    const dataDir = join(dir.path, 'tampered');
    const spool = await Spool.open({ dir: dataDir });
    await spool.append([1, 2, 3].map((n) => makeEvent({ source: 'bullmq', kind: 'job.started', queue: 'q', job_id: String(n), attempt: 1 })));
    await spool.close();
    const seg = join(dataDir, 'ledger', readdirSync(join(dataDir, 'ledger')).find((f) => f.endsWith('.jsonl'))!);
    writeFileSync(seg, readFileSync(seg, 'utf8').replace('"job_id":"2"', '"job_id":"7"'));
    const r = await warden(['ledger', 'verify', '--data-dir', dataDir]);
    expect(r.code).toBe(EXIT.TAMPERED);
    expect(r.stdout).toMatch(/LEDGER TAMPERED: first bad record seq 2\b/);
  });

  it('2: an unknown flag', async () => {
    const r = await warden(['ledger', 'query', '--no-such-flag']);
    expect(r.code).toBe(EXIT.USAGE);
    expect(r.stderr).toContain("unknown option '--no-such-flag'");
    expect(r.stderr).not.toMatch(STACK);
  });

  it('2: clickhouse.mode server without clickhouse.url, refused by config check and start before anything is created', async () => {
    const config = join(dir.path, 'server-no-url.yaml');
    writeFileSync(config, 'clickhouse:\n  mode: server\n');
    for (const cmd of ['config', 'start']) {
      const dataDir = join(dir.path, `no-url-${cmd}`);
      const args = cmd === 'config' ? ['config', 'check'] : ['start'];
      const r = await warden([...args, '--config', config, '--data-dir', dataDir], { WARDEN_METRICS_ADDR: '127.0.0.1:0' });
      expect(r.code, r.stderr).toBe(EXIT.USAGE);
      expect(r.stderr).toMatch(/^warden: invalid configuration/);
      expect(r.stderr).toContain('clickhouse.url: required when clickhouse.mode is "server"');
      expect(r.stderr).not.toMatch(STACK);
      expect(existsSync(join(dataDir, 'keys', 'ledger-ed25519.pem'))).toBe(false);
      expect(existsSync(dataDir)).toBe(false);
    }
    // The same through the environment.
    const env = await warden(['config', 'check'], { WARDEN_CLICKHOUSE: 'server' });
    expect(env.code).toBe(EXIT.USAGE);
    expect(env.stderr).toContain('clickhouse.url');
  });

  it('3: a store command against a ClickHouse that is not there', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const dataDir = join(dir.path, 'no-store');
    for (const args of [['ledger', 'approvals', '--clickhouse-url', url], ['ledger', 'verify', '--store', 'clickhouse', '--clickhouse-url', url]]) {
      const r = await warden([...args, '--data-dir', dataDir]);
      expect(r.code, r.stderr).toBe(EXIT.UNAVAILABLE);
      expect(r.stderr).toMatch(new RegExp(`^warden: ClickHouse at ${url} is unavailable`));
      expect(r.stderr).not.toMatch(STACK);
    }
  });

  it('3: a breaker command when the sidecar is not there', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const r = await warden(['breaker', 'list', '--url', url, '--token', 'admin-token-0123456789abcdef01234']);
    expect(r.code, r.stderr).toBe(EXIT.UNAVAILABLE);
    expect(r.stderr).toMatch(new RegExp(`^warden: cannot reach the sidecar at ${url}`));
    expect(r.stderr).not.toMatch(STACK);
  });
});

describe('warden error report', () => {
  it('is one line for a WardenError, and carries the stack only for an internal error', () => {
    let text = '';
    reportError(new WardenError('WARDEN_UNAVAILABLE', 'ClickHouse is down'), EXIT.UNAVAILABLE, (s) => { text += s; });
    expect(text).toBe('warden: ClickHouse is down\n');
    text = '';
    reportError(new TypeError('x is undefined'), EXIT.INTERNAL, (s) => { text += s; });
    expect(text).toMatch(/^warden: internal error: x is undefined\nTypeError: x is undefined\n/);
    expect(text).toMatch(STACK);
  });
});
