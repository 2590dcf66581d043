import { spawn, type ChildProcess } from 'node:child_process';

// If this process is SIGKILLed (a vitest worker killed on timeout, say), no exit hook runs. A detached
// watchdog holds a pipe from us; when the pipe closes it SIGKILLs every server PID we registered and
// did not report as exited, and removes every temp dir we did not clean up ourselves.
const SRC = `
const fs = require('node:fs');
const pids = new Set(), dirs = new Set();
let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i); buf = buf.slice(i + 1);
    const set = line[0] === 'p' ? pids : dirs;
    const v = line.slice(2);
    if (line[1] === '+') set.add(v); else set.delete(v);
  }
});
process.stdin.on('close', () => {
  for (const pid of pids) { try { process.kill(Number(pid), 'SIGKILL'); } catch {} }
  setTimeout(() => {
    if (process.env.WARDEN_KEEP_TMP !== '1') {
      for (const d of dirs) { try { fs.rmSync(d, { recursive: true, force: true, maxRetries: 3 }); } catch {} }
    }
    process.exit(0);
  }, pids.size ? 300 : 0);
});
`;

let child: ChildProcess | undefined;
let failed = false;

function ensure(): ChildProcess | undefined {
  if (child || failed) return child;
  try {
    child = spawn(process.execPath, ['-e', SRC], {
      detached: true, // own process group: a Ctrl-C to the test run must not kill it before it acts
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    child.on('error', () => {
      failed = true;
      child = undefined;
    });
    child.stdin?.on('error', () => undefined);
    child.unref(); // neither the watchdog nor its pipe may keep the test process alive
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  } catch {
    failed = true;
  }
  return child;
}

function tell(line: string): void {
  try {
    ensure()?.stdin?.write(`${line}\n`);
  } catch {
    // a second line of defence only
  }
}

export const watchPid = (pid: number): void => tell(`p+${pid}`);
export const unwatchPid = (pid: number): void => tell(`p-${pid}`);
export const watchDir = (dir: string): void => tell(`d+${dir}`);
export const unwatchDir = (dir: string): void => tell(`d-${dir}`);
