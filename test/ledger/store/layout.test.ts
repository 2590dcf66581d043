/**
 * Measures the table layout (schema.ts): what the two common reads cost on ClickHouse 18.16 with the
 * chosen ORDER BY plus the lineage table, against the alternatives, in rows read; and what ZSTD does
 * for the input column on an engine that has codecs (chdb). The numbers are printed; the assertions
 * only hold the layout to "reads a small fraction of the table".
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LEDGER_INSERT_COLUMNS, lineageSql, openStore, queueRangeSql, type LedgerStore } from '../../../ledger/store/index.js';
import { startClickHouse, type ClickHouseServer } from '../../harness/index.js';
import { chain, event } from './helpers.js';

const ROWS = 2_000_000;
const T0 = 1_700_000_000; // seconds; rows are 8 s apart, so the table spans ~185 days (7 monthly partitions)

let server: ClickHouseServer;
let store: LedgerStore;
let dataDir: string;

/** Runs `sql` over HTTP with FORMAT JSON and returns ClickHouse's own rows_read and elapsed. */
async function measure(sql: string): Promise<{ rowsRead: number; ms: number; rows: number }> {
  const body = JSON.parse(await server.query(`${sql}\nFORMAT JSON`)) as { rows: number; statistics: { rows_read: number; elapsed: number } };
  return { rowsRead: body.statistics.rows_read, ms: Math.round(body.statistics.elapsed * 1000 * 10) / 10, rows: body.rows };
}

beforeAll(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'warden-layout-'));
  server = await startClickHouse();
  store = await openStore({ url: server.url, dataDir });
  await store.migrate();
  // Generated on the server: one correlation ID = 8 consecutive events in one queue (a job's life),
  // 20 queues, 8 s between events.
  const value: Record<string, string> = {
    seq: 'number + 1',
    prev: "''",
    hash: "''",
    ts: `toDateTime(${T0} + number * 8)`,
    ts_ms: `(${T0} + number * 8) * 1000`,
    event_id: 'toString(number)',
    kind: "'job.completed'",
    source: "'bullmq'",
    queue: "concat('q', toString(intDiv(number, 8) % 20))",
    correlation_id: "concat('c', toString(intDiv(number, 8)))",
    attempt: '1',
    duration_bits: 'NULL',
    input: `concat('{"to":"user', toString(number % 1000), '@example.com","template":"welcome"}')`,
    attrs: "'{}'",
    spill: "''",
  };
  const cols = LEDGER_INSERT_COLUMNS;
  await store.exec(`INSERT INTO warden_ledger (${cols.join(', ')}) SELECT ${cols.map((c) => value[c] ?? 'NULL').join(', ')} FROM system.numbers LIMIT ${ROWS}`);
  // The same data ordered by correlation ID first, the alternative layout.
  await store.exec(
    `CREATE TABLE by_correlation (correlation_id String, queue String, ts DateTime('UTC'), seq UInt64, input String)
     ENGINE = MergeTree() PARTITION BY toYYYYMM(ts) ORDER BY (correlation_id, seq)`,
  );
  await store.exec('INSERT INTO by_correlation SELECT assumeNotNull(correlation_id), queue, ts, seq, input FROM warden_ledger');
  await store.exec('OPTIMIZE TABLE warden_ledger FINAL');
  await store.exec('OPTIMIZE TABLE warden_lineage FINAL');
}, 120_000);

afterAll(async () => {
  await store?.close();
  await server?.dispose();
  await fs.rm(dataDir, { recursive: true, force: true });
});

describe('layout on ClickHouse 18.16 (2 000 000 rows, 20 queues, 7 months)', () => {
  it('answers one correlation ID through the lineage table from a few granules', async () => {
    const corr = `c${ROWS / 8 / 2 + 17}`;
    const viaLineage = await measure(lineageSql(corr));
    const scan = await measure(`SELECT * FROM warden_ledger WHERE correlation_id = '${corr}' ORDER BY seq`);
    const altLayout = await measure(`SELECT * FROM by_correlation WHERE correlation_id = '${corr}' ORDER BY seq`);
    console.log(`lineage of one correlation ID: via lineage table ${JSON.stringify(viaLineage)}; ` +
      `scan of warden_ledger ${JSON.stringify(scan)}; ORDER BY correlation_id layout ${JSON.stringify(altLayout)}`);
    expect(viaLineage.rows).toBe(8);
    expect(scan.rows).toBe(8);
    expect(scan.rowsRead).toBe(ROWS);
    expect(viaLineage.rowsRead).toBeLessThan(ROWS / 20);
  });

  it('answers one queue over a day from the primary index; the other layout reads whole months', async () => {
    const from = (T0 + 90 * 86_400) * 1000;
    const to = from + 86_400_000;
    const chosen = await measure(queueRangeSql('q7', from, to));
    const altLayout = await measure(
      `SELECT * FROM by_correlation WHERE queue = 'q7' AND ts >= toDateTime(${from / 1000}) AND ts < toDateTime(${to / 1000}) ORDER BY ts`,
    );
    console.log(`one queue, one day: ORDER BY (queue, ts, seq) ${JSON.stringify(chosen)}; ORDER BY correlation_id layout ${JSON.stringify(altLayout)}`);
    expect(chosen.rows).toBe(altLayout.rows);
    expect(chosen.rows).toBeGreaterThan(0);
    expect(chosen.rowsRead).toBeLessThan(ROWS / 20);
    expect(altLayout.rowsRead).toBeGreaterThan(chosen.rowsRead * 5);
  });
});

describe('compression of input on an engine with codecs (chdb)', () => {
  it('measures ZSTD(3) against the default LZ4 on realistic inputs', async () => {
    const chdbDir = path.join(dataDir, 'chdb-home');
    const embedded = await openStore({ dataDir: chdbDir });
    try {
      await embedded.migrate();
      await embedded.exec('CREATE TABLE lz4_ledger AS warden_ledger');
      await embedded.exec('ALTER TABLE lz4_ledger MODIFY COLUMN input String CODEC(LZ4)');
      const recs = chain(Array.from({ length: 20_000 }, (_, i) => event({
        queue: `q${i % 4}`,
        input: {
          to: `user${i}@example.com`,
          template: ['welcome', 'reset', 'digest'][i % 3],
          vars: { name: `User ${i}`, items: Array.from({ length: i % 5 }, (_, k) => ({ sku: `SKU-${(i * 7 + k) % 997}`, qty: k + 1 })) },
          prompt: `Summarize the conversation ${i} for the customer in a friendly tone; mention order ${i * 31 % 10007}.`,
        },
      })));
      await embedded.insert(recs);
      await embedded.exec('INSERT INTO lz4_ledger SELECT * FROM warden_ledger');
      await embedded.exec('OPTIMIZE TABLE warden_ledger FINAL');
      await embedded.exec('OPTIMIZE TABLE lz4_ledger FINAL');
      const sizes = await embedded.query<{ table: string; raw: string; packed: string }>(
        `SELECT table, sum(data_uncompressed_bytes) AS raw, sum(data_compressed_bytes) AS packed FROM system.columns
          WHERE database = currentDatabase() AND name = 'input' AND table IN ('warden_ledger', 'lz4_ledger') GROUP BY table ORDER BY table`,
      );
      const by = Object.fromEntries(sizes.map((s) => [s.table, { raw: Number(s.raw), packed: Number(s.packed) }]));
      console.log(`input column, 20 000 events: raw ${by.warden_ledger.raw} B; LZ4 ${by.lz4_ledger.packed} B ` +
        `(${(by.lz4_ledger.raw / by.lz4_ledger.packed).toFixed(2)}x); ZSTD(3) ${by.warden_ledger.packed} B ` +
        `(${(by.warden_ledger.raw / by.warden_ledger.packed).toFixed(2)}x)`);
      expect(by.warden_ledger.packed).toBeLessThan(by.lz4_ledger.packed);
    } finally {
      await embedded.close();
    }
  });
});
