// The agent's stop-cause port for `cloudjobs run`: root's evidence only (the
// unit from /proc/self/cgroup, systemd's queued job for it through a root-owned
// systemctl), decided by agent/stop-cause.ts. Nothing of the job's processes is read.
import { lstat } from 'node:fs/promises';
import { decideStopCause, type PlannedRun, type StopCause } from '../agent/stop-cause.js';
import { queryUnitJob, readOwnUnit, SYSTEMCTL_PATHS } from '../service/unit-job.js';

// systemctl answers within milliseconds; a stuck one must not hold the stop (the job then drains).
const QUERY_TIMEOUT_MS = 5000;

/** Builds AgentDeps.stopCause. */
export function createStopCauseReader(procRoot = '/proc'): (running: readonly PlannedRun[]) => Promise<StopCause> {
  return async (running) => {
    const unit = await readOwnUnit(procRoot);
    if (unit === null) return decideStopCause({ unit, unitJob: null, running });
    const systemctl = await findRootSystemctl();
    const unitJob = await queryUnitJob({ unit, systemctl, timeoutMs: QUERY_TIMEOUT_MS });
    return decideStopCause({ unit, unitJob, running });
  };
}

// The first systemctl in root's directories that is root's and writable by root only.
async function findRootSystemctl(): Promise<string> {
  for (const path of SYSTEMCTL_PATHS) {
    const info = await lstat(path).catch(() => null);
    if (info !== null && info.isFile() && info.uid === 0 && (info.mode & 0o022) === 0) return path;
  }
  throw new Error(`no root-owned systemctl at ${SYSTEMCTL_PATHS.join(' or ')}`);
}
