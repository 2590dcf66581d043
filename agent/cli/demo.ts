/**
 * `warden demo`: a small AI-agent pipeline on BullMQ beside the sidecar. Without a policy file
 * (policies.file, WARDEN_POLICY_FILE, --policy-file) the sidecar loads the demo's own
 * (grafana/policies/demo.yaml), so the storm opens a breaker and the dashboard's breaker panels fill.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { createLogger } from '../logger.js';
import { Sidecar } from '../sidecar.js';
import { configFor, out, positiveInt, untilSignal } from './common.js';

export function registerDemoCommands(program: Command): void {
  program.command('demo').description('run a small AI-agent pipeline on BullMQ beside the sidecar (needs Redis)')
    .option('--duration <seconds>', 'how long to produce jobs', positiveInt, 60)
    .option('--rate <jobs>', 'documents ingested per second', positiveInt, 20)
    .option('--storm', 'make the model call fail hard for a while (a retry storm)')
    .option('--no-sidecar', 'run only the demo workers (a sidecar runs elsewhere)')
    .option('--policy-file <file>', 'policy file for the sidecar (default: policies.file, else the demo\'s grafana/policies/demo.yaml)')
    .action(async (o: { duration: number; rate: number; storm?: boolean; sidecar: boolean; policyFile?: string }, cmd: Command) => {
      const base = configFor(cmd);
      const file = o.policyFile ?? base.policies.file ?? demoPolicyFile();
      const cfg = { ...base, policies: { ...base.policies, file } };
      const logger = createLogger(cfg.log.level);
      const { runDemo } = await import('../demo.js');
      if (o.sidecar) logger.info({ file, demoDefault: file === DEMO_POLICY_PATH }, 'demo policies');
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

let DEMO_POLICY_PATH: string | null = null;

/** grafana/policies/demo.yaml of this installation (the package ships grafana/), found upwards from this module. */
export function demoPolicyFile(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const f = join(dir, 'grafana', 'policies', 'demo.yaml');
    if (existsSync(f)) return (DEMO_POLICY_PATH = f);
    dir = dirname(dir);
  }
  throw new UsageError('the demo policy file grafana/policies/demo.yaml is not installed: give one with --policy-file');
}
