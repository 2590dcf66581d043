/** startParts: parts start in order and stop in reverse; a part that fails to start unwinds the ones before it. */
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../agent/errors.js';
import { exitCodeOf, EXIT } from '../../core/errors.js';
import { startParts, type Part } from '../../agent/parts.js';

function recorder() {
  const log: string[] = [];
  const part = (name: string, o: { failStart?: Error; failStop?: Error } = {}): Part => ({
    name,
    async start() {
      await new Promise((r) => setTimeout(r, 1));
      log.push(`start ${name}`);
      if (o.failStart) throw o.failStart;
      return async ({ unwinding }) => {
        log.push(`stop ${name}${unwinding ? ' (unwinding)' : ''}`);
        if (o.failStop) throw o.failStop;
      };
    },
  });
  return { log, part };
}

describe('startParts', () => {
  it('starts the parts in order and stops them in reverse, once', async () => {
    const { log, part } = recorder();
    const running = await startParts([part('a'), part('b'), { name: 'nothing to stop', start: async () => { log.push('start nothing'); } }, part('c')]);
    expect(running.names).toEqual(['a', 'b', 'nothing to stop', 'c']);
    await Promise.all([running.stop(), running.stop()]);
    await running.stop();
    expect(log).toEqual(['start a', 'start b', 'start nothing', 'start c', 'stop c', 'stop b', 'stop a']);
  });

  it('when a part fails to start, stops the parts already started in reverse and throws that error as it was', async () => {
    const { log, part } = recorder();
    const boom = new UsageError('part c cannot start');
    const stopErrors: string[] = [];
    const started = startParts([part('a'), part('b', { failStop: new Error('b will not stop') }), part('c', { failStart: boom }), part('d')], {
      onStopError: (name, err) => stopErrors.push(`${name}: ${(err as Error).message}`),
    });
    await expect(started).rejects.toBe(boom);
    expect(exitCodeOf(await started.catch((e: unknown) => e))).toBe(EXIT.USAGE);
    // c never started, so it is not stopped; d was never reached; a still stops although b's stop failed.
    expect(log).toEqual(['start a', 'start b', 'start c', 'stop b (unwinding)', 'stop a (unwinding)']);
    expect(stopErrors).toEqual(['b: b will not stop']);
  });

  it('a stop that fails does not keep the earlier parts running; stop() then rejects with that error', async () => {
    const { log, part } = recorder();
    const bad = new Error('c will not stop');
    const running = await startParts([part('a'), part('b'), part('c', { failStop: bad })]);
    await expect(running.stop()).rejects.toBe(bad);
    expect(log.slice(3)).toEqual(['stop c', 'stop b', 'stop a']);
  });
});
