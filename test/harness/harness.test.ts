import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ensureBinary,
  ManagedProcess,
  MissingBinaryError,
  pidExists,
  ProcessStartError,
  promtool,
  startAlertmanager,
  startClickHouse,
  startNats,
  startPrometheus,
  startRedis,
  tempDir,
  waitFor,
  type ServerControl,
} from './index.js';

// Servers every test here starts; disposed at the end even if a test failed half-way.
const started: ServerControl[] = [];
const track = <T extends ServerControl>(s: T): T => (started.push(s), s);
// Start times (ms), printed at the end: they go into the harness's documentation.
const timings: Record<string, number> = {};

async function stopAndProveGone(s: ServerControl): Promise<void> {
  const pid = s.pid;
  expect(pid).toBeTypeOf('number');
  await s.stop();
  expect(s.pid).toBeUndefined();
  expect(pidExists(pid!)).toBe(false);
}

beforeAll(async () => {
  // On a fresh machine this installs the Debian packages (as root), once, before the timed tests.
  await Promise.all([
    ensureBinary('redis-server', 'redis-server'),
    ensureBinary('nats-server', 'nats-server'),
    ensureBinary('clickhouse-server', 'clickhouse-server clickhouse-client'),
    ensureBinary('prometheus', 'prometheus'),
    ensureBinary('promtool', 'prometheus'),
    ensureBinary('alertmanager', 'prometheus-alertmanager'),
  ]);
}, 15 * 60_000);

afterAll(async () => {
  await Promise.allSettled(started.map((s) => s.dispose()));
  console.log('harness start times (ms):', JSON.stringify(timings));
});

describe('Redis', () => {
  it('two started at once get different ports, never the machine-wide 6379, and answer SET/GET', async () => {
    const [a, b] = await Promise.all([startRedis(), startRedis()]).then((rs) => rs.map(track));
    timings.redis = a.process.lastStartMs;
    expect(a.port).not.toBe(b.port);
    expect([a.port, b.port]).not.toContain(6379);
    expect(a.url).toBe(`redis://127.0.0.1:${a.port}`);
    const client = new Redis(a.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await client.connect();
      await client.set('k', 'v');
      expect(await client.get('k')).toBe('v');
    } finally {
      client.disconnect();
    }
    await stopAndProveGone(a);
    await stopAndProveGone(b);
  });

  it('persist: restart() and kill9() keep the port and the data', async () => {
    const r = track(await startRedis({ persist: true }));
    const port = r.port;
    const client = new Redis(r.url, { maxRetriesPerRequest: null }); // reconnects across the restarts
    client.on('error', () => undefined); // connection refused while the server is down is expected
    try {
      await client.set('survives', 'restart');
      await r.restart();
      expect(r.port).toBe(port);
      expect(await client.get('survives')).toBe('restart');

      await client.set('survives', 'crash');
      await r.kill9();
      expect(r.pid).toBeUndefined();
      await r.start();
      expect(await client.get('survives')).toBe('crash'); // appendfsync always
    } finally {
      client.disconnect();
    }
    await stopAndProveGone(r);
  });

  it('without persist a restart starts empty', async () => {
    const r = track(await startRedis());
    const client = new Redis(r.url, { maxRetriesPerRequest: null });
    client.on('error', () => undefined);
    try {
      await client.set('gone', '1');
      await r.restart();
      expect(await client.get('gone')).toBeNull();
    } finally {
      client.disconnect();
    }
  });
});

describe('NATS', () => {
  it('starts with JetStream, restarts on the same port, stops by PID', async () => {
    const n = track(await startNats());
    timings.nats = n.process.lastStartMs;
    expect(n.port).not.toBe(4222);
    expect(n.url).toBe(`nats://127.0.0.1:${n.port}`);
    const info = await n.info();
    expect(info.jetstream).toBe(true);
    expect(info.version).toMatch(/^2\./);
    const before = n.pid;
    await n.restart();
    expect(n.pid).not.toBe(before);
    expect((await n.info()).jetstream).toBe(true);
    await n.kill9();
    await n.start();
    expect((await n.info()).jetstream).toBe(true);
    await stopAndProveGone(n);
  });
});

describe('ClickHouse', () => {
  it('answers SELECT version(); data survives restart and a crash; stops by PID', async () => {
    const ch = track(await startClickHouse());
    timings.clickhouse = ch.process.lastStartMs;
    expect(ch.url).toBe(`http://127.0.0.1:${ch.httpPort}`);
    expect((await ch.query('SELECT version()')).trim()).toMatch(/^\d+\.\d+/);
    await ch.query('CREATE TABLE t (x UInt32) ENGINE = MergeTree ORDER BY x');
    await ch.query('INSERT INTO t VALUES (1), (2), (3)');

    await ch.restart(); // "outage then recovery" uses stop() + start(), which is the same thing
    timings.clickhouseRestart = ch.process.lastStartMs;
    expect((await ch.query('SELECT sum(x) FROM t')).trim()).toBe('6');

    await ch.kill9();
    await expect(ch.query('SELECT 1')).rejects.toThrow();
    await ch.start();
    expect((await ch.query('SELECT count() FROM t')).trim()).toBe('3');
    await stopAndProveGone(ch);
  });
});

describe('Prometheus', () => {
  it('scrapes a local /metrics target (up == 1), restarts on the same port, stops by PID', async () => {
    const target = http.createServer((req, res) => {
      if (req.url !== '/metrics') return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end('# HELP harness_probe A constant.\n# TYPE harness_probe gauge\nharness_probe 42\n');
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const instance = `127.0.0.1:${(target.address() as AddressInfo).port}`;
    try {
      const p = track(await startPrometheus({ scrapeTargets: [instance], scrapeIntervalSec: 1 }));
      timings.prometheus = p.process.lastStartMs;
      const t0 = Date.now();
      const up = await waitFor(
        async () => (await p.query('up')).find((s) => s.metric.instance === instance && s.value === 1),
        { timeoutMs: 20_000, intervalMs: 250, what: `up{instance="${instance}"} == 1` },
      );
      timings.prometheusFirstUp = Date.now() - t0;
      expect(up.metric.job).toBe('warden');
      expect((await p.query('harness_probe'))[0]?.value).toBe(42);
      expect((await p.targets())[0]?.health).toBe('up');

      const port = p.port;
      await p.restart();
      expect(p.port).toBe(port);
      expect((await fetch(`${p.url}/-/ready`)).status).toBe(200);
      await stopAndProveGone(p);
    } finally {
      await new Promise((r) => target.close(r));
    }
  });

  it('promtool checks metrics from stdin', async () => {
    const ok = await promtool(['check', 'metrics'], { stdin: '# HELP a_total A.\n# TYPE a_total counter\na_total 1\n' });
    expect(ok.code).toBe(0);
    const bad = await promtool(['check', 'metrics'], { stdin: '# HELP a_total A.\n# TYPE a_total gauge\na_total 1\n' });
    expect(bad.code).not.toBe(0);
    expect(bad.stdout + bad.stderr).toMatch(/_total/);
  });

  it('Alertmanager starts with clustering off and stops by PID', async () => {
    const am = track(await startAlertmanager());
    timings.alertmanager = am.process.lastStartMs;
    expect(await am.alerts()).toEqual([]);
    await stopAndProveGone(am);
  });
});

describe('harness errors', () => {
  it('MissingBinaryError carries the exact install command', () => {
    const err = new MissingBinaryError('redis-server', 'redis-server');
    expect(err.name).toBe('MissingBinaryError');
    expect(err.message).toBe('sudo apt-get update && sudo apt-get install -y redis-server');
  });

  it('a server that never gets ready fails with its log tail and is killed', async () => {
    const tmp = await tempDir('never-ready');
    const proc = new ManagedProcess({
      name: 'never',
      command: '/bin/sh',
      args: ['-c', 'echo hello-from-child; exec sleep 30'],
      dir: tmp.path,
      ready: async () => false,
      readyTimeoutMs: 300,
    });
    const err = await proc.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessStartError);
    expect((err as Error).message).toContain('hello-from-child');
    expect(proc.running).toBe(false);
    await tmp.cleanup();
  });

  it('a server that exits early fails fast with its exit code and log', async () => {
    const tmp = await tempDir('exits');
    const err = await ManagedProcess.start({
      name: 'exits',
      command: '/bin/sh',
      args: ['-c', 'echo boom >&2; exit 3'],
      dir: tmp.path,
      ready: async () => false,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessStartError);
    expect((err as Error).message).toMatch(/code 3/);
    expect((err as Error).message).toContain('boom');
    await tmp.cleanup();
  });
});
