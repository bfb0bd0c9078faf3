// What the agent does once about limits, before its first job: finds out
// whether they can be enforced here and says so once when not, and (the
// agent, not `cloudjobs exec`) sweeps the job slices an earlier agent process
// left behind (a crash, kill -9, a restart), so nothing of an old job runs
// beside a new one.
import type { Clock } from '../clock/clock.js';
import { describeError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import { detectLimitSupport, findLeftoverSlices, releaseSlice, type LimitSupport } from './job-unit.js';
import { createCgroupTarget, runKillLadder } from './kill-ladder.js';
import { describeLimits, type JobLimits } from './limits.js';

/** What prepareJobLimits needs. */
export interface LimitSetup {
  ceiling: JobLimits;
  agentUid: number;
  clock: Clock;
  log: Log;
  killGraceMs: number;
  /** Sweep leftover job slices (the agent only). */
  sweep: boolean;
}

/** Detects support, logs what is not enforced, sweeps leftovers; never throws. */
export async function prepareJobLimits(setup: LimitSetup): Promise<LimitSupport> {
  const { log } = setup;
  let support: LimitSupport;
  try {
    support = await detectLimitSupport(setup.agentUid, setup.ceiling);
  } catch (error) {
    support = { enforced: false, why: `could not find out: ${describeError(error)}` };
  }
  if (!support.enforced) {
    // nothing configured (every limit 0): nothing is missing, nothing to say
    if (hasAnyLimit(setup.ceiling)) {
      log.warn(`resource limits are not enforced: ${support.why}; jobs run as before, without ${describeLimits(setup.ceiling)}`);
    }
    return support;
  }
  for (const gap of support.gaps) log.warn(`resource limits: ${gap}`);
  log.info(`jobs run in their own systemd slice with ${describeLimits(setup.ceiling)}`);
  if (setup.sweep) await sweepLeftovers(support, setup);
  return support;
}

async function sweepLeftovers(support: Extract<LimitSupport, { enforced: true }>, setup: LimitSetup): Promise<void> {
  const { log, clock, killGraceMs } = setup;
  let leftovers: Awaited<ReturnType<typeof findLeftoverSlices>>;
  try {
    leftovers = await findLeftoverSlices(support);
  } catch (error) {
    log.warn(`could not look for job slices an earlier agent left: ${describeError(error)}`);
    return;
  }
  for (const { slice, cgroupDir } of leftovers) {
    try {
      const outcome = await runKillLadder(createCgroupTarget(cgroupDir), killGraceMs, clock);
      await releaseSlice(support, slice);
      if (outcome !== 'gone') log.warn(`stopped the processes an earlier agent's job left in ${slice} (${outcome})`);
    } catch (error) {
      log.warn(`could not sweep ${slice}, left by an earlier agent: ${describeError(error)}`);
    }
  }
}

// Whether the configuration sets any limit at all (0 turns each one off).
function hasAnyLimit(limits: JobLimits): boolean {
  return limits.memoryMax !== null || limits.tasksMax !== null || limits.cpuQuota !== null;
}
