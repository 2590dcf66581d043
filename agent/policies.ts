/**
 * Wires the policy engine into the sidecar: loads (and watches) the policy file, gives the engine
 * BullMQ queue actions and, when nats.url is set, the NATS KV breaker publisher, and keeps the
 * breaker / retry / drift gauges.
 */
import type { Logger } from 'pino';
import {
  BullMQQueueActions, CeleryQueueActions, controlChannelFor, KvBreakerPublisher, loadPolicyFile, PolicyEngine, PolicyFileWatcher, type BreakerState, type ForceMode, type ScopeExplanation,
} from '../policies/index.js';
import type { BreakerScope } from '../core/breakers.js';
import { Redis } from 'ioredis';
import type { WardenEvent } from '../core/event.js';
import { WardenError } from '../core/errors.js';
import { natsServers, type WardenConfig } from './config.js';
import type { WardenMetrics } from './metrics.js';

const PHASE_VALUE = { closed: 0, half_open: 1, open: 2 } as const;

/** What the HTTP API needs to list and force breakers. */
export interface BreakerAdmin {
  list(): BreakerState[];
  force(key: string, mode: ForceMode, actor: string, policy?: string, via?: string, note?: string): Promise<BreakerState[]>;
  /** Window counts, budget, baseline and the signal closest to tripping, per policy covering the scope. */
  explain(key: string): ScopeExplanation[];
}

export interface RunningPolicies {
  engine: PolicyEngine;
  admin: BreakerAdmin;
  stop(): Promise<void>;
}

/** Null when no policy file is configured. Throws PolicyFileError (naming the keys) for a bad file at start. */
export async function startPolicies(
  config: WardenConfig, record: (events: WardenEvent[]) => Promise<void>, metrics: WardenMetrics, logger: Logger,
  /** Task names seen on a Celery queue (its rate-limit breakers act per task name). */
  celeryTasks: (queue: string) => string[] = () => [],
): Promise<RunningPolicies | null> {
  const file = config.policies.file;
  if (!file) return null;
  const loaded = loadPolicyFile(file);
  const queues = new BullMQQueueActions({ redisUrl: config.redis.url, prefix: config.bullmq.prefix });
  // Celery breakers act through the broker's own control channel (the pidbox over Redis or AMQP).
  const celeryBroker = config.celery.brokerUrl ?? null;
  const celery = celeryBroker
    ? new CeleryQueueActions({
      control: controlChannelFor(celeryBroker), tasksOf: celeryTasks, reassertMs: config.celery.controlReassertMs,
      onError: (err) => logger.warn({ err: err.message }, 'celery control command failed (re-sent on the next round)'),
    })
    : null;
  const kv = config.nats.url
    ? new KvBreakerPublisher({ url: natsServers(config.nats.url), replicas: config.nats.replicas, onError: (err) => logger.warn({ err: err.message }, 'publishing breaker state to NATS KV failed (retrying)') })
    : null;
  const engine = await PolicyEngine.open({
    dataDir: config.dataDir,
    policies: loaded,
    record,
    queues,
    celery,
    kv,
    dryRun: config.policies.dryRun,
    // The sidecar's BullMQ collector reads every queue under the prefix (or the configured list) from
    // the same Redis the breakers act on: those queues are governed by what it read, never by claims.
    collected: collectedScopes(config),
    logger,
    observer: {
      breakerState: (policy, scope, phase) => metrics.breakerState.set({ policy, scope }, PHASE_VALUE[phase]),
      retryRatio: (policy, scope, ratio, budget) => {
        metrics.retryRatio.set({ policy, scope }, ratio);
        metrics.retryBudgetRatio.set({ policy, scope }, budget);
      },
      driftScore: (model, metric, method, score) => metrics.driftScore.set({ model, metric, method }, score),
    },
  });
  engine.start(config.policies.evaluateIntervalMs);
  const watcher = new PolicyFileWatcher(file, loaded, {
    loaded: (next) => {
      logger.info({ file, digest: next.digest, policies: next.policies.map((p) => `${p.name}@${p.version}`) }, 'policy file reloaded');
      engine.setPolicies(next);
    },
    rejected: (f, problems) => engine.reloadRejected(f, problems),
  }, config.policies.evaluateIntervalMs);
  logger.info({ file, digest: loaded.digest, policies: loaded.policies.map((p) => `${p.name}@${p.version}`), dryRun: config.policies.dryRun }, 'policies loaded');
  return {
    engine,
    admin: {
      list: () => engine.list(),
      explain: (key) => engine.explain(key),
      force: async (key, mode, actor, policy, via, note) => {
        // A BullMQ queue nobody created is refused before anything touches Redis (forcing it would create its keys).
        if (!engine.list().some((b) => b.key === key)) await requireBullmqQueue(key, config);
        return engine.force(key, mode, actor, policy, via, note);
      },
    },
    async stop() {
      watcher.stop();
      await engine.stop();
      await kv?.stop();
      await queues.close();
      await celery?.close();
    },
  };
}

/**
 * Scopes the sidecar collects itself: its BullMQ collector reads every queue under the prefix (or the
 * configured list) from the Redis the breakers act on, and its Celery collector every task event of
 * its broker, so claims about them never move a breaker.
 * The live engine and `warden policy backtest` use the same answer.
 */
export function collectedScopes(config: WardenConfig): (scope: BreakerScope) => boolean {
  const celery = Boolean(config.celery.brokerUrl);
  return (scope) =>
    (scope.system === 'bullmq' && (config.bullmq.queues.length === 0 || config.bullmq.queues.includes(scope.name))) ||
    // The Celery collector reads every task event of the broker it is given.
    (scope.system === 'celery' && celery);
}

/**
 * For a `bullmq.queue.<name>` breaker key: the queue must exist in Redis (any of BullMQ's keys for it),
 * else WARDEN_NOT_FOUND (404); Redis not answering is WARDEN_UNAVAILABLE (503). Other keys pass.
 */
async function requireBullmqQueue(key: string, config: WardenConfig): Promise<void> {
  const m = /^bullmq\.queue\.(.+)$/.exec(key);
  if (!m) return;
  const name = m[1].replace(/=([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  const base = `${config.bullmq.prefix}:${name}`;
  const redis = new Redis(config.redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000, enableOfflineQueue: false, retryStrategy: () => null });
  redis.on('error', () => undefined);
  let n: number;
  try {
    await redis.connect();
    n = await redis.exists(`${base}:meta`, `${base}:id`, `${base}:events`, `${base}:wait`, `${base}:active`, `${base}:completed`, `${base}:failed`, `${base}:delayed`, `${base}:paused`);
  } catch (err) {
    throw new WardenError('WARDEN_UNAVAILABLE', `cannot check that BullMQ queue "${name}" exists: Redis did not answer (${(err as Error).message})`);
  } finally {
    redis.disconnect();
  }
  if (n === 0) throw new WardenError('WARDEN_NOT_FOUND', `no BullMQ queue "${name}" under prefix "${config.bullmq.prefix}": nothing to force (${key})`);
}
