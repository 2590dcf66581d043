/**
 * Wires the ledger's shipping: the ClickHouse store (server when a URL is configured, else the
 * embedded engine in the data dir) and the shipper that copies the spool (and its signed
 * checkpoints) into it. A store that is down at start is retried; the spool keeps the backlog.
 */
import type { Logger } from 'pino';
import { Shipper, storeTarget } from '../ledger/store/shipper.js';
import type { Spool } from '../ledger/spool/spool.js';
import { openStore, type LedgerStore } from '../ledger/store/index.js';
import type { WardenConfig } from './config.js';
import type { WardenMetrics } from './metrics.js';

export interface Shipping {
  store: LedgerStore;
  shipper: Shipper;
  /** Told every seq up to which the ledger is in the store (fleet mode advances the shared positions on it); called at once with the current one. */
  onCommitted(listener: (committed: number) => void): void;
  /** Why the ledger is not reaching its store, for /readyz; empty when it is. */
  problems(): string[];
  stop(): Promise<void>;
}

export async function startShipping(config: WardenConfig, spool: Spool, metrics: WardenMetrics, logger: Logger, ledgerId?: string): Promise<Shipping | null> {
  const c = config.clickhouse;
  const mode = c.mode === 'auto' ? (c.url ? 'server' : 'embedded') : c.mode;
  if (mode === 'off') return null;
  if (mode === 'server' && !c.url) throw new Error('clickhouse.mode is "server" but clickhouse.url (WARDEN_CLICKHOUSE_URL) is not set');
  const store = await openStore({ url: mode === 'server' ? c.url : undefined, user: c.user, password: c.password, database: c.database, dataDir: config.dataDir });
  let lastLogged = 0;
  let committedListener: ((committed: number) => void) | null = null;
  const shipper = new Shipper({
    dataDir: config.dataDir,
    target: storeTarget(store, ledgerId),
    lastSeq: () => spool.lastSeq,
    batchRecords: c.batchRecords,
    flushIntervalMs: c.flushIntervalMs,
    prepare: () => store.migrate(),
    onShipped: (n) => metrics.shipped.inc(n),
    onCommitted: (seq) => committedListener?.(seq),
    onError: (err) => {
      metrics.shipErrors.inc();
      if (Date.now() - lastLogged > 5000) {
        lastLogged = Date.now();
        logger.warn({ store: store.target, err: err.message, backlog: shipper.status().backlog }, 'ledger shipping failed (retrying; the backlog stays on disk)');
      }
    },
  });
  await shipper.start();
  metrics.backlogSource = () => shipper.status().backlog;
  logger.info({ store: store.kind, target: store.target, ledgerId }, 'shipping the ledger to ClickHouse');
  return {
    store,
    shipper,
    onCommitted(listener) {
      committedListener = listener;
      listener(shipper.status().committed);
    },
    problems() {
      const f = shipper.status().failing;
      return f ? [`ledger store ${store.target} failing since ${new Date(f.since).toISOString()}: ${f.error} (${shipper.status().backlog} records waiting on disk)`] : [];
    },
    async stop() {
      await shipper.stop({ drainMs: 3000 });
      await store.close();
    },
  };
}
