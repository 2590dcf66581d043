/**
 * Wires the sidecar process: spool (ledger) -> positions -> metrics/spans -> BullMQ collector -> HTTP.
 * Start order makes the ledger durable before anything is read; stop order drains in reverse.
 */
import { createPublicKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { BullMQCollector } from '../collectors/bullmq/collector.js';
import { Redactor } from '../core/redact.js';
import { DEFAULT_INPUT_LIMITS } from '../core/input.js';
import { Checkpointer, keyPaths, lineage, loadOrCreateSigningKey, queryLedger, Spool, verifyCheckpoints, verifyLedger } from '../ledger/index.js';
import { ComplianceApi } from './api.js';
import { EventIngest, RecentEventIds, rememberIds } from './ingest.js';
import { startNatsIngest } from './ingest-nats.js';
import type { NatsEventConsumer } from '../collectors/nats/consumer.js';
import { startShipping, type Shipping } from './shipping.js';
import { startCheckpointPublishing, type CheckpointPublisher } from './publish-checkpoints.js';
import { parseHostPort, type WardenConfig } from './config.js';
import { WardenMetrics } from './metrics.js';
import { EventPipeline } from './pipeline.js';
import { PositionStore } from './positions.js';
import { startPolicies, type RunningPolicies } from './policies.js';
import { startHttpServer, type HttpServer, type Readiness } from './server.js';
import { EventSpanBuilder } from './spans.js';
import { createTraceExport, type TraceExport } from './tracing.js';
import { LedgerSelfVerifier } from './self-verify.js';

export class Sidecar {
  private constructor(
    readonly config: WardenConfig,
    readonly spool: Spool,
    readonly metrics: WardenMetrics,
    readonly collector: BullMQCollector,
    readonly http: HttpServer,
    private readonly traces: TraceExport,
    private readonly positions: PositionStore,
    private readonly logger: Logger,
    /** Signs Merkle checkpoints of the ledger; `checkpointer.onCheckpoint(fn)` is where they are published. */
    readonly checkpointer: Checkpointer,
    /** The ClickHouse store and its shipper; null when clickhouse.mode is off. */
    readonly shipping: Shipping | null,
  ) {}

  static async start(config: WardenConfig, logger: Logger): Promise<Sidecar> {
    const spool = await Spool.open({ dir: config.dataDir, segmentBytes: config.ledger.segmentBytes, groupCommitMs: config.ledger.groupCommitMs });
    if (spool.recovery.truncatedBytes > 0) {
      logger.warn({ recovery: spool.recovery }, 'ledger spool had a torn tail (a crash mid-write); truncated it to the last complete record');
    }
    const positions = new PositionStore(config.dataDir);
    // The same scan of the spool's tail also remembers recent event IDs (hook events are deduplicated by them).
    const recentIds = new RecentEventIds(config.ingest.dedupeWindow);
    const restored = await positions.restore((fromSeq) => rememberIds(Spool.read(config.dataDir, { fromSeq }), recentIds));
    logger.info({ lastSeq: spool.lastSeq, positions: Object.fromEntries(restored.positions), scanned: restored.scanned }, 'ledger opened');
    const checkpointer = await openCheckpointer(config, spool, logger).catch(async (err) => {
      await spool.close();
      throw err;
    });

    const metrics = new WardenMetrics();
    metrics.ledgerLastSeq.set(spool.lastSeq);
    const shipping = await startShipping(config, spool, metrics, logger).catch(async (err) => {
      await checkpointer.close({ lastSeq: spool.lastSeq });
      await spool.close();
      throw err;
    });
    // Signed checkpoints also go to NATS JetStream when nats.url is set (async; never blocks the ledger).
    const publisher = startCheckpointPublishing(config, checkpointer, metrics, logger);
    const traces = createTraceExport(config.tracing);
    const spans = new EventSpanBuilder(traces.processor, traces.resource);
    const pipeline = new EventPipeline({ spool, metrics, spans, positions, terminals: restored.terminals, logger, checkpointer }, restored.positions);
    const redactor = new Redactor({ paths: config.redaction.paths, maxDepth: config.redaction.maxDepth });
    const ingest = new EventIngest({ record: (events) => pipeline.recordHookEvents(events), ids: recentIds, metrics, redactor });
    // Policies see every durable event and write their decisions through the same pipeline.
    const policies = await startPolicies(config, (events) => pipeline.record(events), metrics, logger).catch(async (err) => {
      await publisher?.stop({ drainMs: 0 });
      await shipping?.stop();
      await checkpointer.close({ lastSeq: spool.lastSeq });
      await spool.close();
      throw err;
    });
    pipeline.policies = policies?.engine ?? null;

    const collector = new BullMQCollector({
      redisUrl: config.redis.url,
      prefix: config.bullmq.prefix,
      queues: config.bullmq.queues,
      discoverIntervalMs: config.bullmq.discoverIntervalMs,
      countsIntervalMs: config.bullmq.countsIntervalMs,
      batchSize: config.bullmq.batchSize,
      blockMs: config.bullmq.blockMs,
      startFrom: config.bullmq.startFrom,
      metadata: config.bullmq.metadata,
      queueMetadata: config.bullmq.queueMetadata,
      outputs: config.bullmq.outputs,
      redactor,
      inputLimits: { ...DEFAULT_INPUT_LIMITS, maxInputBytes: config.redaction.maxInputBytes },
      positions: restored.positions,
      sink: (batches) => pipeline.handle(batches),
      hasTerminal: (q, id) => restored.terminals.has(q, id),
      seedJob: (q, id) => restored.jobStates.get(q, id),
      observer: {
        onQueue: (queue) => logger.info({ queue }, 'watching queue'),
        onGap: (queue, ev) => logger.warn({ queue, gap: ev.attrs }, ev.reason ?? 'stream gap'),
        onError: (where, err) => {
          metrics.collectorErrors.inc({ where: where.split(' ')[0] });
          logger.warn({ where, err: err.message }, 'collector error (retrying)');
        },
        onCounts: (queue, counts, paused) => {
          for (const [state, n] of Object.entries(counts)) metrics.queueJobs.set({ queue, state }, n);
          metrics.queuePaused.set({ queue }, paused ? 1 : 0);
        },
      },
    });

    let sidecar: Sidecar | undefined;
    const readiness = (): Readiness => {
      const reasons: string[] = [];
      if (!sidecar?.collectorRunning) reasons.push('collector starting (waiting for Redis)');
      else if (!collector.connected) reasons.push(`redis not connected (${config.redis.url.replace(/\/\/[^@]*@/, '//***@')})`);
      reasons.push(...(shipping?.problems() ?? []));
      return { ready: reasons.length === 0, reasons };
    };
    const api = new ComplianceApi({
      ...config.api,
      redactor,
      record: (events) => pipeline.record(events),
      ingest: (events) => ingest.ingest(events, 'http'),
      onInvalidEvents: (n) => ingest.invalid('http', n),
      store: shipping?.store ?? null,
      breakers: policies?.admin ?? null,
      reader: {
        events: (filter) => queryLedger(config.dataDir, { ...filter, toSeq: spool.lastSeq }),
        lineage: (cid) => lineage(config.dataDir, cid),
        verify: async () => ({
          ...(await verifyLedger(config.dataDir)),
          checkpoints: await verifyCheckpoints(config.dataDir, createPublicKey(await readFile(keyPaths(config.dataDir).publicFile))),
        }),
      },
    });
    const { host, port } = parseHostPort(config.metrics.addr);
    const http = await startHttpServer({ host, port, metrics, readiness, api });
    logger.info({ url: http.url, tracing: traces.endpoint ?? 'off' }, 'serving /metrics, /healthz, /readyz');

    // Redis may be down at start: keep retrying in the background, ready once it is reachable.
    const s = new Sidecar(config, spool, metrics, collector, http, traces, positions, logger, checkpointer, shipping);
    sidecar = s;
    s.checkpointPublisher = publisher;
    // Periodic self-verify of the ledger (ledger.verifyIntervalMs): warden_ledger_verify_ok and a ledger.verified event.
    s.selfVerify = new LedgerSelfVerifier({
      dataDir: config.dataDir, intervalMs: config.ledger.verifyIntervalMs, fullEvery: config.ledger.verifyFullEvery,
      metrics, record: (events) => pipeline.record(events), lastSeq: () => spool.lastSeq, logger,
    }).start();
    // Hook events from NATS JetStream (nats.url set): the spool is open, so acks can follow appends.
    s.natsIngest = startNatsIngest(config, ingest, logger);
    s.policies = policies;
    s.starting = collector.start().then(
      () => { s.collectorRunning = true; logger.info({ queues: collector.queues }, 'collector started'); },
      (err) => logger.error({ err: (err as Error).message }, 'collector failed to start'),
    );
    return s;
  }

  collectorRunning = false;
  /** Publishes checkpoints to NATS JetStream; null when nats.url is not set. */
  checkpointPublisher: CheckpointPublisher | null = null;
  selfVerify: LedgerSelfVerifier | null = null;
  /** Consumes hook events from NATS JetStream; null when nats.url is not set. */
  natsIngest: NatsEventConsumer | null = null;
  /** The policy engine and its actions; null without policies.file. */
  policies: RunningPolicies | null = null;
  /** Resolves once the collector reached Redis and found its queues. */
  starting: Promise<void> = Promise.resolve();

  /** Graceful: the batch in flight is made durable and its positions saved before exit. */
  async stop(): Promise<void> {
    await this.natsIngest?.stop(); // the batch in hand is appended and acked before the spool closes
    await this.collector.stop();
    await this.starting;
    await this.selfVerify?.stop();
    await this.policies?.stop(); // decisions in flight are recorded before the spool closes
    await this.spool.close();
    const cp = await this.checkpointer.close({ lastSeq: this.spool.lastSeq });
    if (cp) this.logger.info({ size: cp.size, root: cp.root }, 'final ledger checkpoint');
    await this.shipping?.stop(); // ships what it can in a few seconds, the final checkpoint included
    await this.checkpointPublisher?.stop({ drainMs: 3000 }); // the final checkpoint too, if NATS is up
    await this.positions.flush();
    await this.traces.processor.shutdown().catch((err) => this.logger.warn({ err: (err as Error).message }, 'span export at shutdown failed'));
    await this.http.close();
    this.logger.info({ lastSeq: this.spool.lastSeq }, 'stopped');
  }
}

async function openCheckpointer(config: WardenConfig, spool: Spool, logger: Logger): Promise<Checkpointer> {
  const key = await loadOrCreateSigningKey(config.dataDir, config.ledger.signingKeyFile);
  for (const w of key.warnings) logger.warn(w);
  if (key.created) logger.info({ keyId: key.keyId, publicKey: key.publicFile }, 'generated the ledger signing key; give auditors the public key');
  const checkpointer = await Checkpointer.open({
    dir: config.dataDir,
    key,
    every: config.ledger.checkpointEvery,
    intervalMs: config.ledger.checkpointIntervalMs,
    lastSeq: spool.lastSeq,
    onError: (err, where) => logger.warn({ where, err: err.message }, 'ledger checkpoint failed (retrying)'),
  });
  const { readAtOpen, last } = checkpointer.stats();
  logger.info({ keyId: key.keyId, lastCheckpoint: last?.size ?? 0, readBack: readAtOpen }, 'ledger checkpoints resumed');
  return checkpointer;
}
