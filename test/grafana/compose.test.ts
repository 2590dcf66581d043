/**
 * docker-compose.yml cannot run here (no docker engine), so what can be checked without it is: it
 * parses, every service the stack needs is there with a pinned image and a health check, every
 * bind-mounted path exists in the repo, every named volume is declared, every Warden environment
 * variable is one Warden reads, and the configs it mounts are valid and point at the compose services.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ENV_VARS, loadConfig } from '../../agent/config.js';
import { promtool, ensureBinary } from '../harness/index.js';
import { spawnSync } from 'node:child_process';
import { provisionedDatasources } from './dashboard-helpers.js';
import { DEPLOYED_NODE_ARGS } from '../../bench/lib/sidecar.js';

interface Service {
  image?: string; build?: unknown; command?: string[]; environment?: Record<string, string>;
  volumes?: string[]; healthcheck?: { test: string[] }; depends_on?: Record<string, { condition: string }>; ports?: string[];
}
const compose = parseYaml(readFileSync('docker-compose.yml', 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const services = compose.services;

/** Services whose image cannot run a health check, and why. */
const NO_HEALTHCHECK: Record<string, string> = {
  'otel-collector': 'distroless image: no shell or HTTP client',
  'demo-workers': 'serves nothing to probe; nothing depends on it',
};

describe('docker-compose.yml', () => {
  it('runs the whole stack', () => {
    expect(Object.keys(services).sort()).toEqual([
      'alert-webhook', 'alertmanager', 'clickhouse', 'demo-workers', 'grafana', 'nats', 'otel-collector', 'prometheus', 'redis',
      'tempo', 'temporal', 'temporal-db', 'temporal-ui', 'warden',
    ]);
    expect(services.nats.command).toContain('-js');
    expect(services.clickhouse.image).toMatch(/^clickhouse\/clickhouse-server:(24|25)\.\d+/);
    expect(services.temporal.image).toMatch(/^temporalio\/auto-setup:/);
    expect(services.grafana.environment!.GF_INSTALL_PLUGINS).toMatch(/^grafana-clickhouse-datasource \d+\.\d+\.\d+$/);
    expect(services['demo-workers'].command!.slice(0, 2)).toEqual(['demo', '--no-sidecar']);
  });

  it('pins every image to a version and gives every service a health check (or says why not)', () => {
    for (const [name, s] of Object.entries(services)) {
      expect(s.image, name).toMatch(/^[\w./-]+:v?\d+(\.\d+)*(-[\w.]+)?$/); // a version tag, never latest
      if (name in NO_HEALTHCHECK) expect(s.healthcheck, name).toBeUndefined();
      else expect(s.healthcheck?.test.length, name).toBeGreaterThan(1);
      for (const [dep, { condition }] of Object.entries(s.depends_on ?? {})) {
        expect(services[dep], `${name} depends on ${dep}`).toBeDefined();
        if (condition === 'service_healthy') expect(services[dep].healthcheck, `${name} waits for ${dep} to be healthy`).toBeDefined();
      }
    }
  });

  it('mounts only paths that exist in the repo, and declares every named volume', () => {
    const binds: string[] = [];
    for (const [name, s] of Object.entries(services)) {
      for (const v of s.volumes ?? []) {
        const source = v.split(':')[0];
        if (source.startsWith('.') || source.startsWith('/')) {
          expect(existsSync(resolve(source)), `${name}: ${source}`).toBe(true);
          binds.push(source);
        } else {
          expect(Object.keys(compose.volumes), `${name}: volume ${source}`).toContain(source);
        }
      }
    }
    expect(binds.sort()).toEqual(['./grafana/alertmanager/alertmanager.yml', './grafana/clickhouse/users.d/grafana.xml', './grafana/dashboards',
      './grafana/otel-collector/config.yaml', './grafana/prometheus', './grafana/provisioning', './grafana/tempo/tempo.yaml']);
  });

  it('the image runs Node with the heap cap the benchmarks measure the sidecar with', () => {
    const dockerfile = readFileSync(resolve('Dockerfile'), 'utf8');
    const m = /NODE_OPTIONS=(\S+)/.exec(dockerfile);
    expect(m?.[1]).toBe(DEPLOYED_NODE_ARGS);
  });

  it('sets only environment variables Warden reads, and they make a valid configuration', () => {
    for (const name of ['warden', 'demo-workers']) {
      const env = services[name].environment!;
      const wardenVars = Object.keys(env).filter((k) => k.startsWith('WARDEN_') || k.startsWith('OTEL_'));
      expect(wardenVars.length, name).toBeGreaterThan(0);
      expect(wardenVars.filter((k) => !(k in ENV_VARS)), name).toEqual([]);
      loadConfig({ env }); // throws ConfigError naming the key if a value is wrong
    }
    const cfg = loadConfig({ env: services.warden.environment! });
    expect(cfg.clickhouse).toMatchObject({ mode: 'server', url: 'http://clickhouse:8123', database: 'warden' });
    expect(cfg.nats.url).toBe('nats://nats:4222');
    expect(cfg.tracing.endpoint).toBe('http://otel-collector:4318');
    expect(cfg.metrics.addr).toBe('0.0.0.0:9464');
  });

  it('the Prometheus config it mounts is valid, loads both rule files, scrapes warden:9464 as job warden and alerts to alertmanager', async () => {
    const r = await promtool(['check', 'config', 'grafana/prometheus/prometheus.yml']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('SUCCESS: 2 rule files found');
    const prom = parseYaml(readFileSync('grafana/prometheus/prometheus.yml', 'utf8')) as {
      scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
      alerting: { alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }> };
    };
    const warden = prom.scrape_configs.find((s) => s.job_name === 'warden')!;
    expect(warden.static_configs[0].targets).toEqual([`warden:${services.warden.environment!.WARDEN_METRICS_ADDR.split(':')[1]}`]);
    expect(prom.alerting.alertmanagers[0].static_configs[0].targets).toEqual(['alertmanager:9093']);
  });

  it('the Alertmanager config is valid and its receivers are the compose webhook', async () => {
    const amtool = await ensureBinary('amtool', 'prometheus-alertmanager');
    const r = spawnSync(amtool, ['check-config', 'grafana/alertmanager/alertmanager.yml'], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const am = parseYaml(readFileSync('grafana/alertmanager/alertmanager.yml', 'utf8')) as { receivers: Array<{ name: string; webhook_configs: Array<{ url: string }> }> };
    expect(am.receivers.map((x) => x.name).sort()).toEqual(['page', 'ticket']);
    for (const rcv of am.receivers) expect(new URL(rcv.webhook_configs[0].url).host).toBe(`alert-webhook:${services['alert-webhook'].environment!.HTTP_PORT}`);
  });

  it('Grafana\'s datasources, the collector and Tempo point at services of the stack', () => {
    const text = readFileSync('grafana/provisioning/datasources/warden.yaml', 'utf8');
    expect(provisionedDatasources()).toHaveLength(3);
    for (const host of ['http://prometheus:9090', 'host: clickhouse', 'http://tempo:3200']) expect(text).toContain(host);
    expect(services.grafana.environment!.GRAFANA_CLICKHOUSE_PASSWORD).toBe(services.clickhouse.environment!.GRAFANA_CLICKHOUSE_PASSWORD);
    const otel = parseYaml(readFileSync('grafana/otel-collector/config.yaml', 'utf8')) as { exporters: Record<string, { endpoint: string }>; receivers: { otlp: { protocols: { http: { endpoint: string } } } } };
    expect(otel.exporters['otlp/tempo'].endpoint).toBe('tempo:4317');
    expect(otel.receivers.otlp.protocols.http.endpoint.split(':')[1]).toBe(new URL(services.warden.environment!.OTEL_EXPORTER_OTLP_ENDPOINT).port);
    const tempo = parseYaml(readFileSync('grafana/tempo/tempo.yaml', 'utf8')) as { server: { http_listen_port: number }; distributor: { receivers: { otlp: { protocols: { grpc: { endpoint: string } } } } } };
    expect(tempo.server.http_listen_port).toBe(3200);
    expect(tempo.distributor.receivers.otlp.protocols.grpc.endpoint).toBe('0.0.0.0:4317');
    const dashboardsProvider = parseYaml(readFileSync('grafana/provisioning/dashboards/warden.yaml', 'utf8')) as { providers: Array<{ options: { path: string } }> };
    expect(services.grafana.volumes).toContain(`./grafana/dashboards:${dashboardsProvider.providers[0].options.path}:ro`);
  });
});
