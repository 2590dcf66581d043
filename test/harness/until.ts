import { waitFor } from './process.js';

/**
 * Polls a condition every 25 ms until it holds, or fails naming what it waited for. The short form of
 * the harness's one waiter (`waitFor`): an error thrown by the condition fails at once.
 */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  await waitFor(cond, { timeoutMs, intervalMs: 25, what, retryErrors: false });
}
