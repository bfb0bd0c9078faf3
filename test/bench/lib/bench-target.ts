// The executables one benchmark run measures for one arch, as test/bench/run.sh
// laid them out in build/bench/targets.json; emulated arches run under qemu-user.
import { readFileSync } from 'node:fs';

/** The project's arch names. */
export type Arch = 'x64' | 'arm64' | 'armv7';

/** Commands (argv prefixes) for one arch. */
export interface BenchTarget {
  arch: Arch;
  /** Runs under qemu-user (figures are indicative only). */
  emulated: boolean;
  /** The cloudjobs single executable. */
  agent: string[];
  /** The bare Node binary the single executable was made from. */
  node: string[];
  /** The same Node made into a single executable of test/bench/baseline/idle.js. */
  baselineSea: string[];
  agentFile: string;
  nodeFile: string;
  baselineSeaFile: string;
  nodeVersion: string;
}

interface TargetFileEntry {
  arch: Arch;
  agent: string;
  node: string;
  baselineSea: string;
  nodeVersion: string;
  /** Empty for the host arch, else e.g. ["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"]. */
  emulator: string[];
}

/** Reads build/bench/targets.json (written by test/bench/run.sh). */
export function loadBenchTargets(file: string): BenchTarget[] {
  const entries = JSON.parse(readFileSync(file, 'utf8')) as TargetFileEntry[];
  return entries.map((entry) => ({
    arch: entry.arch,
    emulated: entry.emulator.length > 0,
    agent: [...entry.emulator, entry.agent],
    node: [...entry.emulator, entry.node],
    baselineSea: [...entry.emulator, entry.baselineSea],
    agentFile: entry.agent,
    nodeFile: entry.node,
    baselineSeaFile: entry.baselineSea,
    nodeVersion: entry.nodeVersion,
  }));
}
