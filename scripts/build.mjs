// Builds dist/ and marks the CLI executable: tsc writes plain files, and `npx warden` / the package's
// bin must not depend on npm having set the mode on some earlier install.
import { execFileSync } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { createRequire } from 'node:module';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
chmodSync('dist/agent/cli.js', 0o755);
