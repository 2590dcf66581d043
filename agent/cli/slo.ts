/** `warden slo generate`: Prometheus recording rules and burn-rate alerts for the configured SLOs. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../errors.js';
import { commonOpts, configFor, group, out } from './common.js';

export function registerSloCommands(program: Command): void {
  const slo = group(program, 'slo', 'service level objectives');
  slo.command('generate').description('write Prometheus recording rules and multi-window multi-burn-rate alerts for the slos in the config')
    .option('--out <file>', 'write the rule file here instead of stdout')
    .action(async (o: { out?: string }, cmd: Command) => {
      const opts = commonOpts(cmd);
      const cfg = configFor(cmd);
      if (cfg.slos.length === 0) throw new UsageError('the configuration has no slos: add a `slos:` list (name, queue, objective, optional latency) to the file given with --config');
      const { generateSloRules } = await import('../slo.js');
      const text = generateSloRules(cfg.slos, opts.config ? path.basename(opts.config) : 'the configuration');
      if (o.out) {
        writeFileSync(o.out, text);
        process.stderr.write(`slo: wrote ${cfg.slos.length} SLO rule group(s) to ${o.out}\n`);
      } else out(text);
    });
}
