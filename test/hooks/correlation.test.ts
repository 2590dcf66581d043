/**
 * The correlation scope shared by the hooks: in the OpenTelemetry context when the app registered a
 * context manager (then Warden's own AsyncLocalStorage is never entered: once entered, it costs every
 * async resource in the process a store copy), in that store otherwise. Either way the innermost
 * scope wins and the ID survives awaits.
 */
import { context, ROOT_CONTEXT } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { afterAll, describe, expect, it } from 'vitest';
import { currentCorrelationId, runWithCorrelation, withCorrelation } from '../../hooks/correlation.js';

const FALLBACK = Symbol.for('warden.correlation.scope');
const tick = () => new Promise((r) => setTimeout(r, 1));

async function nested(): Promise<(string | undefined)[]> {
  const seen: (string | undefined)[] = [currentCorrelationId()];
  await withCorrelation('outer', async () => {
    await tick();
    seen.push(currentCorrelationId());
    await withCorrelation('inner', async () => { await tick(); seen.push(currentCorrelationId()); });
    seen.push(currentCorrelationId());
  });
  seen.push(currentCorrelationId());
  return seen;
}

afterAll(() => { context.disable(); });

describe('correlation scope', () => {
  it('with a registered context manager: one scope entry in the OpenTelemetry context, Warden\'s own store never entered', async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    expect(await nested()).toEqual([undefined, 'outer', 'inner', 'outer', undefined]);
    // runWithCorrelation puts the ID into the given context (the processor's attempt context), as one entry.
    const ctx = ROOT_CONTEXT.setValue(Symbol('attempt'), 1);
    const got = await runWithCorrelation(ctx, 'job-cid', async () => { await tick(); return currentCorrelationId(); });
    expect(got).toBe('job-cid');
    expect((globalThis as Record<symbol, unknown>)[FALLBACK]).toBeUndefined();
    context.disable();
  });

  it('without one (no OpenTelemetry SDK in the app): Warden\'s own store holds it, same answers', async () => {
    expect(await nested()).toEqual([undefined, 'outer', 'inner', 'outer', undefined]);
    expect((globalThis as Record<symbol, unknown>)[FALLBACK]).toBeDefined();
  });
});
