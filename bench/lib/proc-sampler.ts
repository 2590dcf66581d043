/**
 * CPU and RSS of another process, read from /proc (Linux): CPU% is the process's user+system clock
 * ticks over wall time between two reads (100% = one core busy), RSS is VmRSS.
 */
import { readFileSync } from 'node:fs';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export interface ProcReading {
  atMs: number;
  /** utime + stime, in seconds. */
  cpuSeconds: number;
  rssBytes: number;
}

export function readProc(pid: number): ProcReading | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { atMs: performance.now(), cpuSeconds: (utime + stime) / TICKS_PER_SECOND, rssBytes: rssKb * 1024 };
  } catch {
    return null; // the process is gone
  }
}

/** CPU% between two readings (100 = one core). */
export function cpuPercent(a: ProcReading, b: ProcReading): number {
  const wall = (b.atMs - a.atMs) / 1000;
  return wall > 0 ? ((b.cpuSeconds - a.cpuSeconds) / wall) * 100 : 0;
}

/** Samples a process every `intervalMs` until stopped; summarizes CPU% over the whole window and RSS. */
export class ProcSampler {
  readonly samples: ProcReading[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly pid: number, private readonly intervalMs = 250) {}

  start(): this {
    this.take();
    this.timer = setInterval(() => this.take(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  take(): ProcReading | null {
    const r = readProc(this.pid);
    if (r) this.samples.push(r);
    return r;
  }

  stop(): { cpuPercent: number; rssMaxBytes: number; rssLastBytes: number; seconds: number } {
    clearInterval(this.timer);
    this.take();
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last) return { cpuPercent: 0, rssMaxBytes: 0, rssLastBytes: 0, seconds: 0 };
    return {
      cpuPercent: cpuPercent(first, last),
      rssMaxBytes: Math.max(...this.samples.map((s) => s.rssBytes)),
      rssLastBytes: last.rssBytes,
      seconds: (last.atMs - first.atMs) / 1000,
    };
  }
}
