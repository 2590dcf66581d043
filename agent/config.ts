/**
 * The one place Warden's configuration is defined and validated. Sources, lowest priority first:
 * built-in defaults, a YAML file (`--config`), then environment variables. Every problem is reported
 * with the key that is wrong (`bullmq.batchSize: expected number`), never as a stack trace.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import type { MetadataPaths as CollectorMetadataPaths } from '../core/metadata-paths.js';
import { EVENT_SOURCES } from '../core/event.js';
import { isSensitiveKey } from '../core/redact.js';
import { ConfigError } from './errors.js';
import { SloList } from './slo-config.js';

const hostPort = z.string().regex(/^[^\s:]+:\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:9464')
  .refine((v) => Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'the port must be 0..65535');
const celeryPath = z.string().regex(/^(args|kwargs|result)(\.[^.\s]+)+$/, 'expected a path starting with args., kwargs. or result.');
const jsonPath = z.string().regex(/^(data|opts|returnvalue)(\.[^.\s]+)+$/, 'expected a path starting with data., opts. or returnvalue.');

// Validates the collectors' MetadataPaths shape (defined once, in core/metadata-paths.ts).
const MetadataPaths = z.strictObject({
  correlation_id: jsonPath.optional(),
  model: jsonPath.optional(),
  model_version: jsonPath.optional(),
  policy: jsonPath.optional(),
  policy_version: jsonPath.optional(),
  served_model: jsonPath.optional(),
  served_model_version: jsonPath.optional(),
}) satisfies z.ZodType<CollectorMetadataPaths>;

export const ROLES = ['compliance', 'admin', 'ingest'] as const;

/** Systems an ingest credential may be scoped to: every event source but the sidecar's own. */
export const INGEST_SYSTEMS = EVENT_SOURCES.filter((s) => s !== 'warden') as Exclude<(typeof EVENT_SOURCES)[number], 'warden'>[];

const ApiToken = z.strictObject({
  name: z.string().regex(/^[\w.-]{1,64}$/, 'expected a short name (letters, digits, . _ -)'),
  role: z.enum(ROLES),
  token: z.string().min(24, 'tokens must be at least 24 characters (use e.g. `openssl rand -hex 24`)'),
  /**
   * Ingest credentials only: what the credential may send events for. Absent (or an absent list): any
   * system, any queue. Events outside are refused with a 400 naming the scope.
   */
  scopes: z.strictObject({
    systems: z.array(z.enum(INGEST_SYSTEMS as [string, ...string[]])).min(1).optional(),
    /** BullMQ queues and Temporal task queues. */
    queues: z.array(z.string().min(1)).min(1).optional(),
  }).optional(),
});

export const ConfigSchema = z.strictObject({
  dataDir: z.string().min(1).default('./.warden'),
  /** SIGTERM to exit, whatever is unreachable at that moment (Redis, NATS, ClickHouse); the spool is closed within it. */
  shutdownTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
  redis: z.strictObject({
    url: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL').default('redis://127.0.0.1:6379'),
  }).prefault({}),
  bullmq: z.strictObject({
    prefix: z.string().min(1).default('bull'),
    /** Queues to watch; empty means every queue found under the prefix, including new ones. */
    queues: z.array(z.string().min(1)).default([]),
    discoverIntervalMs: z.number().int().min(100).default(5000),
    /** Stream entries read per queue per round trip. */
    batchSize: z.number().int().min(1).max(50_000).default(2000),
    blockMs: z.number().int().min(10).max(60_000).default(1000),
    /** Where a queue with no checkpoint starts: the oldest retained event, or only new ones. */
    startFrom: z.enum(['earliest', 'latest']).default('earliest'),
    /** JSON paths to model/policy metadata for producers that do not use warden/bullmq. */
    metadata: MetadataPaths.default({}),
    queueMetadata: z.record(z.string(), MetadataPaths).default({}),
    countsIntervalMs: z.number().int().min(100).default(5000),
    /** Numeric outputs for drift policies: metric name -> path in the job's return value (`score: returnvalue.eval.score`). */
    outputs: z.record(z.string().regex(/^[\w.-]{1,64}$/, 'expected a metric name (letters, digits, . _ -)'), z.string().regex(/^returnvalue(\.[^.\s]+)+$/, 'expected a path starting with returnvalue.')).default({}),
  }).prefault({}),
  /**
   * Fleet mode (collectors/bullmq/lease.ts): several sidecars on one Redis, each BullMQ queue collected
   * by one of them at a time under a lease in Redis; a dead holder's queues are taken over after leaseMs.
   */
  fleet: z.strictObject({
    enabled: z.boolean().default(false),
    /** A queue whose holder stopped renewing for this long is taken over by another sidecar (renewed every third of it). */
    leaseMs: z.number().int().min(1000).max(600_000).default(15_000),
    /** This sidecar's name in the fleet; unset: host, pid and a random suffix (unique per process). */
    memberId: z.string().regex(/^[\w.:-]{1,128}$/, 'expected a short name (letters, digits, . _ : -)').optional(),
  }).prefault({}),
  /** Celery (collectors/celery): task events from the broker, outcomes reconciled from the result backend. Unset brokerUrl: off. */
  celery: z.strictObject({
    brokerUrl: z.string().regex(/^(rediss?|amqps?|pyamqp):\/\//, 'expected a redis://, rediss:// or amqp:// URL').optional(),
    /** Redis result backend (`celery-task-meta-*`), where terminal states are reconciled from. */
    resultBackend: z.string().regex(/^rediss?:\/\//, 'expected a redis:// or rediss:// URL (only the Redis result backend is read)').optional(),
    /** Paths into a task's arguments (`kwargs.model_version`, `args.0`) or result (`result.model`, served_* only). */
    metadata: z.strictObject({
      correlation_id: celeryPath.optional(), model: celeryPath.optional(), model_version: celeryPath.optional(),
      policy: celeryPath.optional(), policy_version: celeryPath.optional(), served_model: celeryPath.optional(), served_model_version: celeryPath.optional(),
    }).default({}),
    /** How often the result backend is scanned for outcomes whose event never arrived. */
    reconcileIntervalMs: z.number().int().min(100).default(30_000),
    /** Tasks done less than this long ago are left to their live event. */
    reconcileGraceMs: z.number().int().min(0).default(5000),
    /** How often a breaker's pause or rate limit is re-sent to the workers (workers started since get it). */
    controlReassertMs: z.number().int().min(100).default(5000),
    /** AMQP brokers (RabbitMQ): the durable queue bound to `celeryev` that keeps events while the sidecar is away. */
    amqp: z.strictObject({
      /** Queue name (durable, bound to the `celeryev` topic exchange with `#`). One sidecar per queue. */
      queue: z.string().regex(/^[\w.:-]{1,200}$/, 'expected a queue name (letters, digits, . _ : -)').default('warden.celeryev'),
      /** `x-max-length`: the oldest event messages are dropped beyond this many (recorded as a gap). */
      maxLength: z.number().int().min(1).default(1_000_000),
      /** `x-message-ttl`: event messages older than this are dropped unread (recorded as a gap). */
      messageTtlMs: z.number().int().min(1000).default(86_400_000),
      /** Unacked messages in flight (each is acked once its events are durable in the ledger). */
      prefetch: z.number().int().min(1).max(10_000).default(256),
    }).prefault({}),
  }).prefault({}),
  policies: z.strictObject({
    /** The policy file (YAML); unset: no policies, no breakers. Reloaded when it changes. */
    file: z.string().min(1).optional(),
    /** How often breaker timers (open -> half-open) are evaluated and the file is checked for changes. */
    evaluateIntervalMs: z.number().int().min(50).max(60_000).default(1000),
    /** Every policy decides and records but does not act. */
    dryRun: z.boolean().default(false),
  }).prefault({}),
  redaction: z.strictObject({
    paths: z.array(z.string().min(1)).default([]),
    maxInputBytes: z.number().int().min(64).default(8192),
    maxDepth: z.number().int().min(1).max(256).default(32),
  }).prefault({}),
  ledger: z.strictObject({
    /**
     * This sidecar's chain in a shared store (every shipped row and checkpoint carries it). Unset: the
     * ID in <dataDir>/ledger-id, created on the first start (random 128 bits; see ledger/store/ledger-id.ts).
     */
    id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/, "expected 1-64 letters, digits, '.', '_', ':' or '-', starting with a letter or digit").optional(),
    segmentBytes: z.number().int().min(4096).default(64 * 1024 * 1024),
    groupCommitMs: z.number().min(0).max(1000).default(5),
    /** Ed25519 private key (PEM) that signs checkpoints; unset: <dataDir>/keys/ledger-ed25519.pem, generated on first start. */
    signingKeyFile: z.string().min(1).optional(),
    /** A signed checkpoint after this many records ... */
    checkpointEvery: z.number().int().min(1).default(1000),
    /** ... or this often while records arrived since the last one. */
    checkpointIntervalMs: z.number().int().min(10).default(10_000),
    /** A count-triggered checkpoint at least this long after the one before (at high rates: one per this, not one per checkpointEvery records). */
    checkpointMinGapMs: z.number().int().min(0).max(60_000).default(1000),
    /** The sidecar re-verifies its own ledger this often (incremental from the last verified seq); 0: never. */
    verifyIntervalMs: z.number().int().min(0).default(300_000),
    /** Every Nth self-verify re-reads the whole chain and checks the signed checkpoints. */
    verifyFullEvery: z.number().int().min(1).default(12),
  }).prefault({}),
  clickhouse: z.strictObject({
    /** auto: the server when `url` is set, else the embedded engine (chdb) in the data dir; off: no shipping. */
    mode: z.enum(['auto', 'server', 'embedded', 'off']).default('auto'),
    url: z.string().url().optional(),
    user: z.string().optional(),
    password: z.string().optional(),
    database: z.string().regex(/^\w+$/, 'expected a database name (letters, digits, _)').optional(),
    batchRecords: z.number().int().min(1).max(100_000).default(5000),
    flushIntervalMs: z.number().int().min(10).default(1000),
  }).prefault({}),
  nats: z.strictObject({
    /** NATS server URL; set: every signed ledger checkpoint is also published to JetStream. */
    url: z.string().regex(/^(nats|tls):\/\/[^\s,]+(,\s*(nats|tls):\/\/[^\s,]+)*$/, 'expected a nats:// or tls:// URL, or several of one cluster separated by commas').optional(),
    /** Subject the checkpoints are published on (stream WARDEN_CHECKPOINTS captures it). */
    checkpointSubject: z.string().regex(/^[^\s*>]+$/, 'expected a subject without wildcards').default('warden.ledger.checkpoints'),
    /** Hook events: the stream consumed (created if missing, subjects warden.events.>) and the durable consumer, shared by every sidecar that splits the work. */
    eventStream: z.string().regex(/^[\w-]+$/, 'expected a stream name (letters, digits, _ -)').default('WARDEN_EVENTS'),
    consumer: z.string().regex(/^[\w-]+$/, 'expected a consumer name (letters, digits, _ -)').default('warden-sidecar'),
    /**
     * JetStream replicas of the streams and the breaker KV bucket Warden creates (WARDEN_EVENTS,
     * WARDEN_CHECKPOINTS, the breakers bucket): 3 on a three-node cluster survives the loss of one node.
     * List every server of the cluster in nats.url (comma-separated).
     */
    replicas: z.number().int().min(1).max(5).default(1),
    /** Messages per batch appended to the spool (one fsync), and how long JetStream waits for the ack before redelivering. */
    batchSize: z.number().int().min(1).max(10_000).default(256),
    ackWaitMs: z.number().int().min(1000).default(30_000),
  }).prefault({}),
  /** The Temporal history collector (collectors/temporal); on when `address` is set. */
  temporal: z.strictObject({
    /** `host:port` of the Temporal frontend; unset: no Temporal collector. */
    address: z.string().regex(/^[^\s:/]+:\d{1,5}$/, 'expected host:port, e.g. 127.0.0.1:7233').optional(),
    namespaces: z.array(z.string().min(1)).min(1).default(['default']),
    /** How often closed runs are listed. */
    pollIntervalMs: z.number().int().min(100).default(10_000),
    /** Visibility and history page size; also the runs appended and checkpointed together. */
    pageSize: z.number().int().min(1).max(1000).default(100),
    /** Runs closed more recently than this wait for the next scan (their hook events may be in flight). */
    settleMs: z.number().int().min(0).default(30_000),
    /** Runs one scan lists at most (its window of close times is narrowed to fit). */
    maxRunsPerScan: z.number().int().min(1).default(10_000),
  }).prefault({}),
  ingest: z.strictObject({
    /** Event IDs remembered (from the spool's tail at start) to skip redelivered or resent hook events. */
    dedupeWindow: z.number().int().min(1000).default(100_000),
  }).prefault({}),
  metrics: z.strictObject({
    addr: hostPort.default('127.0.0.1:9464'),
    /** Series one metric family keeps; new label sets past it fold into a `__overflow__` series (counted). */
    maxSeriesPerFamily: z.number().int().min(10).max(1_000_000).default(1000),
  }).prefault({}),
  tracing: z.strictObject({
    /** OTLP/HTTP base URL; OTEL_EXPORTER_OTLP_ENDPOINT overrides. Unset: no export. */
    endpoint: z.string().url().optional(),
    serviceName: z.string().default('warden'),
  }).prefault({}),
  api: z.strictObject({
    /** Bearer tokens and their roles; with none, the /v1 API refuses every request. */
    tokens: z.array(ApiToken).default([]),
    maxBodyBytes: z.number().int().min(1024).default(1024 * 1024),
    maxUrlBytes: z.number().int().min(256).default(8192),
    ratePerMinute: z.number().int().min(1).default(600),
    /** Requests refused with 401 or 429 are counted, and summarized in one ledger record per cause this often. */
    refusedSummaryIntervalMs: z.number().int().min(100).default(60_000),
  }).prefault({}),
  /** The console served at /ui on the API's port (agent/api/routes-ui.ts; same tokens and roles as the API). */
  ui: z.strictObject({
    enabled: z.boolean().default(true),
    /** Link from a lineage to its trace in a trace UI: an http(s) URL with `{trace_id}`, e.g. `http://tempo:3200/trace/{trace_id}`. */
    traceUrlTemplate: z.string().regex(/^https?:\/\/\S*\{trace_id\}\S*$/, 'expected an http(s) URL containing {trace_id}, e.g. http://tempo:3200/trace/{trace_id}').optional(),
  }).prefault({}),
  /** Service level objectives; `warden slo generate` turns them into Prometheus rules (agent/slo.ts). */
  slos: SloList.default([]),
  log: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  }).prefault({}),
}).superRefine((c, ctx) => {
  // Keys that are valid alone but not together: checked here, so `warden config check` and `warden
  // start` refuse them before anything is opened, generated or created in the data directory.
  if (c.clickhouse.mode === 'server' && !c.clickhouse.url) {
    ctx.addIssue({ code: 'custom', path: ['clickhouse', 'url'], message: 'required when clickhouse.mode is "server" (set clickhouse.url or WARDEN_CLICKHOUSE_URL, or use mode auto, embedded or off)' });
  }
  // The API finds a caller by its token (the first match wins) and audits and rate-limits it by name.
  const names = new Map<string, number>();
  const tokens = new Map<string, number>();
  c.api.tokens.forEach((t, i) => {
    if (t.scopes && t.role !== 'ingest') ctx.addIssue({ code: 'custom', path: ['api', 'tokens', i, 'scopes'], message: `scopes apply to ingest tokens only (this one is ${t.role})` });
    const sameName = names.get(t.name);
    if (sameName !== undefined) ctx.addIssue({ code: 'custom', path: ['api', 'tokens', i, 'name'], message: `duplicate token name "${t.name}" (also api.tokens.${sameName}); names identify the caller in the ledger` });
    const sameToken = tokens.get(t.token);
    if (sameToken !== undefined) ctx.addIssue({ code: 'custom', path: ['api', 'tokens', i, 'token'], message: `the same token as api.tokens.${sameToken}; every token must be unique, or only the first one's role applies` });
    names.set(t.name, names.get(t.name) ?? i);
    tokens.set(t.token, tokens.get(t.token) ?? i);
  });
});

export type WardenConfig = z.infer<typeof ConfigSchema>;

/** Environment variable -> config key. Values are strings; numbers and lists are converted. */
export const ENV_VARS = {
  WARDEN_DATA_DIR: 'dataDir',
  WARDEN_SHUTDOWN_TIMEOUT_MS: 'shutdownTimeoutMs',
  WARDEN_REDIS_URL: 'redis.url',
  WARDEN_PREFIX: 'bullmq.prefix',
  WARDEN_QUEUES: 'bullmq.queues',
  WARDEN_METRICS_ADDR: 'metrics.addr',
  WARDEN_METRICS_MAX_SERIES: 'metrics.maxSeriesPerFamily',
  WARDEN_LOG_LEVEL: 'log.level',
  WARDEN_REDACT_PATHS: 'redaction.paths',
  WARDEN_CLICKHOUSE: 'clickhouse.mode',
  WARDEN_CLICKHOUSE_URL: 'clickhouse.url',
  WARDEN_CLICKHOUSE_USER: 'clickhouse.user',
  WARDEN_CLICKHOUSE_PASSWORD: 'clickhouse.password',
  WARDEN_CLICKHOUSE_DATABASE: 'clickhouse.database',
  WARDEN_SIGNING_KEY_FILE: 'ledger.signingKeyFile',
  WARDEN_LEDGER_ID: 'ledger.id',
  WARDEN_NATS_URL: 'nats.url',
  WARDEN_NATS_CONSUMER: 'nats.consumer',
  WARDEN_NATS_REPLICAS: 'nats.replicas',
  /** `1`/`true`: fleet mode on. */
  WARDEN_FLEET: 'fleet.enabled',
  WARDEN_FLEET_LEASE_MS: 'fleet.leaseMs',
  WARDEN_FLEET_MEMBER_ID: 'fleet.memberId',
  WARDEN_POLICY_FILE: 'policies.file',
  WARDEN_TEMPORAL_ADDRESS: 'temporal.address',
  /** Comma-separated. */
  WARDEN_TEMPORAL_NAMESPACES: 'temporal.namespaces',
  WARDEN_CELERY_BROKER_URL: 'celery.brokerUrl',
  WARDEN_CELERY_RESULT_BACKEND: 'celery.resultBackend',
  WARDEN_CELERY_AMQP_QUEUE: 'celery.amqp.queue',
  /** `name:role:token` entries, comma-separated; an ingest token may end in `:systems=a,b;queues=c,d`. */
  WARDEN_API_TOKENS: 'api.tokens',
  WARDEN_UI_TRACE_URL_TEMPLATE: 'ui.traceUrlTemplate',
  OTEL_EXPORTER_OTLP_ENDPOINT: 'tracing.endpoint',
  OTEL_SERVICE_NAME: 'tracing.serviceName',
} as const;

const LIST_KEYS = new Set(['bullmq.queues', 'redaction.paths', 'temporal.namespaces']);
/** Number-valued keys set from the environment: a number when the text is one, else left as text for the schema to name. */
const NUMBER_KEYS = new Set(['metrics.maxSeriesPerFamily', 'shutdownTimeoutMs', 'fleet.leaseMs', 'nats.replicas']);
/** Boolean-valued keys set from the environment: 1/true/yes and 0/false/no; anything else is left as text for the schema to name. */
const BOOLEAN_KEYS = new Set(['fleet.enabled']);

export interface LoadOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Highest priority, e.g. CLI flags such as --data-dir. */
  overrides?: Record<string, unknown>;
}

export function loadConfig(opts: LoadOptions = {}): WardenConfig {
  const env = opts.env ?? process.env;
  let raw: Record<string, unknown> = {};
  const sources: string[] = ['defaults'];
  if (opts.file) {
    raw = readConfigFile(opts.file);
    sources.push(opts.file);
  }
  for (const [name, key] of Object.entries(ENV_VARS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    setPath(raw, key, key === 'api.tokens' ? parseTokens(value)
      : LIST_KEYS.has(key) ? value.split(',').map((s) => s.trim()).filter(Boolean)
        : NUMBER_KEYS.has(key) && /^\d+$/.test(value.trim()) ? Number(value)
          : BOOLEAN_KEYS.has(key) && /^(1|true|yes|0|false|no)$/i.test(value.trim()) ? /^(1|true|yes)$/i.test(value.trim()) : value);
    sources.push(name);
  }
  for (const [key, value] of Object.entries(opts.overrides ?? {})) {
    if (value !== undefined) setPath(raw, key, value);
  }
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) {
    throw new ConfigError(sources.join(' + '), result.error.issues.map((i) => {
      const key = i.path.join('.') || '(top level)';
      const unknown = i.code === 'unrecognized_keys' ? `: unknown key(s) ${i.keys.join(', ')}` : `: ${i.message}`;
      return `${key}${unknown}`;
    }));
  }
  return result.data;
}

/**
 * `grafana:compliance:abc...,ci:ingest:def...` -> token objects (validated by the schema). An entry
 * may end in scopes, `ci:ingest:def...:systems=temporal;queues=claims,ocr`: the commas inside scopes
 * belong to the entry (a comma-separated piece without a ':' continues the entry before it), so queue
 * names with ':' or ',' need the YAML form (api.tokens[].scopes).
 */
export function parseTokens(value: string): unknown[] {
  const entries: string[] = [];
  for (const piece of value.split(',').map((s) => s.trim())) {
    if (!piece) continue;
    if (!piece.includes(':') && entries.length > 0) entries[entries.length - 1] += `,${piece}`;
    else entries.push(piece);
  }
  return entries.map((entry) => {
    const [name, role, ...rest] = entry.split(':');
    const last = rest[rest.length - 1] ?? '';
    if (rest.length < 2 || !/^(systems|queues)=/.test(last)) return { name, role, token: rest.join(':') };
    const scopes: Record<string, string[]> = {};
    for (const part of last.split(';')) {
      const eq = part.indexOf('=');
      const key = eq < 0 ? part : part.slice(0, eq);
      scopes[key] = (eq < 0 ? '' : part.slice(eq + 1)).split(',').map((s) => s.trim()).filter(Boolean);
    }
    return { name, role, token: rest.slice(0, -1).join(':'), scopes };
  });
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file: ${(err as Error).message}`]);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : '';
    throw new ConfigError(file, [`not valid YAML${where}: ${(err as Error).message.split('\n')[0]}`]);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(file, ['the top level must be a mapping of keys']);
  return doc as Record<string, unknown>;
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    if (typeof node[part] !== 'object' || node[part] === null) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]] = value;
}

/**
 * The configuration as it may be shown (`warden config check`, logs): API tokens, passwords and any
 * value under a secret-looking key become `***`, and URL userinfo (`scheme://user:pass@`) is masked.
 */
export function maskedConfig(cfg: WardenConfig): unknown {
  const walk = (v: unknown, key: string): unknown => {
    if (v === null || v === undefined) return v;
    if (typeof v === 'string') return isSensitiveKey(key) ? '***' : maskUrlUserinfo(v);
    if (Array.isArray(v)) return v.map((x) => walk(x, ''));
    if (typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, k)]));
    return v;
  };
  return walk(cfg, '');
}

/** `redis://user:secret@host` -> `redis://user:***@host`; `redis://secret@host` -> `redis://***@host`. */
export function maskUrlUserinfo(text: string): string {
  return text.replace(/\b([a-z][a-z0-9+.-]*:\/\/)([^/\s@]*)@/gi, (_m, scheme: string, info: string) => {
    const colon = info.indexOf(':');
    return colon < 0 ? `${scheme}***@` : `${scheme}${info.slice(0, colon)}:***@`;
  });
}

/** `nats.url` may list the servers of one cluster, comma-separated: the list the NATS client takes. */
export function natsServers(url: string): string[] {
  return url.split(',').map((u) => u.trim()).filter(Boolean);
}

/** Splits `host:port` into what node:http's listen() takes. */
export function parseHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)) };
}
