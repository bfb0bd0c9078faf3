// Stops processes the way execa's terminate/kill.js does, but for a whole
// process group or a set found by environment: SIGTERM, a grace period, SIGKILL.
import type { Clock } from '../clock/clock.js';
import { findGroupMembers, findProcessesWithEnv } from './proc-scan.js';

/** Something the ladder can signal and check: a process group, or a job's escaped processes. */
export interface KillTarget {
  /** Sends `signal` to every live process of the target. */
  send(signal: NodeJS.Signals): Promise<void>;
  /** Whether any process of the target is still alive (zombies do not count). */
  alive(): Promise<boolean>;
}

/** How the ladder ended: nothing to stop, stopped by SIGTERM, or SIGKILL was needed. */
export type LadderOutcome = 'gone' | 'terminated' | 'killed';

const POLL_MS = 50;
const KILL_POLLS = 40;

/** Sends SIGTERM, waits up to `graceMs` for the target to go, then SIGKILLs what is left. */
export async function runKillLadder(target: KillTarget, graceMs: number, clock: Clock): Promise<LadderOutcome> {
  if (!(await target.alive())) return 'gone';
  await target.send('SIGTERM');
  const deadline = clock.monotonic() + graceMs;
  for (;;) {
    if (!(await target.alive())) return 'terminated';
    const left = deadline - clock.monotonic();
    if (left <= 0) break;
    await clock.sleep(Math.min(POLL_MS, left));
  }
  // repeat: a process that forks fast may add members between scan and signal
  for (let i = 0; i < KILL_POLLS; i += 1) {
    await target.send('SIGKILL');
    if (!(await target.alive())) break;
    await clock.sleep(POLL_MS);
  }
  return 'killed';
}

/** The processes of process group `pgid` (a step spawned detached is its group's leader). */
export function createGroupTarget(pgid: number): KillTarget {
  return {
    async send(signal) {
      signalQuietly(-pgid, signal);
    },
    async alive() {
      // fast path: no process at all in the group; else look closer (zombies do not count)
      if (!signalQuietly(-pgid, 0)) return false;
      return (await findGroupMembers(pgid)).length > 0;
    },
  };
}

/**
 * Processes carrying CLOUDJOBS_JOB_ID=<jobId>: what is left of a job after its
 * steps' groups are gone, e.g. daemons that called setsid.
 */
export function createJobTarget(jobId: string, agentPid: number): KillTarget {
  const entry = `CLOUDJOBS_JOB_ID=${jobId}`;
  return {
    async send(signal) {
      for (const pid of await findProcessesWithEnv(entry, agentPid)) signalQuietly(pid, signal);
    },
    async alive() {
      return (await findProcessesWithEnv(entry, agentPid)).length > 0;
    },
  };
}

// ESRCH (already gone) and EPERM (not ours: pid reused) are both "nothing to do".
// Returns whether the signal was delivered.
function signalQuietly(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ESRCH' && code !== 'EPERM') throw error;
    return false;
  }
}
