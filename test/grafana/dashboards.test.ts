import { describe, expect, it } from 'vitest';
import { allPanels, expandPromql, loadDashboards, promTargets, provisionedDatasources, sqlTargets } from './dashboard-helpers.js';
import { promtool } from '../harness/index.js';

const dashboards = loadDashboards();

describe('grafana dashboards are structurally valid', () => {
  it('finds the SRE overview and the Compliance dashboards, with distinct uids', () => {
    expect(dashboards.map((d) => d.file)).toEqual(['warden-compliance.json', 'warden-sre.json']);
    expect(new Set(dashboards.map((d) => d.dashboard.uid)).size).toBe(dashboards.length);
    expect(dashboards.map((d) => d.dashboard.title).sort()).toEqual(['Warden — Compliance', 'Warden — SRE overview']);
  });

  it('provisions each datasource once, with a fixed uid, including the official ClickHouse plugin and a trace store', () => {
    const ds = provisionedDatasources();
    expect(new Set(ds.map((d) => d.uid)).size).toBe(ds.length);
    expect(ds.map((d) => d.type).sort()).toEqual(['grafana-clickhouse-datasource', 'prometheus', 'tempo']);
  });

  for (const { file, dashboard } of dashboards) {
    describe(file, () => {
      const panels = allPanels(dashboard);
      const uids = new Set(provisionedDatasources().map((d) => d.uid));

      it('has unique panel ids', () => {
        const ids = panels.map((p) => p.id);
        expect(ids.every((id) => Number.isInteger(id) && id > 0)).toBe(true);
        expect(new Set(ids).size).toBe(ids.length);
      });

      it('places every panel inside 24 columns without overlapping another', () => {
        const overlaps: string[] = [];
        for (const p of panels) {
          const g = p.gridPos;
          expect(g, p.title).toBeDefined();
          expect(g.x >= 0 && g.y >= 0 && g.w > 0 && g.h > 0 && g.x + g.w <= 24, `${p.title} ${JSON.stringify(g)}`).toBe(true);
        }
        for (let i = 0; i < panels.length; i++) {
          for (let j = i + 1; j < panels.length; j++) {
            const a = panels[i].gridPos;
            const b = panels[j].gridPos;
            if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) overlaps.push(`${panels[i].title} / ${panels[j].title}`);
          }
        }
        expect(overlaps).toEqual([]);
      });

      it('gives every panel targets, and every datasource reference a provisioned uid', () => {
        const problems: string[] = [];
        for (const p of panels) {
          if (p.type === 'row') continue;
          if (!p.targets?.length) problems.push(`${p.title}: no targets`);
          for (const ref of [p.datasource, ...(p.targets ?? []).map((t) => t.datasource)]) {
            if (!ref) problems.push(`${p.title}: a query without a datasource`);
            else if (!uids.has(ref.uid)) problems.push(`${p.title}: datasource uid ${ref.uid} is not provisioned`);
          }
          for (const o of p.fieldConfig?.overrides ?? []) {
            for (const prop of o.properties) {
              if (prop.id !== 'links') continue;
              for (const link of prop.value as Array<{ internal?: { datasourceUid: string } }>) {
                if (link.internal && !uids.has(link.internal.datasourceUid)) problems.push(`${p.title}: link to unprovisioned ${link.internal.datasourceUid}`);
              }
            }
          }
        }
        for (const v of dashboard.templating.list) {
          if (v.type === 'query' && !uids.has(v.datasource?.uid ?? '')) problems.push(`variable ${v.name}: datasource not provisioned`);
        }
        expect(problems).toEqual([]);
      });
    });
  }

  it('the SRE dashboard has system, queue and name variables and covers the issue\'s panels', () => {
    const sre = dashboards.find((d) => d.file === 'warden-sre.json')!.dashboard;
    expect(sre.templating.list.filter((v) => v.type === 'query').map((v) => v.name)).toEqual(['system', 'queue', 'name']);
    // The system variable lists every system that has job metrics (bullmq, temporal, celery), not a fixed list.
    const system = sre.templating.list.find((v) => v.name === 'system') as unknown as { definition: string; includeAll: boolean };
    expect(system.definition).toBe('label_values(warden_jobs_total, system)');
    expect(system.includeAll).toBe(true);
    const text = JSON.stringify(sre);
    for (const metric of ['warden_jobs_total', 'warden_job_duration_seconds_bucket', 'warden_job_wait_seconds_bucket', 'warden_queue_jobs', 'warden_breaker_state',
      'warden_retry_ratio', 'warden_retry_budget_ratio', 'warden_ledger_backlog_events', 'warden_ledger_ship_errors_total', 'warden_collector_gaps_total',
      'warden:slo_error_budget_remaining:ratio', 'warden:slo_errors:ratio_rate1h']) {
      expect(text, metric).toContain(metric);
    }
  });

  it('links panels to the trace store by trace ID and to the ledger lineage by correlation ID', () => {
    for (const { dashboard } of dashboards) {
      const links = allPanels(dashboard).flatMap((p) => (p.fieldConfig?.overrides ?? []).flatMap((o) => o.properties.filter((x) => x.id === 'links').flatMap((x) => x.value as Array<{ url: string; internal?: { datasourceUid: string; query: Record<string, string> } }>)));
      expect(links.some((l) => l.internal?.datasourceUid === 'warden-tempo' && l.internal.query.query === '${__value.raw}'), dashboard.uid).toBe(true);
      expect(links.some((l) => l.internal?.datasourceUid === 'warden-clickhouse' && /warden_lineage WHERE correlation_id = '\$\{__value\.raw\}'/.test(l.internal.query.rawSql)), dashboard.uid).toBe(true);
      expect(links.some((l) => l.url.includes('/v1/ledger/lineage/${__value.raw:percentencode}')), dashboard.uid).toBe(true);
    }
  });

  it('the Compliance dashboard answers the five compliance questions from ClickHouse', () => {
    const c = dashboards.find((d) => d.file === 'warden-compliance.json')!.dashboard;
    const sql = sqlTargets(c).map((t) => t.target.rawSql!).join('\n');
    expect(promTargets(c)).toEqual([]);
    for (const needle of ["kind IN ('approval.granted', 'approval.denied')", 'model_version, policy, policy_version', "'require_approval'", "kind = 'policy.decision'", "kind = 'ledger.verified'"]) {
      expect(sql).toContain(needle);
    }
  });

  it('every PromQL expression parses (promtool, on a rule file made of the expanded expressions)', async () => {
    const exprs = dashboards.flatMap(({ dashboard }) => promTargets(dashboard).map(({ target }) => expandPromql(target.expr!, { system: '.*', queue: '.*', name: '.*' })));
    expect(exprs.length).toBeGreaterThan(20);
    const { tempDir } = await import('../harness/index.js');
    const tmp = await tempDir('dashboard-promql');
    const { writeFileSync } = await import('node:fs');
    const file = `${tmp.path}/exprs.yml`;
    writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:expr_${i}`, expr })) }] }));
    const r = await promtool(['check', 'rules', '--lint=none', file]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    await tmp.cleanup();
  });
});
