/**
 * `npm run bench [-- <scenario> [args]]`: every scenario, or one. Each prints raw figures and ratios
 * against a baseline measured in the same run (machines here are noisy; absolute times mean little).
 */
import os from 'node:os';

const SCENARIOS: Record<string, { what: string; load: () => Promise<unknown> }> = {
  spool: { what: 'ledger spool append rate and commit latency vs raw sha256 of the same bytes', load: () => import('./spool.js') },
  collector: { what: 'sidecar ingest rate vs what plain BullMQ workers produce', load: () => import('./collector.js') },
  temporal: { what: 'activity interceptor cost per call vs none and vs the official OpenTelemetry interceptor (MockActivityEnvironment)', load: () => import('./temporal.js') },
};

const [name, ...rest] = process.argv.slice(2);
if (name && !SCENARIOS[name]) {
  console.error(`unknown scenario "${name}"; choose one of: ${Object.keys(SCENARIOS).join(', ')}`);
  process.exit(2);
}
console.log(`node ${process.version}, ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? 'cpu'}`);
for (const [key, s] of Object.entries(SCENARIOS)) {
  if (name && key !== name) continue;
  console.log(`\n== ${key}: ${s.what}`);
  process.argv = [process.argv[0], process.argv[1], ...rest];
  await s.load();
}
