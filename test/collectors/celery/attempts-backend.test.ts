// The collector's attempt check against Celery's Redis result backend (a private Redis; the events come
// from a source the test drives, the backend keys are written as Celery 5.7 writes them with
// result_extended). A terminal record whose attempt the translator could not be sure of takes
// Celery's count from a terminal state, and its span follows; a non-terminal state never moves it.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CeleryCollector } from '../../../collectors/celery/collector.js';
import type { CeleryEvent } from '../../../collectors/celery/envelope.js';
import { celeryTaskSpanId } from '../../../collectors/celery/ids.js';
import type { CeleryEventSource, SourceHandlers } from '../../../collectors/celery/source.js';
import type { PriorTask } from '../../../collectors/celery/translate.js';
import type { WardenEvent } from '../../../core/event.js';
import { DEFAULT_INPUT_LIMITS } from '../../../core/input.js';
import { Redactor } from '../../../core/redact.js';
import { startRedis, type RedisServer } from '../../harness/index.js';

let redis: RedisServer;
let backend: Redis;

beforeAll(async () => {
  redis = await startRedis();
  backend = new Redis(`${redis.url}/1`);
}, 60_000);

afterAll(async () => {
  backend?.disconnect();
  await redis?.stop();
});

/** A non-durable source (as Redis pub/sub) whose events the test pushes. */
class DrivenSource implements CeleryEventSource {
  readonly durable = false;
  readonly connected = true;
  h: SourceHandlers | null = null;
  async start(h: SourceHandlers): Promise<void> { this.h = h; }
  async stop(): Promise<void> { this.h = null; }
  push(events: CeleryEvent[]): Promise<void> { return this.h!.events(events); }
}

function collector(source: DrivenSource, sunk: WardenEvent[], prior: Map<string, PriorTask>, onGap?: (ev: WardenEvent) => void): CeleryCollector {
  return new CeleryCollector({
    observer: { onGap },
    brokerUrl: `${redis.url}/0`, resultBackend: `${redis.url}/1`, metadata: {}, redactor: new Redactor(), inputLimits: DEFAULT_INPUT_LIMITS,
    reconcileIntervalMs: 3_600_000, reconcileGraceMs: 1000, lastSeenMs: null, hasTerminal: () => false,
    prior: (id) => prior.get(id), sink: async (evs) => { sunk.push(...evs); }, source,
  });
}

const meta = (id: string, status: string, retries: number) => JSON.stringify({
  status, result: status === 'SUCCESS' ? 1 : { exc_type: 'ValueError', exc_message: ['flaky'], exc_module: 'builtins' }, traceback: null, children: [],
  date_done: new Date().toISOString().replace('Z', '+00:00'), task_id: id, name: 'tasks.flaky', args: [], kwargs: {}, worker: 'w1@host', retries, queue: 'q1',
});

it('a resumed task\'s terminal record takes its attempt (and span) from the result backend\'s terminal state, not the translator\'s guess', async () => {
  const sunk: WardenEvent[] = [];
  const source = new DrivenSource();
  // The ledger holds attempt 1 started; the sidecar was away while attempt 1 failed and attempt 2 started.
  const prior = new Map<string, PriorTask>([['t-ok', { queue: 'q1', name: 'tasks.flaky', added: true, started: new Map([[1, 1000]]), failed: new Set(), recorded: new Map() }]]);
  const c = collector(source, sunk, prior);
  await c.start();
  try {
    await backend.set('celery-task-meta-t-ok', meta('t-ok', 'SUCCESS', 1));
    await source.push([{ type: 'task-succeeded', uuid: 't-ok', hostname: 'w1@host', timestamp: Date.now() / 1000, clock: 9, runtime: 0.05, result: '1' }]);
    const done = sunk.find((e) => e.job_id === 't-ok')!;
    expect(done.kind).toBe('job.completed');
    expect(done.attempt).toBe(2);
    expect(done.attrs.retries).toBe(1);
    expect(done.attrs.attempt_source).toBe('result_backend');
    expect(done.attrs.attempt_inferred).toBeUndefined();
    expect(done.span_id).toBe(celeryTaskSpanId('t-ok', 1));
  } finally {
    await c.stop();
  }
});

it('a terminal record is not moved by a state that is not terminal, and keeps saying its attempt is inferred', async () => {
  const sunk: WardenEvent[] = [];
  const source = new DrivenSource();
  const prior = new Map<string, PriorTask>([['t-odd', { queue: 'q1', name: 'tasks.flaky', added: true, started: new Map([[1, 1000]]), failed: new Set(), recorded: new Map() }]]);
  const c = collector(source, sunk, prior);
  await c.start();
  try {
    await backend.set('celery-task-meta-t-odd', meta('t-odd', 'RETRY', 3));
    await source.push([{ type: 'task-failed', uuid: 't-odd', hostname: 'w1@host', timestamp: Date.now() / 1000, clock: 9, exception: "ValueError('flaky')" }]);
    const done = sunk.find((e) => e.job_id === 't-odd')!;
    expect(done.kind).toBe('job.failed');
    expect(done.attempt).toBe(1);
    expect(done.attrs.attempt_inferred).toBe(true);
    expect(done.span_id).toBe(celeryTaskSpanId('t-odd', 0));
  } finally {
    await c.stop();
  }
});

it('a gap record is redacted where it is made: the logged reason never holds the worker hostname it names', async () => {
  const sunk: WardenEvent[] = [];
  const logged: WardenEvent[] = [];
  const source = new DrivenSource();
  const c = collector(source, sunk, new Map(), (ev) => logged.push(ev));
  await c.start();
  try {
    const host = 'worker.alice@example.com';
    await source.push([{ type: 'worker-online', hostname: host, timestamp: Date.now() / 1000, clock: 50 }]);
    await source.push([{ type: 'worker-online', hostname: host, timestamp: Date.now() / 1000, clock: 2 }]); // restarted without going offline
    await c.idle();
    expect(logged).toHaveLength(1);
    expect(logged[0].reason).toContain('restarted without going offline');
    expect(logged[0].reason).not.toContain('alice@example.com');
    expect(sunk.find((e) => e.kind === 'collector.gap')!.reason).toBe(logged[0].reason);
  } finally {
    await c.stop();
  }
});
