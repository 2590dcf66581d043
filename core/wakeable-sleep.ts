/**
 * A sleep that another caller can cut short (new work arrived, a stop, a flush): the idle wait of
 * the shipper, the checkpoint publisher and the positions writer. One sleep at a time; wake() with
 * no sleep in progress does nothing.
 */
export class WakeableSleep {
  private wakeUp: (() => void) | null = null;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wakeUp === done) this.wakeUp = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  wake(): void {
    this.wakeUp?.();
  }
}
