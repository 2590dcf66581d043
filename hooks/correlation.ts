/**
 * The correlation ID of the work in progress, shared by every in-process hook (warden/bullmq and
 * warden/temporal): a BullMQ processor that starts a Temporal workflow hands its ID on without the
 * user passing it. Kept on globalThis so two copies of Warden in one process still share one scope.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { context, propagation } from '@opentelemetry/api';

interface WardenScope { correlationId: string }

const KEY = Symbol.for('warden.correlation.scope');
const g = globalThis as unknown as Record<symbol, AsyncLocalStorage<WardenScope> | undefined>;
const scope: AsyncLocalStorage<WardenScope> = (g[KEY] ??= new AsyncLocalStorage<WardenScope>());

/** Baggage key that also carries the correlation ID across process boundaries (W3C baggage). */
export const CORRELATION_BAGGAGE_KEY = 'warden.correlation_id';

/** Runs `fn` with a correlation ID that work started inside it (jobs, workflows) will carry. */
export function withCorrelation<T>(correlationId: string, fn: () => T): T {
  return scope.run({ correlationId }, fn);
}

/** The correlation ID in scope (a wrapped processor, an activity, or withCorrelation), if any. */
export function currentCorrelationId(): string | undefined {
  return scope.getStore()?.correlationId ?? propagation.getBaggage(context.active())?.getEntry(CORRELATION_BAGGAGE_KEY)?.value;
}
