/**
 * A record of a running sidecar's ledger rewritten on disk: the sidecar's own periodic verify notices,
 * Prometheus raises WardenLedgerVerifyFailed from the real scrape, and Alertmanager (the committed
 * routing) pages through the webhook. Before the tampering the same chain stays quiet.
 */
import { createServer, type Server } from 'node:http';
import { openSync, readFileSync, closeSync, writeSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { ledgerDirOf, listSegments } from '../../ledger/spool/segments.js';
import {
  sleep, startAlertmanager, startPrometheus, startRedis, tempDir, waitFor,
  type AlertmanagerServer, type PrometheusServer, type RedisServer, type TempDir,
} from '../harness/index.js';
import { startSidecarProcess, type SidecarProcess } from '../harness/sidecar.js';

interface Delivery { path: string; alerts: Array<{ status: string; labels: Record<string, string>; annotations: Record<string, string> }> }

let redis: RedisServer;
let dir: TempDir;
let sidecar: SidecarProcess;
let prometheus: PrometheusServer;
let alertmanager: AlertmanagerServer;
let webhook: Server;
const deliveries: Delivery[] = [];
let dataDir: string;

beforeAll(async () => {
  [redis, dir] = await Promise.all([startRedis(), tempDir('verify-alert')]);
  const config = join(dir.path, 'warden.yaml');
  writeFileSync(config, 'ledger: { verifyIntervalMs: 500, verifyFullEvery: 1 }\nclickhouse: { mode: "off" }\n');
  sidecar = await startSidecarProcess({ redisUrl: redis.url, dataDir: join(dir.path, 'warden'), config, queues: ['nothing'] });
  dataDir = join(dir.path, 'warden', 'data');
  webhook = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => { deliveries.push({ path: req.url ?? '', alerts: (JSON.parse(body) as Delivery).alerts }); res.end('ok'); });
  });
  await new Promise<void>((r) => webhook.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(webhook.address() as { port: number }).port}`;
  const cfg = parseYaml(readFileSync(resolve('grafana/alertmanager/alertmanager.yml'), 'utf8').replaceAll('http://alert-webhook:8080', url)) as { route: Record<string, unknown> & { routes: Array<Record<string, unknown>> } };
  for (const r of [cfg.route, ...cfg.route.routes]) Object.assign(r, { group_wait: '1s', group_interval: '1s' });
  alertmanager = await startAlertmanager({ configYaml: stringifyYaml(cfg) });
  prometheus = await startPrometheus({
    scrapeTargets: [`${sidecar.url}/metrics`], ruleFiles: [resolve('grafana/prometheus/warden-alerts.yml')],
    alertmanagerUrl: alertmanager.url, extraArgs: ['--rules.alert.resend-delay=1s'],
  });
}, 60_000);

afterAll(async () => {
  await prometheus?.dispose();
  await alertmanager?.dispose();
  await sidecar?.proc.stop();
  await new Promise((r) => webhook?.close(r));
  await redis?.dispose();
  await dir?.cleanup();
});

const paged = () => deliveries.some((d) => d.path === '/page' && d.alerts.some((a) => a.status === 'firing' && a.labels.alertname === 'WardenLedgerVerifyFailed'));

describe('ledger self-verify -> Prometheus -> Alertmanager -> webhook', () => {
  it('stays quiet while the ledger verifies, and pages once a record is rewritten on disk', async () => {
    // The sidecar's own ledger.verified events fill the ledger; Prometheus sees passing runs.
    await waitFor(async () => (await prometheus.query('warden_ledger_verify_ok == 1 and warden_ledger_verify_last_run_timestamp_seconds > 0')).length === 1,
      { timeoutMs: 15_000, what: 'a passing self-verify scraped' });
    await sleep(3000); // rules evaluated every second: nothing must fire
    expect(deliveries.filter((d) => d.alerts.some((a) => a.labels.alertname === 'WardenLedgerVerifyFailed'))).toEqual([]);

    // Rewrite the decision of record 1 in place (same length, bytes at their offset; the sidecar keeps appending).
    const [seg] = await listSegments(ledgerDirOf(dataDir));
    const text = readFileSync(seg.path, 'utf8');
    const at = text.indexOf('"decision":"ok"');
    expect(at).toBeGreaterThan(0);
    expect(text.slice(0, at)).not.toContain('\n'); // on the first line
    const fd = openSync(seg.path, 'r+');
    writeSync(fd, '"decision":"OK"', at);
    closeSync(fd);

    await waitFor(paged, { timeoutMs: 20_000, what: 'WardenLedgerVerifyFailed at /page' });
    const alert = deliveries.flatMap((d) => d.alerts).find((a) => a.labels.alertname === 'WardenLedgerVerifyFailed')!;
    expect(alert.labels).toMatchObject({ severity: 'page', job: 'warden' });
    expect(alert.annotations.summary).toContain('Ledger self-verify failed');
    expect((await prometheus.query('warden_ledger_verify_ok'))[0].value).toBe(0);
    // The ledger itself says so, naming the record (the Compliance dashboard's "last verify" reads this from ClickHouse).
    const lines = readFileSync(seg.path, 'utf8').trim().split('\n');
    const failed = lines.map((l) => JSON.parse(l) as { event: { kind: string; decision: string; reason: string } }).filter((r) => r.event.kind === 'ledger.verified' && r.event.decision === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed[0].event.reason).toContain('seq 1');
  });
});
