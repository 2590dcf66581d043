import { WardenError } from '../core/errors.js';

/**
 * A process as an ordered list of parts: each starts after the ones before it and stops before them.
 * When a part fails to start, the parts already started are stopped in reverse and the start error is
 * thrown as it was (so the CLI exits with that error's exit code).
 */

/** How a part is being stopped: a normal shutdown, or unwinding after a later part failed to start. */
export interface StopContext { unwinding: boolean }

export type Stop = (how: StopContext) => Promise<void>;

export interface Part {
  /** Names the part in logs and errors. */
  name: string;
  /**
   * Local work that must run at stop however late it is (closing the spool, saving positions): with a
   * stop deadline, the parts stopped before it leave it a reserve of the time, and it is never skipped.
   */
  essential?: boolean;
  /** Starts the part; resolves with how to stop it (nothing: there is nothing to stop). */
  start(): Promise<Stop | void>;
}

export interface RunningParts {
  /** The parts started, in start order. */
  readonly names: readonly string[];
  /**
   * Stops every part in reverse start order. A part whose stop fails is reported and the rest still
   * stop; the first such error is thrown at the end. Calling it again returns the same promise.
   */
  stop(): Promise<void>;
}

export interface PartsOptions {
  /** Told about each part whose stop failed (while unwinding, these are not thrown: the start error is). */
  onStopError?(name: string, err: unknown): void;
  /**
   * The whole stop finishes within this many ms, whatever a dependency does (a Redis, NATS or
   * ClickHouse that vanished makes a client wait without end). A part that has not stopped in its share
   * is reported (PartStopTimeoutError) and left behind; the next part stops. Essential parts get a
   * reserve of the time. Unset: no deadline.
   */
  stopTimeoutMs?: number;
}

/** A part did not stop within its share of the stop deadline (it was left behind; the stop went on). */
export class PartStopTimeoutError extends WardenError {
  override name = 'PartStopTimeoutError';
  constructor(readonly part: string, readonly waitedMs: number) {
    super('WARDEN_UNAVAILABLE', `"${part}" did not stop within ${Math.round(waitedMs)} ms (the stop deadline); left behind`);
  }
}

export async function startParts(parts: readonly Part[], o: PartsOptions = {}): Promise<RunningParts> {
  const started: { name: string; stop: Stop; essential: boolean }[] = [];
  for (const part of parts) {
    let stop: Stop | void;
    try {
      stop = await part.start();
    } catch (err) {
      await stopAll(started, { unwinding: true }, o);
      throw err;
    }
    started.push({ name: part.name, stop: stop ?? (async () => {}), essential: part.essential === true });
  }
  let stopping: Promise<void> | null = null;
  return {
    names: started.map((p) => p.name),
    stop: () => (stopping ??= stopAll(started, { unwinding: false }, o).then((errors) => {
      if (errors.length > 0) throw errors[0];
    })),
  };
}

async function stopAll(started: readonly { name: string; stop: Stop; essential: boolean }[], how: StopContext, o: PartsOptions): Promise<unknown[]> {
  const errors: unknown[] = [];
  const total = o.stopTimeoutMs;
  const deadline = total === undefined ? Infinity : performance.now() + total;
  // Kept for the essential parts (local disk work) while the others stop: a quarter of the time, at most 3 s.
  const reserve = total === undefined ? 0 : Math.min(total / 4, 3000);
  const order = [...started].reverse();
  for (let i = 0; i < order.length; i++) {
    const { name, stop, essential } = order[i];
    const essentialLater = order.slice(i + 1).some((p) => p.essential);
    const budget = deadline - performance.now() - (essential || !essentialLater ? 0 : reserve);
    try {
      await withDeadline(stop(how), Math.max(budget, essential ? reserve / 2 : 0), name);
    } catch (err) {
      errors.push(err);
      o.onStopError?.(name, err);
    }
  }
  return errors;
}

/** The stop's own result, or PartStopTimeoutError after `ms` (the stop goes on unobserved). */
function withDeadline(p: Promise<void>, ms: number, name: string): Promise<void> {
  if (ms === Infinity) return p;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new PartStopTimeoutError(name, ms)), Math.max(0, ms)); });
  p.catch(() => undefined); // a stop that fails after it was left behind is not an unhandled rejection
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
