/** Named errors of the agent process. Each message says what was wrong and what to do. */

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly source: string, readonly problems: string[]) {
    super(`invalid configuration (${source}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export class UsageError extends Error {
  override name = 'UsageError';
}
