/** `warden demo`: a small AI-agent pipeline on BullMQ beside the sidecar. */
import type { Command } from 'commander';
import { createLogger } from '../logger.js';
import { Sidecar } from '../sidecar.js';
import { configFor, out, positiveInt, untilSignal } from './common.js';

export function registerDemoCommands(program: Command): void {
  program.command('demo').description('run a small AI-agent pipeline on BullMQ beside the sidecar (needs Redis)')
    .option('--duration <seconds>', 'how long to produce jobs', positiveInt, 60)
    .option('--rate <jobs>', 'documents ingested per second', positiveInt, 20)
    .option('--storm', 'make the model call fail hard for a while (a retry storm)')
    .option('--no-sidecar', 'run only the demo workers (a sidecar runs elsewhere)')
    .action(async (o: { duration: number; rate: number; storm?: boolean; sidecar: boolean }, cmd: Command) => {
      const cfg = configFor(cmd);
      const logger = createLogger(cfg.log.level);
      const { runDemo } = await import('../demo.js');
      const sidecar = o.sidecar ? await Sidecar.start(cfg, logger) : null;
      await runDemo({ redisUrl: cfg.redis.url, prefix: cfg.bullmq.prefix, durationSec: o.duration, rate: o.rate, storm: !!o.storm, logger, stopSignal: untilSignal() });
      if (sidecar) {
        logger.info('demo finished: waiting for the sidecar to catch up, then stopping');
        await new Promise((r) => setTimeout(r, 2000));
        await sidecar.stop();
      }
      out(`demo done. Try: npx warden ledger query --kind job.failed --data-dir ${cfg.dataDir}\n`);
    });
}
