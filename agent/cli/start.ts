/** `warden start`: run the sidecar until SIGINT or SIGTERM. */
import type { Command } from 'commander';
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
      logger.info('shutting down: flushing the ledger');
      await sidecar.stop();
      // Everything durable is flushed and closed; a Redis client still retrying a connection that was
      // never made may hold timers for seconds, so do not wait for them.
      process.exit(process.exitCode ?? 0);
    });
}
