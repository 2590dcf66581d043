/**
 * Wires the sidecar process as one ordered list of parts (see parts.ts): the ledger first, then what
 * ships and publishes it, the pipeline, policies, the BullMQ collector's connections, HTTP, self-verify,
 * NATS ingest, and last the collector's reading. Start order makes the ledger durable before anything is
 * read; parts stop in reverse, so every writer has stopped before the spool closes, and the final
 * checkpoint is written before shipping and publishing stop. A part that fails to start stops the ones
 * before it and the error goes to the CLI (its exit code).
 */
import { createPublicKey, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { BullMQCollector, type BullMQCollectorOptions } from '../collectors/bullmq/collector.js';
import { TemporalCollector } from '../collectors/temporal/collector.js';
import { rememberTemporalRecords, TemporalLedgerIndex } from '../collectors/temporal/ledger-index.js';
import { Redactor, redactJoinKey } from '../core/redact.js';
import { DEFAULT_INPUT_LIMITS } from '../core/input.js';
import { buildInclusionProof, Checkpointer, checkpointsPath, keyPaths, lineage, loadOrCreateSigningKey, queryLedger, readCheckpointFile, Spool, verifyCheckpoints, verifyLedger } from '../ledger/index.js';
import { uiFiles } from './api/routes-ui.js';
import { overviewOf } from './overview.js';
import { ComplianceApi } from './api.js';
import { EventIngest, RecentEventIds, rememberIds } from './ingest.js';
import { startNatsIngest } from './ingest-nats.js';
import type { NatsEventConsumer } from '../collectors/nats/consumer.js';
import { startShipping, type Shipping } from './shipping.js';
import { resolveLedgerId } from '../ledger/store/ledger-id.js';
import { startCheckpointPublishing, type CheckpointPublisher } from './publish-checkpoints.js';
import { parseHostPort, type WardenConfig } from './config.js';
import { WardenMetrics } from './metrics.js';
import { startParts, type Part, type RunningParts } from './parts.js';
import { EventPipeline } from './pipeline.js';
import { PositionStore } from './positions.js';
import { startPolicies, type RunningPolicies } from './policies.js';
import { startHttpServer, type HttpServer, type Readiness } from './server.js';
import { EventSpanBuilder } from './spans.js';
import { createTraceExport, type TraceExport } from './tracing.js';
import { LedgerSelfVerifier } from './self-verify.js';
import { CeleryLedgerIndex, newCeleryCollector, rememberCelery } from './celery.js';
import type { CeleryCollector } from '../collectors/celery/collector.js';

/** What the parts made, handed to the Sidecar once all of them started. */
interface Started {
  config: WardenConfig;
  spool: Spool;
  metrics: WardenMetrics;
  collector: BullMQCollector;
  http: HttpServer;
  checkpointer: Checkpointer;
  shipping: Shipping | null;
  checkpointPublisher: CheckpointPublisher | null;
  selfVerify: LedgerSelfVerifier | null;
  natsIngest: NatsEventConsumer | null;
  policies: RunningPolicies | null;
  temporal: TemporalCollector | null;
}

/** The collector's progress, read by /readyz and by stop. */
interface CollectorState { running: boolean; starting: Promise<void> }

export class Sidecar {
  readonly config: WardenConfig;
  readonly spool: Spool;
  readonly metrics: WardenMetrics;
  readonly collector: BullMQCollector;
  readonly http: HttpServer;
  /** Signs Merkle checkpoints of the ledger; `checkpointer.onCheckpoint(fn)` is where they are published. */
  readonly checkpointer: Checkpointer;
  /** The ClickHouse store and its shipper; null when clickhouse.mode is off. */
  readonly shipping: Shipping | null;
  /** Publishes checkpoints to NATS JetStream; null when nats.url is not set. */
  readonly checkpointPublisher: CheckpointPublisher | null;
  readonly selfVerify: LedgerSelfVerifier | null;
  /** Consumes hook events from NATS JetStream; null when nats.url is not set. */
  readonly natsIngest: NatsEventConsumer | null;
  /** The policy engine and its actions; null without policies.file. */
  readonly policies: RunningPolicies | null;
  /** Reads closed runs' histories from the Temporal server; null without temporal.address. */
  readonly temporal: TemporalCollector | null;

  private constructor(s: Started, private readonly collectorState: CollectorState, private readonly parts: RunningParts, private readonly logger: Logger) {
    this.config = s.config;
    this.spool = s.spool;
    this.metrics = s.metrics;
    this.collector = s.collector;
    this.http = s.http;
    this.checkpointer = s.checkpointer;
    this.shipping = s.shipping;
    this.checkpointPublisher = s.checkpointPublisher;
    this.selfVerify = s.selfVerify;
    this.natsIngest = s.natsIngest;
    this.policies = s.policies;
    this.temporal = s.temporal;
  }

  /** True once the collector reached Redis and found its queues. */
  get collectorRunning(): boolean { return this.collectorState.running; }
  /** Resolves once the collector reached Redis and found its queues (or failed to). */
  get starting(): Promise<void> { return this.collectorState.starting; }

  static async start(config: WardenConfig, logger: Logger): Promise<Sidecar> {
    const metrics = new WardenMetrics({ maxSeriesPerFamily: config.metrics.maxSeriesPerFamily });
    const collectorState: CollectorState = { running: false, starting: Promise.resolve() };
    let spool!: Spool;
    let positions!: PositionStore;
    let recentIds!: RecentEventIds;
    let restored!: Awaited<ReturnType<PositionStore['restore']>>;
    let checkpointer!: Checkpointer;
    let shipping: Shipping | null = null;
    let publisher: CheckpointPublisher | null = null;
    let traces!: TraceExport;
    let pipeline!: EventPipeline;
    let redactor!: Redactor;
    let ingest!: EventIngest;
    let policies: RunningPolicies | null = null;
    let collector!: BullMQCollector;
    let http!: HttpServer;
    let selfVerify: LedgerSelfVerifier | null = null;
    let natsIngest: NatsEventConsumer | null = null;
    let temporal: TemporalCollector | null = null;
    // Temporal records the ledger holds (start, end, activity outcomes), whoever wrote them.
    const temporalIndex = new TemporalLedgerIndex();
    const celeryIndex = new CeleryLedgerIndex();
    let celery: CeleryCollector | null = null;
    /** This sidecar's chain in a shared store (ledger/store/ledger-id.ts). */
    let ledgerId!: string;

    const parts: Part[] = [
      {
        name: 'ledger spool',
        essential: true,
        async start() {
          // Before the spool opens: a data dir with records from before ledger IDs adopts the legacy ID.
          const ledger = await resolveLedgerId(config.dataDir, config.ledger.id);
          ledgerId = ledger.id;
          logger.info({ ledgerId, source: ledger.source }, 'ledger identity');
          spool = await Spool.open({ dir: config.dataDir, segmentBytes: config.ledger.segmentBytes, groupCommitMs: config.ledger.groupCommitMs });
          if (spool.recovery.truncatedBytes > 0) {
            logger.warn({ recovery: spool.recovery }, 'ledger spool had a torn tail (a crash mid-write); truncated it to the last complete record');
          }
          // Normally "final checkpoint" below has closed it already (close is idempotent).
          return () => spool.close();
        },
      },
      {
        name: 'positions',
        essential: true,
        async start() {
          positions = new PositionStore(config.dataDir);
          // The same scan of the spool's tail also remembers recent event IDs (hook events are deduplicated by them)
          // and the Temporal records held (the history collector adds only what is missing).
          recentIds = new RecentEventIds(config.ingest.dedupeWindow);
          restored = await positions.restore((fromSeq) => rememberCelery(rememberTemporalRecords(rememberIds(Spool.read(config.dataDir, { fromSeq }), recentIds), temporalIndex), celeryIndex));
          logger.info({ lastSeq: spool.lastSeq, positions: Object.fromEntries(restored.positions), scanned: restored.scanned }, 'ledger opened');
          metrics.ledgerLastSeq.set(spool.lastSeq);
          return async ({ unwinding }) => { if (!unwinding) await positions.flush(); };
        },
      },
      {
        name: 'ledger checkpoints',
        essential: true,
        async start() {
          checkpointer = await openCheckpointer(config, spool, logger);
          // Normally "final checkpoint" below has closed it already (close is idempotent).
          return async () => { await checkpointer.close({ lastSeq: spool.lastSeq }); };
        },
      },
      {
        name: 'shipping to ClickHouse',
        async start() {
          shipping = await startShipping(config, spool, metrics, logger, ledgerId);
          // Stops after the final checkpoint, so it ships what it can in a few seconds, that checkpoint included.
          return async () => { await shipping?.stop(); };
        },
      },
      {
        name: 'checkpoint publishing',
        async start() {
          // Signed checkpoints also go to NATS JetStream when nats.url is set (async; never blocks the ledger).
          publisher = startCheckpointPublishing(config, checkpointer, metrics, logger);
          // The final checkpoint too, if NATS is up (no waiting when a later part failed to start).
          return async ({ unwinding }) => { await publisher?.stop({ drainMs: unwinding ? 0 : 3000 }); };
        },
      },
      {
        name: 'final checkpoint',
        essential: true,
        async start() {
          // Nothing to start: at stop, once every writer has stopped, the spool closes and the last checkpoint is signed.
          return async ({ unwinding }) => {
            await spool.close();
            const cp = await checkpointer.close({ lastSeq: spool.lastSeq });
            if (cp && !unwinding) logger.info({ size: cp.size, root: cp.root }, 'final ledger checkpoint');
          };
        },
      },
      {
        name: 'event pipeline',
        async start() {
          traces = createTraceExport(config.tracing);
          const spans = new EventSpanBuilder(traces.processor, traces.resource);
          redactor = new Redactor({ paths: config.redaction.paths, maxDepth: config.redaction.maxDepth });
          pipeline = new EventPipeline({ spool, metrics, spans, positions, terminals: restored.terminals, logger, checkpointer, redactor }, restored.positions);
          ingest = new EventIngest({
            record: async (events) => { await pipeline.recordHookEvents(events); temporalIndex.addAll(events); },
            ids: recentIds, metrics, redactor,
            inputLimits: { maxInputBytes: config.redaction.maxInputBytes },
            // A hook's Temporal start/end/outcome that history already gave the ledger is not appended twice.
            superseded: (ev) => temporalIndex.heldFromHistory(ev),
          });
          return async () => {
            await traces.processor.shutdown().catch((err) => logger.warn({ err: (err as Error).message }, 'span export at shutdown failed'));
          };
        },
      },
      {
        name: 'policies',
        async start() {
          // Policies see every durable event and write their decisions through the same pipeline.
          policies = await startPolicies(config, (events) => pipeline.record(events), metrics, logger, (queue) => [...(celery?.translator.namesByQueue.get(queue) ?? [])]);
          pipeline.policies = policies?.engine ?? null;
          // Decisions in flight are recorded before the spool closes.
          return async () => { await policies?.stop(); };
        },
      },
      {
        name: 'BullMQ collector (Redis connections)',
        async start() {
          // Fleet with shipping: the shared positions advance as the ledger reaches the store, so a survivor never skips what only this spool holds.
          collector = newCollector(config, { redactor, restored, metrics, logger, sink: (batches) => pipeline.handle(batches), advanceWhenShipped: shipping !== null });
          if (shipping) shipping.onCommitted((seq) => collector.shipped(seq));
          // Normally "BullMQ collector" below has stopped it already (stop is idempotent).
          return () => collector.stop();
        },
      },
      {
        name: 'HTTP (/metrics, /healthz, /readyz, /v1)',
        async start() {
          const readiness = (): Readiness => {
            const reasons: string[] = [];
            if (!collectorState.running) reasons.push('collector starting (waiting for Redis)');
            else if (!collector.connected) reasons.push(`redis not connected (${config.redis.url.replace(/\/\/[^@]*@/, '//***@')})`);
            reasons.push(...(shipping?.problems() ?? []));
            return { ready: reasons.length === 0, reasons };
          };
          const api = new ComplianceApi({
            ...config.api,
            redactor,
            record: (events) => pipeline.record(events),
            ingest: (events, from) => ingest.ingest(events, from),
            onInvalidEvents: (n) => ingest.invalid('http', n),
            onRefused: (cause) => metrics.apiRefused.inc({ cause }),
            store: shipping?.store ?? null,
            breakers: policies?.admin ?? null,
            reader: {
              // Join keys are recorded redacted (redactJoinKey): a reader asking with the raw key still finds them.
              events: (filter) => queryLedger(config.dataDir, {
                ...filter,
                correlationId: filter.correlationId === undefined ? undefined : redactJoinKey(filter.correlationId, redactor),
                jobId: filter.jobId === undefined ? undefined : redactJoinKey(filter.jobId, redactor),
                workflowId: filter.workflowId === undefined ? undefined : redactJoinKey(filter.workflowId, redactor),
                toSeq: spool.lastSeq,
              }),
              lineage: (cid) => lineage(config.dataDir, redactJoinKey(cid, redactor)),
              verify: async () => ({
                ...(await verifyLedger(config.dataDir)),
                checkpoints: await verifyCheckpoints(config.dataDir, createPublicKey(await readFile(keyPaths(config.dataDir).publicFile))),
              }),
              proof: (eventId) => buildInclusionProof(config.dataDir, eventId),
              checkpoint: async () => {
                const lines = (await readCheckpointFile(checkpointsPath(config.dataDir))).lines;
                return { checkpoint: lines[lines.length - 1]?.checkpoint ?? null, checkpoints: lines.length, self_verify: selfVerify?.last ?? null };
              },
            },
            console: { traceUrlTemplate: config.ui.traceUrlTemplate ?? null, store: !!shipping?.store, breakers: !!policies },
            overview: () => overviewOf(metrics),
          });
          const { host, port } = parseHostPort(config.metrics.addr);
          const ui = config.ui.enabled ? uiFiles() : null;
          http = await startHttpServer({ host, port, metrics, readiness, api, ui });
          logger.info({ url: http.url, tracing: traces.endpoint ?? 'off' }, 'serving /metrics, /healthz, /readyz');
          // The summary of refused requests is written before the spool closes.
          return async () => { await http.close(); await api.close(); };
        },
      },
      {
        name: 'ledger self-verify',
        async start() {
          // Periodic self-verify of the ledger (ledger.verifyIntervalMs): warden_ledger_verify_ok and a ledger.verified event.
          const verifier = new LedgerSelfVerifier({
            dataDir: config.dataDir, intervalMs: config.ledger.verifyIntervalMs, fullEvery: config.ledger.verifyFullEvery,
            metrics, record: (events) => pipeline.record(events), lastSeq: () => spool.lastSeq, logger,
          }).start();
          selfVerify = verifier;
          return () => verifier.stop();
        },
      },
      {
        name: 'NATS ingest',
        async start() {
          // Hook events from NATS JetStream (nats.url set): the spool is open, so acks can follow appends.
          natsIngest = startNatsIngest(config, ingest, logger);
          // The batch in hand is appended and acked before the spool closes.
          return async () => { await natsIngest?.stop(); };
        },
      },
      {
        name: 'Celery collector',
        async start() {
          // Task events from the Celery broker (celery.brokerUrl set); outcomes missed are reconciled from the result backend.
          celery = newCeleryCollector(config, { record: (events) => pipeline.recordHookEvents(events), ids: recentIds, index: celeryIndex, redactor, metrics, logger });
          if (!celery) return;
          const c = celery;
          await c.start();
          logger.info({ durable: c.durable, resultBackend: !!config.celery.resultBackend }, 'celery collector started');
          // Events received are made durable before the spool closes.
          return () => c.stop();
        },
      },
      {
        name: 'BullMQ collector',
        async start() {
          // Redis may be down at start: keep retrying in the background, ready once it is reachable.
          collectorState.starting = collector.start().then(
            () => { collectorState.running = true; logger.info({ queues: collector.queues }, 'collector started'); },
            (err) => logger.error({ err: (err as Error).message }, 'collector failed to start'),
          );
          // Graceful: the batch in flight is made durable and its positions saved before the spool closes.
          return async () => {
            await collector.stop();
            await collectorState.starting;
          };
        },
      },
      {
        name: 'Temporal collector',
        async start() {
          if (!config.temporal.address) return;
          // Closed runs' histories: what the ledger lacks is appended through ingest, like hook events (metrics, spans, policies).
          const t = config.temporal;
          const c = new TemporalCollector({
            address: t.address!, namespaces: t.namespaces, dataDir: config.dataDir, pollIntervalMs: t.pollIntervalMs, pageSize: t.pageSize,
            settleMs: t.settleMs, maxRunsPerScan: t.maxRunsPerScan, redactor,
            inputLimits: { ...DEFAULT_INPUT_LIMITS, maxInputBytes: config.redaction.maxInputBytes },
            sink: async (events) => { await ingest.ingest(events, { transport: 'history', via: null }, (ev) => temporalIndex.has(ev)); },
            observer: {
              onError: (where, err) => {
                metrics.collectorErrors.inc({ where: 'temporal' });
                logger.warn({ where, err: err.message }, 'temporal collector error (retrying)');
              },
              onGap: (ev) => {
                metrics.gaps.inc({ queue: ev.queue ?? String(ev.attrs.namespace ?? '') });
                logger.warn({ gap: ev.attrs, workflowId: ev.workflow_id, runId: ev.run_id }, ev.reason ?? 'temporal history gap');
              },
            },
          });
          await c.start();
          temporal = c;
          logger.info({ address: t.address, namespaces: t.namespaces }, 'temporal collector started');
          // The batch in hand is appended and checkpointed before the spool closes.
          return () => c.stop();
        },
      },
    ];

    const running = await startParts(parts, {
      // SIGTERM ends within this, even when Redis, NATS or ClickHouse vanished: a part still waiting on one
      // is left behind, and the essential parts (spool, checkpoints, positions) still close.
      stopTimeoutMs: config.shutdownTimeoutMs,
      onStopError: (part, err) => logger.error({ part, err: (err as Error).message }, 'stopping a part of the sidecar failed'),
    });
    return new Sidecar(
      { config, spool, metrics, collector, http, checkpointer, shipping, checkpointPublisher: publisher, selfVerify, natsIngest, policies, temporal },
      collectorState, running, logger,
    );
  }

  /** Graceful: stops the parts in reverse start order (see the list in start). */
  async stop(): Promise<void> {
    await this.parts.stop();
    this.logger.info({ lastSeq: this.spool.lastSeq }, 'stopped');
  }
}

function newCollector(
  config: WardenConfig,
  o: { redactor: Redactor; restored: Awaited<ReturnType<PositionStore['restore']>>; metrics: WardenMetrics; logger: Logger; sink: BullMQCollectorOptions['sink']; advanceWhenShipped: boolean },
): BullMQCollector {
  const { restored, metrics, logger } = o;
  const collector: BullMQCollector = new BullMQCollector({
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
    // Fleet mode: only the queues this sidecar holds a lease on (WARDEN_FLEET=1; see collectors/bullmq/lease.ts).
    fleet: config.fleet.enabled
      ? { memberId: config.fleet.memberId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`, leaseMs: config.fleet.leaseMs, advanceWhenShipped: o.advanceWhenShipped }
      : undefined,
    redactor: o.redactor,
    inputLimits: { ...DEFAULT_INPUT_LIMITS, maxInputBytes: config.redaction.maxInputBytes },
    positions: restored.positions,
    sink: o.sink,
    // The index holds job IDs as recorded (redacted: redactJoinKey leaves plain IDs unchanged).
    hasTerminal: (q, id) => restored.terminals.has(q, redactJoinKey(id, o.redactor)),
    seedJob: (q, id) => restored.jobStates.get(q, redactJoinKey(id, o.redactor)),
    observer: {
      onQueue: (queue) => logger.info({ queue }, 'watching queue'),
      onLease: (queue, what, info) => {
        metrics.fleetLeaseChanges.inc({ change: what });
        if (what === 'takeover') metrics.fleetTakeovers.inc({ queue });
        if (info.members !== undefined) metrics.fleetMembers.set(info.members);
        metrics.fleetLeasesHeld.set(collector.leases?.heldQueues.length ?? 0);
        const log = what === 'lost' ? logger.warn.bind(logger) : logger.info.bind(logger);
        log({ queue, lease: what, ...info }, `fleet lease ${what}`);
      },
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
  return collector;
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
    minGapMs: config.ledger.checkpointMinGapMs,
    lastSeq: spool.lastSeq,
    onError: (err, where) => logger.warn({ where, err: err.message }, 'ledger checkpoint failed (retrying)'),
  });
  const { readAtOpen, last } = checkpointer.stats();
  logger.info({ keyId: key.keyId, lastCheckpoint: last?.size ?? 0, readBack: readAtOpen }, 'ledger checkpoints resumed');
  return checkpointer;
}
