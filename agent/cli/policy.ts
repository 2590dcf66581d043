/** `warden policy check FILE`: validate a policy file without starting anything. */
import type { Command } from 'commander';
import { EXIT } from '../../core/errors.js';
import { loadPolicyFile, PolicyFileError } from '../../policies/loader.js';
import { group, out } from './common.js';

export function registerPolicyCommands(program: Command): void {
  const policy = group(program, 'policy', 'governance policies');
  policy.command('check').argument('<file>', 'policy file (YAML)').description('validate a policy file; exit 1 naming every bad key')
    .action((file: string) => {
      try {
        const p = loadPolicyFile(file);
        out(`policy file is valid: ${p.policies.length} policies, sha256 ${p.digest}\n`);
        for (const x of p.policies) {
          const what = [x.retryStorm ? 'retryStorm' : '', x.drift ? 'drift' : ''].filter(Boolean).join('+');
          out(`  ${x.name}@${x.version}  ${what}  scope ${JSON.stringify(x.scope)}  breaker ${x.breaker.action}${x.dryRun ? '  (dry run)' : ''}\n`);
        }
      } catch (err) {
        if (!(err instanceof PolicyFileError)) throw err;
        // The checked file is invalid, as a ledger that does not verify: exit 1, naming every bad key
        // (a policy file named by the config that is invalid is a config error: exit 2).
        process.stderr.write(`${err.message}\n`);
        process.exitCode = EXIT.TAMPERED;
      }
    });
}
