import { readRecords } from './dist/ledger/spool/reader.js';
import { recordToRow, LEDGER_TABLE } from './dist/ledger/store/rows.js';
import { insertTabSeparated } from './dist/ledger/store/sql.js';
import { SpoolTail } from './dist/ledger/spool/tail.js';
import { LEDGER_INSERT_COLUMNS } from './dist/ledger/store/rows.js'; const INSERT_COLUMNS = ['ledger_id', ...LEDGER_INSERT_COLUMNS];
for (let r = 0; r < 3; r++) {
  let t = performance.now();
  const tail = SpoolTail.at('/tmp/vbench', 1);
  const recs = [];
  for (;;) { const b = await tail.read(5000, 100000); if (!b.length) break; recs.push(...b); }
  const tRead = performance.now() - t; t = performance.now();
  const rows = recs.map(recordToRow); for (const row of rows) row.ledger_id = 'x';
  const tRow = performance.now() - t; t = performance.now();
  let len = 0; for (let i = 0; i < rows.length; i += 5000) len += insertTabSeparated(LEDGER_TABLE, INSERT_COLUMNS, rows.slice(i, i + 5000)).length;
  const tTsv = performance.now() - t;
  console.log(`read ${tRead.toFixed(0)} ms, toRow ${tRow.toFixed(0)} ms, tsv ${tTsv.toFixed(0)} ms (${(len/1e6).toFixed(1)} MB) per 100k`);
}
