import { describe, expect, it } from 'vitest';
import { WakeableSleep } from '../../core/wakeable-sleep.js';

describe('WakeableSleep', () => {
  it('ends at its time, or at once when woken; a wake with no sleep in progress is not kept for the next one', async () => {
    const nap = new WakeableSleep();
    let t = performance.now();
    await nap.sleep(60);
    expect(performance.now() - t).toBeGreaterThanOrEqual(55);

    t = performance.now();
    const woken = nap.sleep(5_000);
    setTimeout(() => nap.wake(), 20);
    await woken;
    expect(performance.now() - t).toBeLessThan(1_000);

    nap.wake(); // nothing sleeping
    t = performance.now();
    await nap.sleep(60);
    expect(performance.now() - t).toBeGreaterThanOrEqual(55);
  });
});
