/** The policies surface the agent wires: load and watch the file, run the engine, act on queues and NATS KV. */
export { PolicyFileError, loadPolicyFile, parsePolicies, type LoadedPolicies } from './loader.js';
export { PolicyFileWatcher } from './reload.js';
export { PolicyEngine, BreakerRequestError, type ForceMode, type ScopeExplanation, type PolicyObserver, type EngineOptions } from './engine.js';
export { BullMQQueueActions, type QueueActions } from './act/bullmq.js';
export { AmqpControlChannel, CeleryQueueActions, controlChannelFor, RedisControlChannel, type ControlChannel } from './act/celery.js';
export { KvBreakerPublisher, type BreakerPublisher } from './act/kv.js';
export type { BreakerState } from './detect/breaker.js';
export { Decider, type Output as PolicyOutput } from './detect/decider.js';
export { Actuator } from './act/actuator.js';
export { PolicyStateError } from './act/state-file.js';
export { backtest, type BacktestDecision, type BacktestResult } from './backtest.js';
