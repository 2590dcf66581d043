/** Bounded stop (issue 12): a part that never stops is left behind at its share of the deadline; essential parts still stop. */
import { describe, expect, it } from 'vitest';
import { PartStopTimeoutError, startParts, type Part } from '../../agent/parts.js';
import { exitCodeOf, EXIT } from '../../core/errors.js';

describe('startParts with stopTimeoutMs', () => {
  it('leaves a hung part behind, stops the rest in order, and runs the essential parts', async () => {
    const log: string[] = [];
    const part = (name: string, o: { hang?: boolean; essential?: boolean } = {}): Part => ({
      name,
      essential: o.essential,
      async start() {
        return async () => {
          log.push(`stop ${name}`);
          if (o.hang) await new Promise(() => undefined); // a client waiting on a server that vanished
          log.push(`stopped ${name}`);
        };
      },
    });
    const errors: string[] = [];
    const running = await startParts(
      [part('spool', { essential: true }), part('shipping', { hang: true }), part('nats', { hang: true }), part('http')],
      { stopTimeoutMs: 400, onStopError: (name) => errors.push(name) },
    );
    const err = await running.stop().then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(PartStopTimeoutError);
    expect((err as PartStopTimeoutError).part).toBe('nats');
    expect(exitCodeOf(err)).toBe(EXIT.UNAVAILABLE);
    expect(errors).toEqual(['nats', 'shipping']);
    expect(log).toEqual(['stop http', 'stopped http', 'stop nats', 'stop shipping', 'stop spool', 'stopped spool']);
  });

  it('without a deadline a slow stop is awaited', async () => {
    let done = false;
    const running = await startParts([{ name: 'slow', async start() { return async () => { await new Promise((r) => setTimeout(r, 50)); done = true; }; } }]);
    await running.stop();
    expect(done).toBe(true);
  });
});
