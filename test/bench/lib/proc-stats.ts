// Reads what the kernel knows about a process from /proc: resident memory and
// CPU time (all threads, dead ones included), and samples peak RSS over time.
import { readFileSync } from 'node:fs';

// USER_HZ on every Linux the benchmarks run on (getconf CLK_TCK).
const CLOCK_TICKS_PER_SECOND = 100;

/** Returns the current resident set size of `pid` in bytes. */
export function readRssBytes(pid: number): number {
  return readStatusKb(pid, 'VmRSS') * 1024;
}

/** Returns the peak resident set size (VmHWM) of `pid` in bytes. */
export function readPeakRssBytes(pid: number): number {
  return readStatusKb(pid, 'VmHWM') * 1024;
}

/** Returns user+system CPU time of `pid` in ms (10 ms resolution). */
export function readCpuMs(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return ((utime + stime) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** A running RSS sampler. */
export interface RssSampler {
  /** Stops sampling and returns the highest RSS seen in bytes. */
  stop(): number;
}

/** Samples the RSS of `pid` every `everyMs` ms until stopped. */
export function startRssSampler(pid: number, everyMs: number): RssSampler {
  let peak = 0;
  const sample = (): void => {
    try {
      peak = Math.max(peak, readRssBytes(pid));
    } catch {
      // the process is gone: keep the peak seen so far
    }
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return peak;
    },
  };
}

function readStatusKb(pid: number, field: string): number {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
  if (!match) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(match[1]);
}
