/**
 * The `warden` program: every command group registered on one commander program, and `run(argv)`,
 * which maps whatever a command throws to an exit code by reading it off the error (core/errors.ts,
 * README "Exit codes"): 0 ok, 1 tampered, 2 usage or config, 3 a dependency unavailable, 4 internal.
 */
import { Command, CommanderError } from 'commander';
import { ZodError } from 'zod';
import { EXIT, WardenError, exitCodeOf, type ExitCode } from '../../core/errors.js';
import { registerBreakerCommands } from './breaker.js';
import { registerComplianceCommands } from './compliance.js';
import { registerConfigCommands } from './config.js';
import { registerDemoCommands } from './demo.js';
import { registerLedgerCommands } from './ledger.js';
import { registerPolicyCommands } from './policy.js';
import { registerSloCommands } from './slo.js';
import { registerStartCommands } from './start.js';

export function buildProgram(): Command {
  const program = new Command('warden')
    .description('Observability and governance sidecar for BullMQ and Temporal workers')
    .showHelpAfterError()
    // Commander reports a bad flag or argument itself, then throws here instead of exiting, so run() decides the code.
    .exitOverride()
    .option('-c, --config <file>', 'YAML config file (environment variables override it)')
    .option('-d, --data-dir <dir>', 'data directory (ledger spool, positions); default ./.warden or WARDEN_DATA_DIR');
  registerStartCommands(program);
  registerConfigCommands(program);
  registerLedgerCommands(program);
  registerComplianceCommands(program);
  registerSloCommands(program);
  registerPolicyCommands(program);
  registerBreakerCommands(program);
  registerDemoCommands(program);
  return program;
}

/**
 * What a thrown value means for the CLI: a WardenError as it is; commander's own errors (already
 * printed by commander) and a ZodError (an argument that failed a schema) are usage errors.
 */
function asWardenError(err: unknown): { error: unknown; printed: boolean } {
  if (err instanceof CommanderError) {
    // --help and --version end in a CommanderError with exit code 0.
    return { error: err.exitCode === 0 ? null : new WardenError('WARDEN_USAGE', err.message), printed: true };
  }
  if (err instanceof ZodError) {
    return { error: new WardenError('WARDEN_USAGE', err.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')), printed: false };
  }
  return { error: err, printed: false };
}

/** Writes the error for a person: `warden: <message>`; a stack trace only for an internal error (a bug). */
export function reportError(err: unknown, code: ExitCode, write: (s: string) => void = (s) => process.stderr.write(s)): void {
  const message = err instanceof Error ? err.message : String(err);
  if (code !== EXIT.INTERNAL) {
    write(`warden: ${message}\n`);
    return;
  }
  const stack = err instanceof Error && err.stack ? err.stack : String(err);
  write(`warden: internal error: ${message}\n${stack}\n`);
}

/** Runs the `warden` command line and sets process.exitCode from what it did or threw. */
export async function run(argv: string[]): Promise<void> {
  // `warden ledger query | head`: the reader went away; stop quietly instead of crashing on EPIPE.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.OK);
    throw err;
  });
  try {
    await buildProgram().parseAsync(argv);
  } catch (thrown) {
    const { error, printed } = asWardenError(thrown);
    if (error === null) return;
    const code = exitCodeOf(error);
    if (!printed) reportError(error, code);
    process.exitCode = code;
  }
}
