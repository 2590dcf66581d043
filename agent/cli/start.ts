/** `warden start`: run the sidecar until SIGINT or SIGTERM. */
import type { Command } from 'commander';
import { EXIT, exitCodeOf } from '../../core/errors.js';
import { createLogger } from '../logger.js';
import { Sidecar } from '../sidecar.js';
import { configFor, untilSignal } from './common.js';

export function registerStartCommands(program: Command): void {
  program.command('start').description('run the sidecar: collect BullMQ events into the ledger, metrics and traces')
    .action(async (_o, cmd: Command) => {
      const config = configFor(cmd);
      const logger = createLogger(config.log.level);
      const sidecar = await Sidecar.start(config, logger);
      await untilSignal();
      logger.info({ deadlineMs: config.shutdownTimeoutMs }, 'shutting down: flushing the ledger');
      // A backstop past the stop's own deadline (parts.ts): the process ends whatever still waits.
      setTimeout(() => {
        logger.error({ deadlineMs: config.shutdownTimeoutMs }, 'shutdown overran its deadline: exiting');
        process.exit(EXIT.UNAVAILABLE);
      }, config.shutdownTimeoutMs + 2000).unref();
      let code: number = process.exitCode === undefined ? EXIT.OK : Number(process.exitCode);
      try {
        await sidecar.stop();
      } catch (err) {
        // Each part that failed or was left behind was logged by name; the spool was still closed.
        logger.warn({ err: (err as Error).message }, 'shutdown finished with parts left behind');
        code = exitCodeOf(err);
      }
      // Everything durable is flushed and closed; a Redis client still retrying a connection that was
      // never made may hold timers for seconds, so do not wait for them.
      process.exit(code);
    });
}
