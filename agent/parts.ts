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
}

export async function startParts(parts: readonly Part[], o: PartsOptions = {}): Promise<RunningParts> {
  const started: { name: string; stop: Stop }[] = [];
  for (const part of parts) {
    let stop: Stop | void;
    try {
      stop = await part.start();
    } catch (err) {
      await stopAll(started, { unwinding: true }, o);
      throw err;
    }
    started.push({ name: part.name, stop: stop ?? (async () => {}) });
  }
  let stopping: Promise<void> | null = null;
  return {
    names: started.map((p) => p.name),
    stop: () => (stopping ??= stopAll(started, { unwinding: false }, o).then((errors) => {
      if (errors.length > 0) throw errors[0];
    })),
  };
}

async function stopAll(started: readonly { name: string; stop: Stop }[], how: StopContext, o: PartsOptions): Promise<unknown[]> {
  const errors: unknown[] = [];
  for (const { name, stop } of [...started].reverse()) {
    try {
      await stop(how);
    } catch (err) {
      errors.push(err);
      o.onStopError?.(name, err);
    }
  }
  return errors;
}
