/**
 * remoteParent: the hooks build a carried bare traceparent's parent context from their own parse,
 * instead of running the propagator's extract over it. It must give the span context the W3C
 * propagator's extract gives for the same header, for every flags byte.
 */
import { ROOT_CONTEXT, trace, defaultTextMapGetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { describe, expect, it } from 'vitest';
import { remoteParent } from '../../hooks/trace-context.js';

describe('remoteParent', () => {
  it('gives what W3C extract gives for a bare traceparent, whatever its flags', () => {
    const w3c = new W3CTraceContextPropagator();
    const hex = (n: number) => n.toString(16).padStart(2, '0');
    for (let flags = 0; flags < 256; flags++) {
      const tp = `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-${hex(flags)}`;
      const want = trace.getSpanContext(w3c.extract(ROOT_CONTEXT, { traceparent: tp }, defaultTextMapGetter));
      const got = trace.getSpanContext(remoteParent(ROOT_CONTEXT, tp)!);
      expect(got, tp).toEqual(want);
    }
  });

  it('keeps what else the base context holds', () => {
    const key = Symbol('k');
    const base = ROOT_CONTEXT.setValue(key, 'v');
    const ctx = remoteParent(base, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')!;
    expect(ctx.getValue(key)).toBe('v');
    expect(trace.getSpanContext(ctx)?.isRemote).toBe(true);
  });

  it('names no parent for a traceparent that does not parse (the hooks then go on to extract or derive one)', () => {
    for (const tp of [undefined, '', '00-00000000000000000000000000000000-00f067aa0ba902b7-01', '01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x']) {
      expect(remoteParent(ROOT_CONTEXT, tp)).toBeUndefined();
    }
  });
});
