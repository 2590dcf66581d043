/** Activities for real-workflows.ts (run by a real worker, in the test process or a child process). */
import { Context } from '@temporalio/activity';

export interface RealActivityControl {
  /** `embed` fails while this is true (an upstream outage). */
  embedDown: boolean;
  /** Calls of `embed` that reached the activity body. */
  embedCalls: number;
  /** `slow` runs this long (heartbeating every 200 ms). */
  slowMs: number;
  /** Called once when `slow` starts (a test kills the worker then). */
  onSlowStart?: () => void;
}

export function realActivities(control: RealActivityControl = { embedDown: false, embedCalls: 0, slowMs: 2000 }) {
  return {
    async charge(order: { id: string; contact: string }): Promise<string> {
      const { attempt } = Context.current().info;
      if (attempt < 3) throw new Error(`card declined for ${order.contact} (attempt ${attempt})`);
      return `charged-${order.id}`;
    },
    async notify(order: { id: string }): Promise<void> {
      throw new Error(`mail relay down for order ${order.id}`);
    },
    async archive(id: string): Promise<string> {
      return `archived-${id}`;
    },
    async slow(id: string): Promise<string> {
      control.onSlowStart?.();
      const until = Date.now() + control.slowMs;
      while (Date.now() < until) {
        Context.current().heartbeat();
        await Context.current().sleep(200);
      }
      return `slow-${id}`;
    },
    async embed(text: string): Promise<number[]> {
      control.embedCalls++;
      if (control.embedDown) throw new Error('embedding service 503');
      return [text.length];
    },
  };
}

export type RealActivities = ReturnType<typeof realActivities>;
