/**
 * The console (/ui) in a real browser: playwright-core driving Debian's Chromium against a real
 * sidecar process filled by `warden demo --storm` (a real Redis, the demo's BullMQ pipeline, the demo
 * policy, the default embedded store). A compliance reviewer logs in, finds a document's lineage by
 * correlation ID, opens a record's proof and sees it verified by the page itself (WebCrypto against the
 * key they pinned); a record altered on disk then fails in the page; the compliance token sees no
 * admin controls and the API refuses it; an admin forces a breaker open and closed from the page and
 * the BullMQ queue really pauses and resumes. Every read the page makes is audited as ledger.read.
 *
 * Screenshots of each view go to a temporary directory, or to WARDEN_CONSOLE_SCREENSHOTS (the README's
 * docs/console-*.png are made with WARDEN_CONSOLE_SCREENSHOTS=docs).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeEvent, type WardenEvent } from '../../core/event.js';
import { DEBIAN_PACKAGES, ensureBinary, httpGet, startRedis, tempDir, until, type RedisServer, type TempDir } from '../harness/index.js';
import { segmentFiles } from '../harness/ledger.js';
import { startSidecarProcess, type SidecarProcess } from '../harness/sidecar.js';

const COMPLIANCE = 'console-compliance-token-0123456789abcdef';
const ADMIN = 'console-admin-token-0123456789abcdef0123';
const INGEST = 'console-ingest-token-0123456789abcdef012';
const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const MODEL_QUEUE = 'demo-model-call';
const SCOPE = `bullmq.queue.${MODEL_QUEUE}`;

let redis: RedisServer;
let dir: TempDir;
let sidecar: SidecarProcess;
let browser: Browser;
let shots: string;
let dataDir: string;
let pem: string;
const pageErrors: string[] = [];

async function call(path: string, token: string, o: { method?: string; body?: string } = {}): Promise<{ status: number; body: string }> {
  const res = await fetch(`${sidecar.url}${path}`, { method: o.method ?? 'GET', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: o.body });
  return { status: res.status, body: await res.text() };
}
const lines = (body: string) => body.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as WardenEvent & { seq: number });

async function login(token: string): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (err) => { pageErrors.push(err.message); });
  await page.goto(`${sidecar.url}/ui`);
  await page.getByTestId('token').fill(token);
  await page.getByTestId('login').click();
  await page.getByTestId('who').waitFor();
  return page;
}

const shot = (page: Page, name: string, fullPage = false) => page.screenshot({ path: join(shots, `console-${name}.png`), fullPage });

beforeAll(async () => {
  const executablePath = await ensureBinary('chromium', DEBIAN_PACKAGES.chromium);
  [redis, dir] = await Promise.all([startRedis(), tempDir('warden-console')]);
  shots = process.env.WARDEN_CONSOLE_SCREENSHOTS ? resolve(process.env.WARDEN_CONSOLE_SCREENSHOTS) : join(dir.path, 'shots');
  mkdirSync(shots, { recursive: true });
  dataDir = join(dir.path, 'data');
  const config = join(dir.path, 'warden.yaml');
  writeFileSync(config, [
    'api:', '  ratePerMinute: 6000',
    'ledger:', '  checkpointEvery: 200', '  checkpointIntervalMs: 300', '  verifyIntervalMs: 1000', '  verifyFullEvery: 1',
    'clickhouse:', '  flushIntervalMs: 200',
    'policies:', `  file: ${resolve('grafana/policies/demo.yaml')}`, '  evaluateIntervalMs: 200',
    'ui:', '  traceUrlTemplate: "http://tempo.example:3200/trace/{trace_id}"', '',
  ].join('\n'));
  sidecar = await startSidecarProcess({
    redisUrl: redis.url, dataDir: dir.path, config,
    env: { WARDEN_API_TOKENS: `auditor:compliance:${COMPLIANCE},ops:admin:${ADMIN},approvals-app:ingest:${INGEST}` },
  });
  // `warden demo --storm` against the running sidecar: the demo's BullMQ pipeline, with a storm in the model call.
  await promisify(execFile)(process.execPath, [resolve('dist/agent/cli.js'), 'demo', '--storm', '--no-sidecar', '--duration', '9', '--rate', '8'], {
    env: { PATH: process.env.PATH, WARDEN_REDIS_URL: redis.url, WARDEN_DATA_DIR: join(dir.path, 'demo-data'), WARDEN_LOG_LEVEL: 'warn' }, timeout: 90_000,
  });
  // An approval service posts its decisions through HTTP ingest (claims, stored with received_via).
  const approvals = [
    makeEvent({ kind: 'approval.granted', source: 'bullmq', correlation_id: 'demo-doc-1', queue: MODEL_QUEUE, actor: 'claims-reviewer', reason: 'summary checked', model: 'gpt-sim', model_version: '2026-09-01' }),
    makeEvent({ kind: 'approval.denied', source: 'bullmq', correlation_id: 'demo-doc-2', queue: MODEL_QUEUE, actor: 'claims-reviewer', reason: 'hallucinated figure' }),
    makeEvent({ kind: 'approval.granted', source: 'bullmq', correlation_id: 'demo-doc-3', queue: MODEL_QUEUE, actor: 'second-reviewer', reason: 'ok' }),
  ];
  expect((await call('/v1/events', INGEST, { method: 'POST', body: JSON.stringify({ events: approvals }) })).status).toBe(200);
  // Durable, checkpointed and shipped to the store before the browser looks.
  await until(async () => lines((await call('/v1/ledger/lineage/demo-doc-1', COMPLIANCE)).body).some((e) => e.kind === 'approval.granted'), 30_000, 'the lineage of demo-doc-1 with its approval');
  await until(async () => (await call('/v1/ledger/export?correlation_id=demo-doc-1&kind=approval.granted', COMPLIANCE)).body.includes('claims-reviewer'), 30_000, 'the approval in the store');
  browser = await chromium.launch({ executablePath, args: CHROMIUM_FLAGS });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await sidecar?.proc.stop();
  await redis?.dispose();
  await dir?.cleanup();
});

describe('the console in a browser', () => {
  it('serves its files with their content types, a strict CSP and nosniff; nothing outside ui/', async () => {
    const index = await fetch(`${sidecar.url}/ui/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/^text\/html/);
    expect(index.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    expect(index.headers.get('x-content-type-options')).toBe('nosniff');
    expect((await fetch(`${sidecar.url}/ui/app.js`)).headers.get('content-type')).toMatch(/^text\/javascript/);
    expect((await fetch(`${sidecar.url}/ui/console.css`)).headers.get('content-type')).toMatch(/^text\/css/);
    for (const p of ['/ui/../package.json', '/ui/%2e%2e/package.json', '/ui/proof.d.ts', '/ui/nothing.js']) expect((await httpGet(`${sidecar.url}${p}`)).status, p).toBe(404);
  });

  it('compliance: logs in, finds a lineage by correlation ID, opens a record\'s proof and sees it verified in the page', async () => {
    const page = await login(COMPLIANCE);
    await expect.poll(() => page.getByTestId('who').textContent()).toMatch(/auditor\s*compliance/);
    // The Overview lists the demo's queues and breakers, and no admin control for this role.
    await page.locator('[data-testid=overview] td', { hasText: MODEL_QUEUE }).first().waitFor();
    await page.locator('[data-testid=breaker]').first().waitFor();
    expect(await page.getByTestId('admin-controls').count()).toBe(0);
    expect(await page.getByTestId('force-open').count()).toBe(0);

    await page.click('a[data-view=lineage]');
    await page.getByTestId('cid').fill('demo-doc-1');
    await page.getByTestId('find-lineage').click();
    await page.getByTestId('timeline-item').first().waitFor();
    const kinds = await page.getByTestId('timeline-item').evaluateAll((els) => els.map((e) => e.getAttribute('data-kind')));
    expect(kinds).toContain('job.completed');
    expect(kinds).toContain('approval.granted');
    const queues = await page.locator('[data-testid=lineage]').textContent();
    for (const q of ['demo-ingest', 'demo-embed', MODEL_QUEUE]) expect(queues).toContain(q);
    expect(await page.getByTestId('trace-link').first().getAttribute('href')).toMatch(/^http:\/\/tempo\.example:3200\/trace\/[0-9a-f]{32}$/);
    await shot(page, 'lineage');

    // The proof of the first record: pin the key (pasted, as a reviewer would), then the page verifies.
    pem = readFileSync(join(dataDir, 'keys', 'ledger-ed25519.pub.pem'), 'utf8');
    await page.getByTestId('proof-link').first().click();
    await page.getByTestId('pin-pem').fill(pem);
    await page.getByTestId('pin').click();
    await expect.poll(() => page.getByTestId('verdict').textContent(), { timeout: 20_000 }).toMatch(/^VERIFIED in this browser: record seq \d+/);
    expect(await page.getByTestId('checkpoint-signature').textContent()).toMatch(/valid: signed by the pinned key/);
    expect(await page.getByTestId('proof-verdict').textContent()).not.toMatch(/null|undefined/);
    await shot(page, 'integrity', true);
    await page.close();
  });

  it('compliance: the explorer searches the store (actor, kind, provenance), pages and exports the search', async () => {
    const page = await login(COMPLIANCE);
    await page.click('a[data-view=ledger]');
    await page.getByTestId('page-size').selectOption('20');
    await page.locator('[data-testid=search] select[name=kind]').selectOption('job.attempt_failed');
    await page.locator('[data-testid=search] input[name=queue]').fill(MODEL_QUEUE);
    await page.locator('[data-testid=search] button[type=submit]').click();
    const cells = (col: number) => page.locator(`[data-testid=results] tbody tr td:nth-child(${col})`).allTextContents();
    // Seq, time, kind, source, queue: every row of the page is a retry of the model call.
    const onlyRetries = async () => { const k = await cells(3); const q = await cells(5); return k.length === 20 && k.every((x) => x === 'job.attempt_failed') && q.every((x) => x === MODEL_QUEUE); };
    await expect.poll(onlyRetries).toBe(true);
    const firstPage = await cells(1);
    await page.getByTestId('next').click();
    await expect.poll(async () => (await cells(1))[0] !== firstPage[0]).toBe(true);
    const second = await cells(1);
    expect(Number(second[0])).toBeGreaterThan(Number(firstPage[firstPage.length - 1]));
    expect((await cells(3)).every((x) => x === 'job.attempt_failed')).toBe(true);
    await shot(page, 'ledger');

    // The reviewer's approvals, by actor and provenance (the ingest credential they came through).
    await page.locator('[data-testid=search] select[name=kind]').selectOption('');
    await page.locator('[data-testid=search] input[name=queue]').fill('');
    await page.locator('[data-testid=search] input[name=actor]').fill('claims-reviewer');
    await page.locator('[data-testid=search] input[name=received_via]').fill('http:approvals-app');
    await page.locator('[data-testid=search] button[type=submit]').click();
    await expect.poll(() => page.locator('[data-testid=results] tbody tr').count()).toBe(2);
    const download = page.waitForEvent('download');
    await page.getByRole('button', { name: 'Export CSV' }).click();
    const csv = await fs.readFile(await (await download).path(), 'utf8');
    const rows = csv.trim().split('\n');
    expect(rows).toHaveLength(3); // the header and the two approvals
    expect(rows.slice(1).every((r) => r.includes('claims-reviewer'))).toBe(true);

    await page.click('a[data-view=approvals]');
    await page.locator('[data-testid=approvals] td', { hasText: 'second-reviewer' }).first().waitFor();
    await page.getByTestId('unapproved').waitFor();
    await shot(page, 'approvals');
    await page.close();
  });

  it('every read the page made is in the ledger as ledger.read by the token\'s name', async () => {
    const reads = lines((await call('/v1/ledger/events?kind=ledger.read&actor=auditor', ADMIN)).body).map((e) => e.reason ?? '');
    expect(reads.some((r) => r.startsWith('GET /v1/ledger/lineage/demo-doc-1'))).toBe(true);
    expect(reads.some((r) => /^GET \/v1\/ledger\/proof\/[0-9A-Z]{26}$/.test(r))).toBe(true);
    expect(reads.some((r) => r.startsWith('GET /v1/ledger/checkpoint'))).toBe(true);
    expect(reads.some((r) => r.startsWith('GET /v1/ledger/export?') && r.includes('actor=claims-reviewer'))).toBe(true);
    expect(reads.some((r) => r.startsWith('GET /v1/ledger/approvals?'))).toBe(true);
  });

  it('a compliance token sees no admin controls, and the API refuses its attempt (403)', async () => {
    const page = await login(COMPLIANCE);
    await page.locator('[data-testid=breaker]').first().waitFor();
    expect(await page.locator('button.act').count()).toBe(0);
    const status = await page.evaluate(async (scope) => {
      const token = sessionStorage.getItem('warden.console.token');
      const res = await fetch(`/v1/breakers/${scope}/open?actor=sneaky`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      return res.status;
    }, SCOPE);
    expect(status).toBe(403);
    await page.close();
  });

  it('admin: forces a breaker open and closed from the page, and the BullMQ queue really pauses and resumes', async () => {
    const queue = new Queue(MODEL_QUEUE, { connection: { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null } });
    try {
      const page = await login(ADMIN);
      await page.getByTestId('admin-controls').waitFor();
      const row = page.locator(`[data-testid=breaker][data-key="${SCOPE}"]`);
      await row.waitFor();
      await page.getByTestId('reason').fill('incident 42: provider outage');
      await row.getByTestId('force-open').click();
      await until(() => queue.isPaused(), 15_000, 'the queue paused');
      await expect.poll(() => row.getByTestId('phase').textContent(), { timeout: 10_000 }).toBe('open');
      await shot(page, 'overview');
      await row.getByTestId('force-close').click();
      await until(async () => !(await queue.isPaused()), 15_000, 'the queue resumed');
      await expect.poll(() => row.getByTestId('phase').textContent(), { timeout: 10_000 }).toBe('closed');
      await row.getByTestId('force-auto').click();
      await expect.poll(() => page.getByTestId('force-status').textContent()).toMatch(/handed back to the policy/);
      await page.close();
    } finally {
      await queue.close();
    }
    // Recorded as today, with the actor, the token and the reason given.
    const decisions = lines((await call(`/v1/ledger/events?kind=policy.decision&actor=ops`, COMPLIANCE)).body);
    expect(decisions.some((e) => e.decision === 'force_open' && e.attrs['evidence.note'] === 'incident 42: provider outage' && e.attrs['evidence.via_token'] === 'ops')).toBe(true);
    expect(decisions.some((e) => e.decision === 'force_closed')).toBe(true);
  });

  it('a record altered on disk fails verification in the page', async () => {
    const recs = lines((await call('/v1/ledger/lineage/demo-doc-1', COMPLIANCE)).body);
    const victim = recs.find((e) => e.kind === 'job.completed' && e.queue === 'demo-ingest')!;
    // Same length, in place (the sidecar keeps appending to the segment): demo-ingest -> Demo-ingest.
    let done = false;
    for (const file of await segmentFiles(dataDir)) {
      const buf = await fs.readFile(file);
      const at = buf.indexOf(`"event_id":"${victim.event_id}"`);
      if (at < 0) continue;
      const start = buf.lastIndexOf(10, at) + 1;
      const q = buf.indexOf('"queue":"demo-ingest"', start);
      expect(q).toBeGreaterThan(start);
      expect(q).toBeLessThan(buf.indexOf(10, at));
      const fh = await fs.open(file, 'r+');
      await fh.write(Buffer.from('D'), 0, 1, q + '"queue":"'.length);
      await fh.close();
      done = true;
    }
    expect(done).toBe(true);
    const page = await login(COMPLIANCE);
    await page.evaluate((key) => localStorage.setItem('warden.console.pinnedKey', key), pem);
    await page.goto(`${sidecar.url}/ui/#/integrity/${victim.event_id}`);
    await expect.poll(() => page.getByTestId('verdict').textContent(), { timeout: 20_000 }).toMatch(/^FAILED \(inclusion\): .*not to the signed root/);
    await shot(page, 'integrity-tampered', true);
    await page.close();
  });

  it('no page raised a script error', () => {
    expect(pageErrors).toEqual([]);
  });
});
