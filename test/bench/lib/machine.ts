// Describes the machine a benchmark ran on, for RESULTS.md.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** The machine facts written above the results. */
export interface MachineDescription {
  date: string;
  cpuModel: string;
  cores: number;
  memory: string;
  kernel: string;
  os: string;
  harnessNode: string;
  agentNode: string;
  gitCommit: string;
  /** 1/5/15-minute load averages when the run started: other work on the machine skews every figure. */
  loadAverage: string;
}

/** Collects the machine description; `agentNode` names the Node the executables were built from. */
export function describeMachine(root: string, agentNode: string): MachineDescription {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: `${os.type()} ${os.release()} ${os.machine()}`,
    os: readOsName(),
    harnessNode: process.version,
    agentNode,
    gitCommit: readGitCommit(root),
    loadAverage: os.loadavg().map((l) => l.toFixed(2)).join(' '),
  };
}

function readOsName(): string {
  try {
    const match = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'));
    return match?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function readGitCommit(root: string): string {
  try {
    const commit = execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no', '--', 'src'], { encoding: 'utf8' }).trim();
    return dirty ? `${commit} (src/ has uncommitted changes)` : commit;
  } catch {
    return 'unknown (not a git checkout)';
  }
}
