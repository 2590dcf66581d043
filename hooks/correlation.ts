/**
 * The correlation ID of the work in progress, shared by every in-process hook (warden/bullmq and
 * warden/temporal): a BullMQ processor that starts a Temporal workflow hands its ID on without the
 * user passing it.
 *
 * It lives in the OpenTelemetry context when the app registered a context manager (one scope entry
 * per job, with the trace context), else in Warden's own AsyncLocalStorage. The second store is
 * used only when needed: an AsyncLocalStorage, once entered, makes every async resource in the
 * process copy its store (Node 20), a cost on all of the worker's work, not just Warden's. The key
 * and the fallback store are on globalThis so two copies of Warden in one process share one scope.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { context, propagation, type Context } from '@opentelemetry/api';

interface WardenScope { correlationId: string }

const KEY = Symbol.for('warden.correlation.scope');
const g = globalThis as unknown as Record<symbol, AsyncLocalStorage<WardenScope> | undefined>;
const scope = (): AsyncLocalStorage<WardenScope> => (g[KEY] ??= new AsyncLocalStorage<WardenScope>());

/** The OpenTelemetry context key of the correlation ID (a registered symbol: shared by every copy). */
const CONTEXT_KEY = Symbol.for('warden.correlation_id');

/** Baggage key that also carries the correlation ID across process boundaries (W3C baggage). */
export const CORRELATION_BAGGAGE_KEY = 'warden.correlation_id';

/**
 * Runs `fn` in `ctx` (an OpenTelemetry context, e.g. with the attempt's span) with a correlation ID
 * that work started inside it (jobs, workflows) will carry: one scope entry when a context manager
 * is registered, two when Warden's own store must hold the ID.
 */
export function runWithCorrelation<T>(ctx: Context, correlationId: string, fn: () => T): T {
  const inner = ctx.setValue(CONTEXT_KEY, correlationId);
  return context.with(inner, () => (context.active() === inner ? fn() : scope().run({ correlationId }, fn)));
}

/** Runs `fn` with a correlation ID that work started inside it (jobs, workflows) will carry. */
export function withCorrelation<T>(correlationId: string, fn: () => T): T {
  return runWithCorrelation(context.active(), correlationId, fn);
}

/** The correlation ID in scope (a wrapped processor, an activity, or withCorrelation), if any. */
export function currentCorrelationId(): string | undefined {
  const active = context.active();
  return (active.getValue(CONTEXT_KEY) as string | undefined) ?? g[KEY]?.getStore()?.correlationId
    ?? propagation.getBaggage(active)?.getEntry(CORRELATION_BAGGAGE_KEY)?.value;
}
