/** Named errors of the agent process. Each message says what was wrong and what to do. */
import { WardenError } from '../core/errors.js';

export class ConfigError extends WardenError {
  override name = 'ConfigError';
  constructor(readonly source: string, readonly problems: string[]) {
    super('WARDEN_CONFIG', `invalid configuration (${source}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export class UsageError extends WardenError {
  override name = 'UsageError';
  constructor(message: string) {
    super('WARDEN_USAGE', message);
  }
}
