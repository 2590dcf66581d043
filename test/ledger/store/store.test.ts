/**
 * One suite, run against both stores on real engines: the server store against Debian's ClickHouse
 * 18.16 (started by the harness on free ports) and the embedded store against chdb's 26.x engine in a
 * temp dir. Then what only one of them has (outages, one chdb directory per process), and the two
 * compared on the same data.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson, type WardenEvent } from '../../../core/event.js';
import {
  CorruptRowError, EmbeddedStore, LEDGER_SELECT, LEDGER_TABLE, MIGRATIONS, StoreClosedError, StoreQueryError,
  StoreUnavailableError, clusterSchema, lineageSql, migrate, openStore, queueRangeSql, rowToRecord, seqRangeSql, sql,
  sqlNumber, sqlString, type LedgerStore,
} from '../../../ledger/store/index.js';
import type { LedgerRecord } from '../../../ledger/spool/record.js';
import { startClickHouse, type ClickHouseServer } from '../../harness/index.js';
import { HOSTILE, chain, event, rebuiltHash, waitForMutations } from './helpers.js';

const execFileAsync = promisify(execFile);

let server: ClickHouseServer;
let serverStore: LedgerStore;
let embeddedStore: LedgerStore;
let dataDir: string;

beforeAll(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'warden-store-'));
  [server, embeddedStore] = await Promise.all([startClickHouse(), openStore({ dataDir })]);
  serverStore = await openStore({ url: server.url, dataDir, database: 'warden_test' });
  await Promise.all([serverStore.migrate(), embeddedStore.migrate()]);
});

afterAll(async () => {
  await Promise.allSettled([serverStore?.close(), embeddedStore?.close()]);
  await server?.dispose();
  await fs.rm(dataDir, { recursive: true, force: true });
});

/** Each test writes its own seq range, so the tests share one table per store without interfering. */
let nextSeq = 1;
function records(events: WardenEvent[]): LedgerRecord[] {
  const out = chain(events, nextSeq);
  nextSeq += events.length + 10;
  return out;
}

async function readSeqs(store: LedgerStore, from: number, to: number): Promise<LedgerRecord[]> {
  return (await store.query(seqRangeSql(from, to))).map(rowToRecord);
}

/** Events at the edges of what the columns hold; each must come back with the same hash. */
function edgeEvents(): WardenEvent[] {
  const base = event();
  const noAttrs = event() as Record<string, unknown>;
  delete noAttrs.attrs;
  delete noAttrs.span_id;
  delete noAttrs.input;
  return [
    base,
    event({ correlation_id: null, queue: null, trace_id: null, span_id: null, attempt: null, duration_ms: null, input: null, attrs: {} }),
    noAttrs as WardenEvent,
    event({ duration_ms: 0.1, attempt: 0, input: { a: 0.1, b: 1e21, c: -0, d: 5e-324, e: 1.7976931348623157e308, f: -1e-7 } }),
    event({ duration_ms: -0, attempt: -0 }),
    event({ duration_ms: 1e21 }),
    event({ duration_ms: 5e-324 }), // subnormal: 18.16 would read 0, so it goes to spill
    event({ duration_ms: 1.7976931348623157e308, attempt: Number.MAX_SAFE_INTEGER }),
    event({ attempt: 1.5 as number }), // not an integer: spill
    event({ ts: 0 }),
    event({ ts: 999 }),
    event({ ts: Date.UTC(2106, 0, 1) - 1 }),
    event({ ts: Date.UTC(2106, 0, 1) }), // past what DateTime holds on 18.16: spill
    event({ ts: 1.5 }),
    event({ queue: '', correlation_id: '', job_id: '' }),
    event({ job_id: 'lone \ud800 surrogate', queue: 'q\udc00', input: { s: '\udfff' }, attrs: { k: '\ud83d' } }),
    event({ input: 'x'.repeat(1024 * 1024), attrs: { big: 'é'.repeat(100_000) } }),
    event({ input: [1, 'two', { three: [true, false, null] }], attrs: { a: 1, b: true, c: null, d: 'x' } }),
    withOwnFields(event(), { extra_field: { nested: ['kept'] }, __proto__: 'odd' }),
    ...Object.values(HOSTILE).map((s) => event({ correlation_id: s, job_id: s, reason: s, input: { s }, attrs: { s } })),
  ];
}

/** Adds own enumerable properties, `__proto__` included (as JSON.parse would make it). */
function withOwnFields(ev: WardenEvent, fields: Record<string, unknown>): WardenEvent {
  for (const [k, v] of Object.entries(fields)) Object.defineProperty(ev, k, { value: v, enumerable: true, writable: true, configurable: true });
  return ev;
}

const ENGINES = [
  { name: 'server store on ClickHouse 18.16', get: () => serverStore },
  { name: 'embedded store on chdb', get: () => embeddedStore },
];

describe.each(ENGINES)('$name', ({ get }) => {
  it('migrates, and migrating again changes nothing', async () => {
    const store = get();
    const first = await store.query<{ version: number; checksum: string }>('SELECT version, checksum FROM warden_migrations ORDER BY version');
    const again = await migrate(store);
    expect(again.applied).toEqual([]);
    await store.migrate();
    const second = await store.query('SELECT version, checksum FROM warden_migrations ORDER BY version');
    expect(second).toEqual(first);
    const expected = MIGRATIONS.filter((m) => !m.requires || again.capabilities[m.requires]).map((m) => m.version);
    expect(first.map((r) => r.version)).toEqual(expected);
    expect(again.skipped).toEqual(again.capabilities.codecs ? [] : [4, 8]);
    const tables = await store.query<{ name: string }>("SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name");
    expect(tables.map((t) => t.name)).toEqual(['warden_checkpoints', 'warden_ledger', 'warden_lineage', 'warden_lineage_mv', 'warden_migrations']);
    const engines = await store.query<{ engine: string }>(`SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = '${LEDGER_TABLE}'`);
    expect(engines).toEqual([{ engine: 'MergeTree' }]);
  });

  it('inserts records and reads them back with the same hashes, edge values included', async () => {
    const store = get();
    const recs = records(edgeEvents());
    await store.insert(recs);
    const back = await readSeqs(store, recs[0].seq, recs.at(-1)!.seq);
    expect(back.map((r) => r.seq)).toEqual(recs.map((r) => r.seq));
    for (let i = 0; i < recs.length; i++) {
      expect(rebuiltHash(back[i]), `seq ${recs[i].seq}`).toBe(recs[i].hash);
      expect(back[i].hash).toBe(recs[i].hash);
      expect(back[i].prev).toBe(recs[i].prev);
      expect(canonicalJson(back[i].event)).toBe(canonicalJson(recs[i].event));
    }
  });

  it('stores hostile strings byte-exact, and a WHERE on one finds exactly its row', async () => {
    const store = get();
    const hostile = { ...HOSTILE, oneMegabyte: `${"'\\\u0000\n".repeat(1000)}${'é'.repeat(512 * 1024)}` };
    const recs = records(Object.values(hostile).map((s) => event({ correlation_id: s, queue: s, input: { s } })));
    await store.insert(recs);
    const entries = Object.entries(hostile);
    for (let i = 0; i < entries.length; i++) {
      const [name, s] = entries[i];
      const rows = await store.query<{ seq: string; hex: string; ilen: string }>(
        sql`SELECT seq, hex(correlation_id) AS hex, length(input) AS ilen FROM warden_ledger WHERE correlation_id = ${s} AND seq >= ${recs[0].seq}`,
      );
      expect(rows.map((r) => Number(r.seq)), name).toEqual([recs[i].seq]);
      expect(rows[0].hex, name).toBe(Buffer.from(s, 'utf8').toString('hex').toUpperCase());
      expect(Number(rows[0].ilen)).toBe(Buffer.byteLength(canonicalJson({ s }), 'utf8'));
      // The same value through the lineage read and the queue read.
      const lineage = (await store.query(lineageSql(s))).map(rowToRecord).filter((r) => r.seq >= recs[0].seq);
      expect(lineage.map((r) => r.seq), name).toEqual([recs[i].seq]);
      const byQueue = (await store.query(queueRangeSql(s, recs[i].event.ts, recs[i].event.ts + 1))).map(rowToRecord);
      expect(byQueue.map((r) => r.hash), name).toEqual([recs[i].hash]);
    }
    const [{ n }] = await store.query<{ n: string }>(`SELECT count() AS n FROM ${LEDGER_TABLE}`);
    expect(Number(n)).toBeGreaterThan(recs.length);
  });

  it('answers the two common reads: one correlation ID in seq order, one queue over a time range', async () => {
    const store = get();
    const events = Array.from({ length: 60 }, (_, i) =>
      event({ correlation_id: `reads-${i % 3}`, queue: i % 2 ? 'reads-a' : 'reads-b', ts: 1_800_000_000_000 + i * 60_000 }),
    );
    const recs = records(events);
    // Out of order, in two inserts: the reads must not depend on insertion order.
    await store.insert(recs.slice(30));
    await store.insert(recs.slice(0, 30));
    const lineage = (await store.query(lineageSql('reads-1'))).map(rowToRecord);
    expect(lineage.map((r) => r.seq)).toEqual(recs.filter((_, i) => i % 3 === 1).map((r) => r.seq));
    const from = 1_800_000_000_000 + 10 * 60_000;
    const to = 1_800_000_000_000 + 20 * 60_000;
    const range = (await store.query(queueRangeSql('reads-a', from, to))).map(rowToRecord);
    expect(range.map((r) => r.seq)).toEqual(recs.filter((r, i) => i % 2 === 1 && r.event.ts >= from && r.event.ts < to).map((r) => r.seq));
  });

  it('an ALTER TABLE ... UPDATE of any column changes the rebuilt record or makes the row unreadable', async () => {
    const store = get();
    const marker = `tamper-${Math.random().toString(36).slice(2)}`;
    const recs = records(Array.from({ length: 16 }, () => event({ correlation_id: marker, attrs: { k: 'v' } })));
    await store.insert(recs);
    const s = (i: number) => recs[i].seq;
    // One mutation changes a different column in each row (each assignment touches only its own seq).
    const changes: [string, string][] = [
      ['input', `'{"to":"attacker@example.com"}'`],
      ['attempt', 'attempt + 1'],
      ['job_id', `'job-forged'`],
      ['hash', `'${'f'.repeat(64)}'`],
      ['prev', `'${'e'.repeat(64)}'`],
      ['ts_ms', 'ts_ms + 1'],
      ['duration_ms', '-0.'],
      ['attrs', `'{"k": "v"}'`], // the same JSON value, not canonical
      ['spill', `'{"absent":["model"]}'`],
      ['correlation_id', 'NULL'],
      ['kind', `'job.failed'`],
      ['model', 'NULL'],
      ['input_digest', `'${'0'.repeat(64)}'`],
      ['event_id', 'lower(event_id)'],
    ];
    const assignments = changes.map(([col, expr], i) => `${col} = if(seq = ${s(i)}, ${expr}, ${col})`).join(', ');
    await store.exec(`ALTER TABLE ${LEDGER_TABLE} UPDATE ${assignments} WHERE seq >= ${s(0)} AND seq <= ${s(changes.length - 1)}`);
    await waitForMutations(store, LEDGER_TABLE);
    const rows = await store.query(seqRangeSql(s(0), recs.at(-1)!.seq));
    expect(rows).toHaveLength(recs.length);
    for (let i = 0; i < recs.length; i++) {
      let outcome: string;
      try {
        const rebuilt = rowToRecord(rows[i]);
        outcome = rebuiltHash(rebuilt) === recs[i].hash && rebuilt.hash === recs[i].hash && rebuilt.prev === recs[i].prev ? 'same' : 'changed';
      } catch (err) {
        expect(err).toBeInstanceOf(CorruptRowError);
        outcome = 'corrupt';
      }
      if (i < changes.length) expect(outcome, `after updating ${changes[i][0]}`).not.toBe('same');
      else expect(outcome, `untouched row ${i}`).toBe('same');
    }
    // Sort and partition key columns cannot be updated at all.
    for (const col of ['queue', 'ts', 'seq']) {
      await expect(store.exec(`ALTER TABLE ${LEDGER_TABLE} UPDATE ${col} = ${col} WHERE seq = ${s(15)}`)).rejects.toBeInstanceOf(StoreQueryError);
    }
  });

  it('reads every string literal sql.ts writes as exactly that string, and every number as that number', async () => {
    const store = get();
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const strings = [...Object.values(HOSTILE), Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(i)).join('')];
    for (let i = 0; i < 200; i++) {
      let s = '';
      for (let j = Math.floor(rand() * 20); j > 0; j--) {
        const r = rand();
        if (r < 0.3) s += String.fromCharCode(Math.floor(rand() * 128));
        else if (r < 0.5) s += "'\\\n\u0000\r"[Math.floor(rand() * 5)];
        else {
          const cp = 0x80 + Math.floor(rand() * 0x10ff00);
          s += cp >= 0xd800 && cp <= 0xdfff ? 'x' : String.fromCodePoint(cp);
        }
      }
      strings.push(s);
    }
    const numbers = [0, 1, -1, 0.1, 1e21, -1.5e-7, 1.7976931348623157e308, 2.2250738585072014e-308, 33 / 7, Number.MAX_SAFE_INTEGER, 4.714285714285714];
    const select = [
      ...strings.map((s, i) => `hex(${sqlString(s)}) AS s${i}`),
      ...numbers.map((n, i) => `hex(reinterpretAsString(toFloat64(${sqlNumber(n)}))) AS n${i}`),
    ].join(', ');
    const [row] = await store.query<Record<string, string>>(`SELECT ${select}`);
    strings.forEach((s, i) => expect(row[`s${i}`], JSON.stringify(s)).toBe(Buffer.from(s, 'utf8').toString('hex').toUpperCase()));
    numbers.forEach((n, i) => {
      const b = Buffer.alloc(8);
      b.writeDoubleLE(n);
      // reinterpretAsString drops trailing zero bytes.
      expect(row[`n${i}`], String(n)).toBe(b.toString('hex').toUpperCase().replace(/(00)+$/, ''));
    });
  });

  it('names its errors: a bad statement, a NUL in SQL text, a closed store', async () => {
    const store = get();
    const err = await store.query('SELEC 1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreQueryError);
    expect((err as StoreQueryError).sqlHead).toBe('SELEC 1');
    expect((err as StoreQueryError).clickhouseCode).toBe(62);
    const missing = await store.query('SELECT * FROM no_such_table').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(StoreQueryError);
    expect((missing as StoreQueryError).clickhouseCode).toBe(60);
    await expect(store.exec("SELECT 'a\u0000b'")).rejects.toThrow(/NUL/);
    // A failed statement leaves the store usable.
    expect(await store.ping()).toBe(true);
  });

  it('inserts a 10 000-row batch at a measured rate', async () => {
    const store = get();
    const recs = records(Array.from({ length: 10_000 }, (_, i) => event({ correlation_id: `rate-${i % 500}` })));
    const t0 = performance.now();
    await store.insert(recs);
    const ms = performance.now() - t0;
    const [{ n }] = await store.query<{ n: string }>(`SELECT count() AS n FROM ${LEDGER_TABLE} WHERE seq >= ${recs[0].seq} AND seq <= ${recs.at(-1)!.seq}`);
    expect(Number(n)).toBe(10_000);
    console.log(`${store.kind}: 10 000 rows inserted in ${ms.toFixed(0)} ms = ${Math.round(10_000 / (ms / 1000))} rows/s`);
  });
});

describe('both stores on the same data', () => {
  it('give the same rows for the same queries', async () => {
    const recs = records(
      Array.from({ length: 300 }, (_, i) =>
        event({
          correlation_id: `same-${i % 7}`,
          queue: `same-q${i % 3}`,
          attempt: i % 4,
          duration_ms: i % 5 === 0 ? null : i / 7,
          reason: Object.values(HOSTILE)[i % Object.keys(HOSTILE).length],
        }),
      ),
    );
    await Promise.all([serverStore.insert(recs), embeddedStore.insert(recs)]);
    const lo = recs[0].seq;
    const hi = recs.at(-1)!.seq;
    const queries = [
      seqRangeSql(lo, hi),
      lineageSql('same-3'),
      queueRangeSql('same-q1', recs[0].event.ts, recs[150].event.ts),
      `SELECT queue, count() AS n, sum(attempt) AS attempts, min(ts) AS first, max(ts_ms) AS last, round(avg(duration_ms), 6) AS avg_ms
         FROM ${LEDGER_TABLE} WHERE seq BETWEEN ${lo} AND ${hi} GROUP BY queue ORDER BY queue`,
      `SELECT correlation_id, arraySort(groupArray(seq)) AS seqs FROM (SELECT correlation_id, seq FROM ${LEDGER_TABLE} WHERE seq BETWEEN ${lo} AND ${hi})
         GROUP BY correlation_id ORDER BY correlation_id`,
      `SELECT seq, toYYYYMM(ts) AS month, toUInt32(ts) AS epoch, reason, length(reason) AS bytes, isNull(duration_ms) AS no_duration
         FROM ${LEDGER_TABLE} WHERE seq BETWEEN ${lo} AND ${hi} ORDER BY seq`,
    ];
    for (const q of queries) {
      const [a, b] = await Promise.all([serverStore.query(q), embeddedStore.query(q)]);
      expect(a.length, q).toBeGreaterThan(0);
      expect(b, q).toEqual(a);
    }
  });
});

describe('server store', () => {
  it('reports a stopped server as StoreUnavailableError naming the URL, and works again once it is back', async () => {
    const store = serverStore;
    await server.stop();
    try {
      const err = await store.query('SELECT 1').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as Error).message).toContain(server.url);
      expect((err as Error).message).toMatch(/ECONNREFUSED/);
      const insertErr = await store.insert(chain([event()], 9_000_000)).catch((e: unknown) => e);
      expect(insertErr).toBeInstanceOf(StoreUnavailableError);
      expect((insertErr as StoreUnavailableError).maybeApplied).toBe(false);
      expect(await store.ping()).toBe(false);
    } finally {
      await server.start();
    }
    expect(await store.ping()).toBe(true);
    const recs = records([event({ correlation_id: 'after-outage' })]);
    await store.insert(recs);
    expect((await store.query(lineageSql('after-outage'))).map(rowToRecord).map((r) => r.hash)).toEqual([recs[0].hash]);
  });

  it('creates its database on migrate and reports bad credentials as a query error', async () => {
    const other = await openStore({ url: server.url, dataDir, database: 'warden_other' });
    try {
      await expect(other.query('SELECT 1')).rejects.toBeInstanceOf(StoreQueryError);
      await other.migrate();
      expect(await other.ping()).toBe(true);
    } finally {
      await other.close();
    }
    const wrong = await openStore({ url: server.url, dataDir, user: 'default', password: 'wrong' });
    try {
      const err = await wrong.query('SELECT 1').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreQueryError);
      expect((err as Error).message).toMatch(/password/);
    } finally {
      await wrong.close();
    }
  });

  it("maps a newer server's error format (23.x and later) to StoreQueryError with its code", async () => {
    // No 23-25 server runs here; this one answers like them (status, exception header, message text).
    const fake = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(404, { 'X-ClickHouse-Exception-Code': '60', 'Content-Type': 'text/plain' });
        res.end("Code: 60. DB::Exception: Unknown table expression identifier 'nope' in scope SELECT * FROM nope. (UNKNOWN_TABLE) (version 24.8.4.13 (official build))\n");
      });
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
    const s = await openStore({ url, dataDir });
    try {
      const err = await s.query('SELECT * FROM nope').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreQueryError);
      expect((err as StoreQueryError).clickhouseCode).toBe(60);
      expect((err as Error).message).toMatch(/UNKNOWN_TABLE/);
      expect((err as StoreQueryError).sqlHead).toBe('SELECT * FROM nope');
    } finally {
      await s.close();
      await new Promise((resolve) => fake.close(resolve));
    }
  });

  it('refuses calls after close', async () => {
    const s = await openStore({ url: server.url, dataDir });
    await s.close();
    await s.close();
    await expect(s.query('SELECT 1')).rejects.toBeInstanceOf(StoreClosedError);
    expect(await s.ping()).toBe(false);
  });
});

describe('embedded store', () => {
  it('reports a data directory that another process holds', async () => {
    // A second process (another agent) opens the directory this test process holds. It runs the built
    // code in dist/, which the global setup compiles before the tests.
    const entry = pathToFileURL(path.resolve('dist/ledger/store/index.js')).href;
    const script =
      `const m = await import(${JSON.stringify(entry)});` +
      `try { const s = await m.openStore({ dataDir: ${JSON.stringify(dataDir)} }); await s.close(); console.log(JSON.stringify({ ok: true })); }` +
      `catch (e) { console.log(JSON.stringify({ name: e.name, message: e.message })); }`;
    const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script]);
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { name?: string; message?: string };
    expect(result.name).toBe('StoreUnavailableError');
    expect(result.message).toContain(path.join(dataDir, 'chdb'));
    expect(result.message).toMatch(/another process/);
    expect(await embeddedStore.ping()).toBe(true);
  });

  it('keeps engine work off the event loop', async () => {
    // If chdb ran on the main thread, no timer could fire until the query returned. A timer scheduled
    // after the query starts must fire while the engine is still busy (sleepEachRow: ~400 ms of work).
    let firedBeforeDone = false;
    let done = false;
    const pending = embeddedStore.query<{ s: string }>(
      'SELECT sum(cityHash64(number)) + sum(sleepEachRow(0.1)) AS s FROM numbers(4) SETTINGS max_block_size = 4',
    ).finally(() => { done = true; });
    await new Promise<void>((r) => setTimeout(() => { firedBeforeDone = !done; r(); }, 1));
    const [{ s }] = await pending;
    expect(BigInt(s)).toBeGreaterThan(0n);
    expect(firedBeforeDone).toBe(true);
  });

  it('shares its directory with a second store in the process, and refuses a second directory', async () => {
    const same = await EmbeddedStore.open({ path: path.join(dataDir, 'chdb') });
    try {
      const [{ n }] = await same.query<{ n: string }>(`SELECT count() AS n FROM ${LEDGER_TABLE}`);
      expect(Number(n)).toBeGreaterThan(0);
    } finally {
      await same.close();
    }
    const err = await EmbeddedStore.open({ path: path.join(dataDir, 'elsewhere') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as Error).message).toMatch(/one active data directory per process/);
    expect(await embeddedStore.ping()).toBe(true);
  });
});

describe('cluster schema', () => {
  it('is well-formed SQL for every table: chdb parses each statement, 18.16 gets past parsing to the cluster lookup', async () => {
    const statements = clusterSchema('warden_cluster');
    expect(statements.map((s) => s.table)).toEqual([
      'warden_migrations_local', 'warden_migrations', 'warden_ledger_local', 'warden_ledger',
      'warden_lineage', 'warden_lineage_mv', 'warden_checkpoints_local', 'warden_checkpoints', 'warden_migrations',
    ]);
    // The last one records every migration as applied (run for real in test/e2e/fleet-cluster.test.ts).
    const record = statements.pop()!;
    expect(record.sql).toMatch(/^INSERT INTO warden_migrations /);
    const [{ f: recordText }] = await embeddedStore.query<{ f: string }>(sql`SELECT formatQuery(${record.sql}) AS f`);
    expect(recordText).toMatch(/^INSERT INTO warden_migrations/);
    for (const s of statements) {
      expect(s.sql).toContain('ON CLUSTER warden_cluster');
      // formatQuery parses without executing (26.x); a syntax error would throw.
      const [{ f }] = await embeddedStore.query<{ f: string }>(sql`SELECT formatQuery(${s.sql}) AS f`);
      expect(f, s.table).toMatch(/^CREATE /);
      // 18.16 has no formatQuery: a syntax error is code 62; anything else means it parsed.
      const err = await serverStore.exec(s.sql).catch((e: unknown) => e);
      expect(err, s.table).toBeInstanceOf(StoreQueryError);
      expect((err as StoreQueryError).clickhouseCode, `${s.table}: ${(err as Error).message}`).not.toBe(62);
    }
    expect(LEDGER_SELECT.split(', ')).toContain('spill');
  });
});
