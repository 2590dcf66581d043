// Test harness: real Redis, NATS (JetStream), ClickHouse, Prometheus and Alertmanager servers, each
// started by the test on free loopback ports with a throwaway data dir, and stopped by PID.
export { freePort } from './ports.js';
export { tempDir, type TempDir } from './tmp.js';
export { ensureBinary, findBinary, MissingBinaryError, BinaryInstallError, DEBIAN_PACKAGES } from './binaries.js';
export {
  ManagedProcess,
  ProcessStartError,
  WaitTimeoutError,
  waitFor,
  sleep,
  pidExists,
  isAddressInUse,
  retryOnPortClash,
  type ManagedProcessOptions,
  type ExitInfo,
} from './process.js';
export { tcpExchange, httpGet } from './probe.js';
export type { ServerControl } from './server.js';
export { startRedis, redisPing, type RedisServer, type RedisOptions } from './redis.js';
export { startNats, startNatsCluster, natsInfo, type NatsServer, type NatsOptions, type NatsInfo, type NatsCluster, type NatsClusterNode } from './nats.js';
export { startClickHouse, ClickHouseQueryError, type ClickHouseServer, type ClickHouseOptions } from './clickhouse.js';
export {
  startPrometheus,
  startAlertmanager,
  promtool,
  PrometheusQueryError,
  type PrometheusServer,
  type PrometheusOptions,
  type PromSample,
  type PromSeries,
  type PromTarget,
  type PromtoolResult,
  type AlertmanagerServer,
  type AlertmanagerOptions,
} from './prometheus.js';
export { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './otlp.js';
export { sumMetric } from './metrics-text.js';
export { until } from './until.js';
export { ensurePyVenv, PY_PINS, PyVenvError, type PyVenv } from './pyvenv.js';
export { startTemporal, type TemporalServer, type TemporalOptions } from './temporal.js';
export { startRabbitMq, amqpReady, type RabbitMqServer, type RabbitMqOptions } from './rabbitmq.js';
