/** `warden config check`: validate the configuration (every cross-field rule is in agent/config.ts) and print it. */
import type { Command } from 'commander';
import { maskedConfig } from '../config.js';
import { configFor, group, out } from './common.js';

export function registerConfigCommands(program: Command): void {
  const config = group(program, 'config', 'configuration');
  config.command('check').description('validate the configuration and print it as resolved')
    .action((_o, cmd: Command) => {
      const cfg = configFor(cmd);
      // Tokens, passwords and URL userinfo are masked: this output ends up in terminals, CI logs and tickets.
      out(`${JSON.stringify(maskedConfig(cfg), null, 2)}\n`);
      out('configuration is valid\n');
    });
}
