// The Warden console: plain ES modules, no framework, no build step, nothing from a CDN. Everything it
// shows comes from the sidecar's /v1 API with the token the user enters once (kept in sessionStorage,
// never in a URL), so it has exactly the API's roles, and every ledger read it makes is audited by the
// API as `ledger.read` under the token's name. Untrusted text is only ever set as textContent.
import { checkpointSignatureProblem, importPublicKey, verifyInclusionProof } from './proof.js';

const TOKEN_KEY = 'warden.console.token';
const PIN_KEY = 'warden.console.pinnedKey';
const PAGE_SIZES = [20, 50, 200];
let pageSize = 50;

let info = null; // GET /v1/console
let timer = null; // the Overview's refresh
let lastOverview = null; // for throughput between two refreshes

// ---------------------------------------------------------------------------------------------------
// DOM and API helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const main = () => document.getElementById('main');
/** replaceChildren without the DOM's habit of writing null as the text "null". */
const put = (el, ...children) => el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
const token = () => sessionStorage.getItem(TOKEN_KEY);

class ApiFailure extends Error {
  constructor(status, message, body) { super(message); this.status = status; this.body = body; }
}

async function api(path, { method = 'GET', accept409 = false } = {}) {
  const res = await fetch(path, { method, headers: { authorization: `Bearer ${token()}` }, cache: 'no-store' });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  if (res.status === 401) { logout('The token was refused (401).'); throw new ApiFailure(401, 'unauthenticated', body); }
  if (!res.ok && !(accept409 && res.status === 409)) throw new ApiFailure(res.status, `${res.status}: ${body?.error ?? text}`, body);
  return body;
}

async function apiLines(path) {
  const text = await api(path);
  if (typeof text !== 'string') return Array.isArray(text) ? text : [text];
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

const qs = (params) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
};

const iso = (ms) => (ms === null || ms === undefined ? '' : new Date(Number(ms)).toISOString().replace('T', ' ').replace('Z', ''));
const secs = (s) => (s === null || s === undefined ? '—' : s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(s < 10 ? 2 : 0)} s`);
const num = (n) => (n === null || n === undefined ? '—' : Number.isInteger(n) ? String(n) : n.toFixed(2));

function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, err instanceof ApiFailure ? err.message : String(err?.message ?? err));
}

function table(rows, columns, cell = (r, c) => r[c]) {
  if (!rows.length) return h('p', { class: 'muted' }, 'Nothing matches.');
  return h('table', {},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h('td', {}, cell(r, c)))))));
}

function section(title, ...children) {
  return h('section', {}, h('h2', {}, title), ...children);
}

function download(name, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

const traceLink = (traceId) => (info?.traceUrlTemplate && traceId
  ? h('a', { href: info.traceUrlTemplate.replaceAll('{trace_id}', encodeURIComponent(traceId)), target: '_blank', rel: 'noopener noreferrer', 'data-testid': 'trace-link' }, 'trace')
  : null);
const proofLink = (eventId) => h('a', { href: `#/integrity/${encodeURIComponent(eventId)}`, 'data-testid': 'proof-link' }, 'proof');
const lineageLink = (cid) => (cid ? h('a', { href: `#/lineage/${encodeURIComponent(cid)}` }, cid) : '');

// ---------------------------------------------------------------------------------------------------
// Log in / out

function showLogin(message) {
  document.getElementById('nav').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('who').textContent = '';
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', placeholder: 'API token', required: true, 'data-testid': 'token' });
  const form = h('form', { class: 'login', onsubmit: async (e) => {
    e.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = '';
    await start();
  } },
  h('h1', {}, 'Warden console'),
  h('p', {}, 'Enter an API token (role compliance to read, admin to also act). It is kept in this browser tab only (sessionStorage).'),
  message ? h('p', { class: 'error', role: 'alert' }, message) : null,
  input, h('button', { type: 'submit', 'data-testid': 'login' }, 'Log in'));
  put(main(), form);
  input.focus();
}

function logout(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  info = null;
  clearInterval(timer);
  showLogin(message);
}

async function start() {
  if (!token()) return showLogin();
  try {
    info = await api('/v1/console');
  } catch (err) {
    if (err.status !== 401) logout(err.status === 403 ? 'This token has no read role (compliance or admin).' : err.message);
    return;
  }
  document.getElementById('nav').hidden = false;
  document.getElementById('logout').hidden = false;
  document.getElementById('who').replaceChildren(h('span', { 'data-testid': 'who' }, `${info.name} `, h('span', { class: `role role-${info.role}` }, info.role)));
  if (!location.hash || location.hash === '#/') location.hash = '#/overview';
  else route();
}

// ---------------------------------------------------------------------------------------------------
// Views

const VIEWS = { overview, ledger, lineage, integrity, approvals };

function route() {
  if (!info) return;
  clearInterval(timer);
  const [, name = 'overview', ...rest] = location.hash.split('/');
  const arg = rest.length ? decodeURIComponent(rest.join('/')) : '';
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === name);
  const view = VIEWS[name] ?? overview;
  put(main(), h('p', { class: 'muted' }, 'Loading…'));
  view(arg).catch((err) => put(main(), errorBox(err)));
}

// Overview (SRE): per system and queue, retries vs budget, breakers with evidence; admins force them.
async function overview() {
  const root = h('div', { 'data-testid': 'overview' });
  put(main(), root);
  const actor = h('input', { id: 'actor', value: info.name, size: 14, 'data-testid': 'actor' });
  const reason = h('input', { id: 'reason', placeholder: 'reason (recorded in the ledger)', size: 36, 'data-testid': 'reason' });
  const status = h('p', { class: 'muted', 'data-testid': 'force-status' });
  const refresh = async () => {
    let ov;
    let breakers = [];
    try {
      ov = await api('/v1/overview');
      if (info.breakers) breakers = (await api('/v1/breakers')).breakers;
    } catch (err) {
      put(root, errorBox(err));
      return;
    }
    const prev = lastOverview;
    lastOverview = ov;
    const rate = (q) => {
      const p = prev?.queues.find((x) => x.system === q.system && x.queue === q.queue);
      if (!p || ov.at <= prev.at) return '—';
      return `${(((q.completed + q.failed) - (p.completed + p.failed)) / ((ov.at - prev.at) / 1000)).toFixed(1)}/s`;
    };
    const budget = (scope) => ov.retry.find((r) => r.scope.endsWith(`.${scope}`) || r.scope === scope);
    const queues = table(ov.queues, ['system', 'queue', 'throughput', 'completed', 'failed', 'retries', 'retry ratio vs budget', 'wait p50 / p95', 'run p50 / p95', 'paused'], (q, c) => {
      switch (c) {
        case 'throughput': return rate(q);
        case 'retries': return num(q.attempt_failed);
        case 'retry ratio vs budget': {
          const b = budget(q.queue);
          return b ? h('span', { class: b.ratio > b.budget ? 'bad' : 'good' }, `${num(b.ratio)} / ${num(b.budget)}`) : num(q.retries_per_job);
        }
        case 'wait p50 / p95': return `${secs(q.wait.p50_s)} / ${secs(q.wait.p95_s)}`;
        case 'run p50 / p95': return `${secs(q.run.p50_s)} / ${secs(q.run.p95_s)}`;
        case 'paused': return q.paused === null ? '—' : q.paused ? h('span', { class: 'bad' }, 'paused') : 'no';
        default: return q[c];
      }
    });
    const retry = table(ov.retry, ['policy', 'scope', 'ratio', 'budget'], (r, c) => (c === 'ratio' ? h('span', { class: r.ratio > r.budget ? 'bad' : 'good' }, num(r.ratio)) : c === 'budget' ? num(r.budget) : r[c]));
    const force = (key, mode) => async () => {
      try {
        await api(`/v1/breakers/${encodeURIComponent(key)}/${mode}${qs({ actor: actor.value, reason: reason.value })}`, { method: 'POST' });
        status.textContent = `${mode === 'auto' ? 'handed back to the policy' : `forced ${mode === 'close' ? 'closed' : 'open'}`}: ${key}`;
      } catch (err) {
        status.textContent = err.message;
      }
      await refresh();
    };
    const evidence = (key, cell) => async () => {
      try {
        const ex = await api(`/v1/breakers/${encodeURIComponent(key)}/explain`);
        put(cell, h('pre', { class: 'evidence', 'data-testid': 'evidence' }, JSON.stringify(ex.policies, null, 1)));
      } catch (err) { put(cell, errorBox(err)); }
    };
    const rows = breakers.map((b) => {
      const evCell = h('td', { colspan: 7 });
      return [
        h('tr', { 'data-testid': 'breaker', 'data-key': b.key },
          h('td', {}, b.key), h('td', {}, `${b.policy}@${b.policy_version}`),
          h('td', {}, h('span', { class: `phase phase-${b.phase}`, 'data-testid': 'phase' }, b.phase)),
          h('td', {}, iso(b.since)), h('td', {}, b.forced ? `forced ${b.forced} by ${b.forced_by}` : 'policy'),
          h('td', {}, b.reason), h('td', {},
            h('button', { type: 'button', onclick: evidence(b.key, evCell) }, 'evidence'),
            info.can_act ? [
              h('button', { type: 'button', class: 'act', 'data-testid': 'force-open', onclick: force(b.key, 'open') }, 'force open'),
              h('button', { type: 'button', class: 'act', 'data-testid': 'force-close', onclick: force(b.key, 'close') }, 'force closed'),
              h('button', { type: 'button', class: 'act', 'data-testid': 'force-auto', onclick: force(b.key, 'auto') }, 'auto'),
            ] : null)),
        h('tr', { class: 'evidence-row' }, evCell),
      ];
    });
    const breakerTable = !info.breakers ? h('p', { class: 'muted' }, 'No policies are configured on this sidecar (policies.file).')
      : rows.length ? h('table', {}, h('thead', {}, h('tr', {}, ['scope', 'policy', 'state', 'since', 'held by', 'reason', ''].map((c) => h('th', {}, c)))), h('tbody', {}, rows))
        : h('p', { class: 'muted' }, 'No breaker has seen events yet.');
    const sv = ov.self_verify;
    put(root, 
      h('p', { class: 'muted' }, `Sidecar metrics at ${iso(ov.at)} (refreshed every 5 s). Ledger self-verify: `,
        h('span', { class: sv.ok === false ? 'bad' : sv.ok ? 'good' : 'muted' }, sv.ok === null ? 'not run yet' : sv.ok ? 'ok' : 'FAILED'), sv.last_run_ms ? ` at ${iso(sv.last_run_ms)}` : ''),
      section('Queues', queues),
      section('Retries against budget', retry),
      section('Breakers',
        info.can_act ? h('div', { class: 'admin', 'data-testid': 'admin-controls' }, h('label', {}, 'actor ', actor), h('label', {}, 'reason ', reason), status) : null,
        breakerTable),
    );
  };
  await refresh();
  timer = setInterval(() => { if (!document.activeElement?.closest?.('.admin')) void refresh(); }, 5000);
}

// Ledger explorer (compliance): search, page, export.
let search = {};
async function ledger() {
  const kinds = h('select', { name: 'kind' }, h('option', { value: '' }, 'any kind'), info.kinds.map((k) => h('option', { value: k }, k)));
  const sources = h('select', { name: 'source' }, h('option', { value: '' }, 'any source'), info.sources.map((k) => h('option', { value: k }, k)));
  const field = (name, label, attrs = {}) => h('label', {}, label, h('input', { name, value: search[name] ?? '', ...attrs }));
  kinds.value = search.kind ?? '';
  sources.value = search.source ?? '';
  const results = h('div', { 'data-testid': 'results' });
  const pages = [];
  const from = info.store ? '/v1/ledger/export' : '/v1/ledger/events';
  const params = () => {
    const p = { ...search };
    for (const k of ['since', 'until']) if (p[k]) p[k] = new Date(p[k]).toISOString();
    return p;
  };
  const load = async (afterSeq) => {
    try {
      const recs = await apiLines(`${from}${qs({ ...params(), limit: pageSize, after_seq: afterSeq || undefined, format: 'jsonl' })}`);
      const last = recs.length ? recs[recs.length - 1].seq : afterSeq;
      put(results, 
        h('p', { class: 'muted' }, `${recs.length} record(s) from the ${info.store ? 'store' : 'spool'}, after seq ${afterSeq || 0}`),
        table(recs, ['seq', 'time', 'kind', 'source', 'queue', 'job / workflow', 'correlation', 'actor', 'model', 'decision', 'via', ''], (r, c) => {
          switch (c) {
            case 'time': return iso(r.ts);
            case 'job / workflow': return r.job_id ?? r.workflow_id ?? '';
            case 'correlation': return lineageLink(r.correlation_id);
            case 'model': return r.model_version ? `${r.model ?? ''}@${r.model_version}` : r.model ?? '';
            case 'via': return r.attrs?.received_via ?? '';
            case '': return proofLink(r.event_id);
            default: return r[c] ?? '';
          }
        }),
        h('div', { class: 'pager' },
          h('button', { type: 'button', disabled: pages.length === 0, onclick: () => load(pages.pop()) }, '← previous'),
          h('button', { type: 'button', disabled: recs.length < pageSize, 'data-testid': 'next', onclick: () => { pages.push(afterSeq); void load(last); } }, 'next →')));
    } catch (err) { put(results, errorBox(err)); }
  };
  const exportAs = (format) => async () => {
    try {
      const text = await api(`${from}${qs({ ...params(), format })}`);
      download(`warden-ledger.${format}`, typeof text === 'string' ? text : JSON.stringify(text), format === 'csv' ? 'text/csv' : 'application/x-ndjson');
    } catch (err) { put(results, errorBox(err)); }
  };
  const form = h('form', { class: 'search', 'data-testid': 'search', onsubmit: (e) => {
    e.preventDefault();
    search = Object.fromEntries([...new FormData(form).entries()].filter(([, v]) => v !== ''));
    pages.length = 0;
    void load(0);
  } },
  field('correlation_id', 'correlation ID'), field('job_id', 'job / task ID'), field('workflow_id', 'workflow ID'), field('queue', 'queue'),
  h('label', {}, 'kind', kinds), field('actor', 'actor'), field('model_version', 'model version'),
  field('since', 'since', { type: 'datetime-local' }), field('until', 'until', { type: 'datetime-local' }),
  h('label', {}, 'source', sources), field('received_via', 'received via', { placeholder: 'http:<token>, nats:<stream>, none' }),
  // No name: the page size is not a filter (FormData skips it).
  h('label', {}, 'per page', h('select', { 'data-testid': 'page-size', onchange: (e) => { pageSize = Number(e.target.value); } },
    PAGE_SIZES.map((n) => h('option', { value: n, selected: n === pageSize }, n)))),
  h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Search'),
    h('button', { type: 'button', onclick: exportAs('jsonl') }, 'Export JSONL'), h('button', { type: 'button', onclick: exportAs('csv') }, 'Export CSV')));
  put(main(), h('div', { 'data-testid': 'ledger' }, section('Ledger explorer', form, results)));
  await load(0);
}

// Lineage: the ordered story of one correlation ID across systems.
async function lineage(cid) {
  const input = h('input', { name: 'cid', value: cid, placeholder: 'correlation ID, e.g. demo-doc-1', size: 40, 'data-testid': 'cid' });
  const form = h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); location.hash = `#/lineage/${encodeURIComponent(input.value.trim())}`; } },
    input, h('button', { type: 'submit', 'data-testid': 'find-lineage' }, 'Show lineage'));
  const root = h('div', { 'data-testid': 'lineage' }, section('Lineage', form));
  put(main(), root);
  if (!cid) return;
  const recs = await apiLines(`/v1/ledger/lineage/${encodeURIComponent(cid)}?format=jsonl`);
  if (!recs.length) { root.append(h('p', { class: 'muted' }, `No record has correlation ID ${cid}.`)); return; }
  const t0 = recs[0].ts;
  const count = (f) => recs.filter(f).length;
  const systems = [...new Set(recs.map((r) => r.source))];
  const versions = [...new Set(recs.filter((r) => r.model_version).map((r) => `${r.model ?? ''}@${r.model_version}`))];
  const traces = [...new Set(recs.map((r) => r.trace_id).filter(Boolean))];
  root.append(
    h('dl', { class: 'summary' },
      h('dt', {}, 'systems'), h('dd', {}, systems.join(', ')),
      h('dt', {}, 'records'), h('dd', {}, recs.length),
      h('dt', {}, 'attempts started'), h('dd', {}, count((r) => /\.started$/.test(r.kind) && !r.kind.startsWith('workflow'))),
      h('dt', {}, 'retries (attempts failed)'), h('dd', {}, count((r) => r.kind.endsWith('attempt_failed'))),
      h('dt', {}, 'approvals'), h('dd', {}, count((r) => r.kind.startsWith('approval.'))),
      h('dt', {}, 'policy decisions'), h('dd', {}, count((r) => r.kind === 'policy.decision')),
      h('dt', {}, 'model versions'), h('dd', {}, versions.join(', ') || '—'),
      h('dt', {}, 'trace'), h('dd', {}, traces.length ? traces.map((t) => [h('code', {}, t), ' ', traceLink(t)]) : '—')),
    h('ol', { class: 'timeline' }, recs.map((r) => h('li', { class: `ev src-${r.source} kind-${r.kind.replace('.', '-')}`, 'data-testid': 'timeline-item', 'data-kind': r.kind },
      h('span', { class: 'at' }, `+${((r.ts - t0) / 1000).toFixed(3)} s`),
      h('span', { class: 'sys' }, r.source),
      h('strong', {}, r.kind),
      h('span', {}, [r.queue, r.job_name, r.job_id && `job ${r.job_id}`, r.workflow_id && `workflow ${r.workflow_id}`, r.activity_type].filter(Boolean).join(' · ')),
      r.attempt ? h('span', { class: 'tag' }, `attempt ${r.attempt}`) : null,
      r.model_version ? h('span', { class: 'tag' }, `${r.model ?? 'model'}@${r.model_version}`) : null,
      r.policy ? h('span', { class: 'tag' }, `${r.policy}@${r.policy_version ?? ''}`) : null,
      r.actor ? h('span', { class: 'tag' }, `by ${r.actor}`) : null,
      r.decision ? h('span', { class: 'tag' }, r.decision) : null,
      r.error ? h('span', { class: 'bad' }, r.error) : null,
      r.duration_ms !== null && r.duration_ms !== undefined ? h('span', { class: 'muted' }, `${Math.round(r.duration_ms)} ms`) : null,
      h('span', { class: 'links' }, proofLink(r.event_id), ' ', traceLink(r.trace_id)),
      h('span', { class: 'muted small' }, `${iso(r.ts)} · seq ${r.seq}`)))),
  );
}

// Integrity: the pinned key, the latest signed checkpoint, self-verify, and proofs checked here.
async function pinnedKey() {
  const pem = localStorage.getItem(PIN_KEY);
  return pem ? importPublicKey(pem) : null;
}

async function integrity(eventId) {
  const pemBox = h('textarea', { rows: 4, cols: 70, placeholder: '-----BEGIN PUBLIC KEY-----\n(the ledger key, from <dataDir>/keys/ledger-ed25519.pub.pem, obtained out of band)\n-----END PUBLIC KEY-----', 'data-testid': 'pin-pem' });
  const file = h('input', { type: 'file', accept: '.pem,.pub,text/plain', onchange: async () => { if (file.files[0]) pemBox.value = await file.files[0].text(); } });
  const pinState = h('p', { 'data-testid': 'pin-state' });
  const cpBox = h('div', { 'data-testid': 'checkpoint' });
  const verdict = h('div', { 'data-testid': 'proof-verdict' });
  const idInput = h('input', { name: 'event_id', value: eventId, placeholder: 'event_id (ULID)', size: 30, 'data-testid': 'event-id' });

  const showPin = async () => {
    try {
      const k = await pinnedKey();
      put(pinState, k ? h('span', {}, 'Pinned key id ', h('code', { 'data-testid': 'pinned-id' }, k.keyId), ' (kept in this browser)') : h('span', { class: 'bad' }, 'No key pinned: paste or load the ledger\'s public key to verify.'));
    } catch (err) { put(pinState, errorBox(err)); }
  };
  const pin = async () => {
    try {
      await importPublicKey(pemBox.value); // refuse what is not an Ed25519 SPKI key before keeping it
      localStorage.setItem(PIN_KEY, pemBox.value.trim());
      pemBox.value = '';
      await showPin();
      await showCheckpoint();
      if (idInput.value) await prove();
    } catch (err) { put(pinState, errorBox(err)); }
  };
  const showCheckpoint = async () => {
    try {
      const doc = await api('/v1/ledger/checkpoint');
      const cp = doc.checkpoint;
      const k = await pinnedKey();
      const sig = cp && k ? await checkpointSignatureProblem(cp, k) : null;
      const sv = doc.self_verify;
      put(cpBox, 
        cp ? h('dl', { class: 'summary' },
          h('dt', {}, 'size'), h('dd', {}, cp.size), h('dt', {}, 'root'), h('dd', {}, h('code', {}, cp.root)),
          h('dt', {}, 'signed'), h('dd', {}, iso(cp.ts)), h('dt', {}, 'key id'), h('dd', {}, h('code', {}, cp.key_id)),
          h('dt', {}, 'signature (checked here)'), h('dd', { 'data-testid': 'checkpoint-signature' }, !k ? 'pin a key to check' : sig ? h('span', { class: 'bad' }, sig) : h('span', { class: 'good' }, 'valid: signed by the pinned key')),
          h('dt', {}, 'checkpoints'), h('dd', {}, doc.checkpoints))
          : h('p', { class: 'muted' }, 'No signed checkpoint yet.'),
        h('p', { 'data-testid': 'self-verify' }, 'Sidecar self-verify (the server\'s own word): ', !sv ? 'not run yet'
          : h('span', { class: sv.ok ? 'good' : 'bad' }, `${sv.ok ? 'ok' : 'FAILED'} (${sv.mode}, ${sv.records} records, at ${iso(sv.at)})${sv.problem ? `: ${sv.problem}` : ''}`)));
    } catch (err) { put(cpBox, errorBox(err)); }
  };
  const prove = async () => {
    const id = idInput.value.trim();
    if (!id) return;
    put(verdict, h('p', { class: 'muted' }, 'Fetching the proof…'));
    try {
      const k = await pinnedKey();
      const doc = await api(`/v1/ledger/proof/${encodeURIComponent(id)}`, { accept409: true });
      // A 409 without a document: the record is newer than the latest checkpoint (the message says so).
      if (!doc?.proof) throw new ApiFailure(409, `409: ${doc?.error ?? 'no proof document'}`, doc);
      if (!k) { put(verdict, h('p', { class: 'bad' }, 'Pin the ledger\'s public key first: a proof is only as good as the key it is checked against.')); return; }
      const v = await verifyInclusionProof(doc.proof, k);
      let rec = null;
      try { rec = JSON.parse(doc.proof.record).event; } catch { /* shown as failing below */ }
      put(verdict, 
        h('p', { class: `verdict ${v.ok ? 'ok' : 'fail'}`, 'data-testid': 'verdict' }, v.ok ? `VERIFIED in this browser: record seq ${v.seq} is in the ledger signed by key ${k.keyId}, unaltered.` : `FAILED (${v.step}): ${v.message}`),
        h('ul', { class: 'steps' }, v.steps.map((s) => h('li', {}, s))),
        doc.spool_reproduces_checkpoint ? null : h('p', { class: 'bad' }, 'The server also reports that its spool no longer reproduces the signed checkpoint.'),
        rec ? h('p', {}, `${rec.kind} · ${rec.source} · ${rec.queue ?? ''} ${rec.job_id ?? rec.workflow_id ?? ''} · `, lineageLink(rec.correlation_id)) : null,
        h('button', { type: 'button', onclick: () => download(`proof-${id}.json`, `${JSON.stringify(doc.proof, null, 2)}\n`, 'application/json') }, 'Download proof (check offline: warden ledger verify-proof)'));
    } catch (err) { put(verdict, errorBox(err)); }
  };

  put(main(), h('div', { 'data-testid': 'integrity' },
    section('Pinned public key', h('p', { class: 'muted' }, 'Proofs and checkpoints are checked in this browser (WebCrypto Ed25519 and SHA-256) against this key, not the server\'s word.'),
      pinState, pemBox, h('div', {}, file, h('button', { type: 'button', onclick: pin, 'data-testid': 'pin' }, 'Pin key'))),
    section('Latest signed checkpoint', cpBox),
    section('Inclusion proof of a record', h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); location.hash = `#/integrity/${encodeURIComponent(idInput.value.trim())}`; } },
      idInput, h('button', { type: 'submit', 'data-testid': 'verify' }, 'Get proof and verify')), verdict)));
  await showPin();
  await showCheckpoint();
  await prove();
}

// Approvals and versions (from the store).
async function approvals() {
  const since = h('input', { name: 'since', value: '7d', size: 8 });
  const out = h('div');
  const load = async () => {
    if (!info.store) { put(out, h('p', { class: 'muted' }, 'These reads query the ledger store (clickhouse.mode off here).')); return; }
    const p = qs({ since: since.value });
    try {
      const [perDay, recent, versions, unapproved] = await Promise.all([
        api(`/v1/ledger/approvals${p}${p ? '&' : '?'}per_day=1`), api(`/v1/ledger/approvals${p}${p ? '&' : '?'}limit=200`),
        api(`/v1/ledger/versions${p}`), api(`/v1/ledger/unapproved${p}`),
      ]);
      const cols = (rows) => (rows.length ? Object.keys(rows[0]) : ['—']);
      const fmt = (r, c) => (c === 'ts_ms' ? iso(r[c]) : c === 'correlation_id' ? lineageLink(r[c]) : r[c] ?? '');
      put(out, 
        section('Approvals per day and actor', table(perDay, cols(perDay))),
        section('Approvals and denials', table(recent, cols(recent), fmt)),
        section('Model and policy versions per work', table(versions, cols(versions), fmt)),
        section('Work completed without a required approval', h('div', { 'data-testid': 'unapproved' }, table(unapproved, cols(unapproved), fmt))));
    } catch (err) { put(out, errorBox(err)); }
  };
  put(main(), h('div', { 'data-testid': 'approvals' },
    h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); void load(); } }, h('label', {}, 'since ', since), h('button', { type: 'submit' }, 'Show')), out));
  await load();
}

window.addEventListener('hashchange', route);
document.getElementById('logout').addEventListener('click', () => logout());
void start();
