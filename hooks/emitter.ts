/**
 * How in-process hooks (warden/bullmq, warden/temporal) hand events to the sidecar. A hook calls
 * `hookEmitter().emit(event)`: it must never block, throw or fail the job or activity. The transport
 * behind it (NATS JetStream, else HTTP ingest; see hooks/transport/) is installed once per
 * process with `setHookEmitter`; until then events go nowhere, and are counted as such.
 */
import type { WardenEvent } from '../core/event.js';

export interface HookEmitter {
  /** Queues the event for delivery; returns at once. */
  emit(event: WardenEvent): void;
}

/** Default before a transport is configured: drops, but counts, so a missing setup is visible. */
export class UnconfiguredEmitter implements HookEmitter {
  dropped = 0;
  emit(): void {
    this.dropped++;
  }
}

const KEY = Symbol.for('warden.hook.emitter');
const g = globalThis as unknown as Record<symbol, HookEmitter | undefined>;

export function hookEmitter(): HookEmitter {
  return (g[KEY] ??= new UnconfiguredEmitter());
}

/** Installs the process-wide emitter; returns the previous one (tests restore it). */
export function setHookEmitter(emitter: HookEmitter): HookEmitter {
  const prev = hookEmitter();
  g[KEY] = emitter;
  return prev;
}
