// The outcome rules of a job, as a pure function of what its steps did: which
// status the job ends with and the one sentence that says why.
import type { JobStatus } from '../contract/types.js';
import { describeStepOutcome } from './report.js';
import { formatLimit } from './run-step.js';
import type { StepResult } from './types.js';

/** Why the whole job is being stopped (a step's own time limit stops only that step). */
export type JobStop = 'job-timeout' | 'cancel' | 'shutdown' | 'limit';

/** A step that ended, with the label reports name it by ("step 2", "step 3.1", "final step"). */
export interface FinishedStep {
  /** 1-based over all steps, in the order they start (parallel members and finalStep included). */
  index: number;
  label: string;
  result: StepResult;
}

/** What decideOutcome needs. */
export interface OutcomeInput {
  /** Ended steps in the order they ended. */
  finished: readonly FinishedStep[];
  /** Steps the job can run (parallel members one by one, and finalStep). */
  total: number;
  /** Why the job was stopped, or null when it was not. */
  stop: JobStop | null;
  /** The job's time limit, named when it ran out between steps. */
  timeoutMs: number;
  /** Why no further step was started (JobRun.halt), or null. */
  halted?: string | null;
  /** With stop 'limit': the limit's sentence ("out of memory: the job's memory limit is 256 MiB (jobs.memory_max)"). */
  limitReason?: string | null;
}

/** The job's status, the reason sentence, and the step that decided it (for exit_code and failed_step). */
export interface Verdict {
  status: Extract<JobStatus, 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'CANCELED'>;
  reason: string;
  decisive: StepResult | null;
}

/** The first step that failed without ignoreStepFailure: it ends the job. */
export function findDecisive(finished: readonly FinishedStep[]): FinishedStep | null {
  return finished.find((f) => f.result.failed && !f.result.ignored) ?? null;
}

/**
 * Applies the outcome rules: a stop that cut the job short decides first
 * (shutdown FAILED, cancel CANCELED, job timeout TIMED_OUT); else the first
 * failed, not ignored step (TIMED_OUT when its own limit ran out); then a halt
 * that left steps unstarted (FAILED, the halt's reason); else SUCCEEDED.
 */
export function decideOutcome(input: OutcomeInput): Verdict {
  const { finished, total, stop } = input;
  // a resource limit ends the job whatever ignoreStepFailure says, like systemd's OOMPolicy=stop
  if (stop === 'limit') return decideLimited(input);
  const stopped = finished.find((f) => f.result.timedOut || f.result.canceled) ?? null;
  if (stop !== null && (stopped !== null || finished.length !== total)) return decideStopped(input, stopped);
  const decisive = findDecisive(finished);
  if (decisive !== null) {
    return {
      status: decisive.result.timedOut ? 'TIMED_OUT' : 'FAILED',
      reason: describeStepOutcome(decisive.label, decisive.result),
      decisive: decisive.result,
    };
  }
  if (input.halted && finished.length !== total) {
    return { status: 'FAILED', reason: `${input.halted}; ${finished.length} of ${total} steps ran, the rest were not started`, decisive: null };
  }
  const ok = finished.filter((f) => !f.result.failed).length;
  const ignored = finished.length - ok;
  const suffix = ignored === 0 ? '' : `, ${ignored} failed with ignoreStepFailure set`;
  return { status: 'SUCCEEDED', reason: `${ok} of ${finished.length} steps succeeded${suffix}`, decisive: null };
}

function decideLimited(input: OutcomeInput): Verdict {
  const reason = input.limitReason ?? 'the job reached one of its resource limits';
  const hit = input.finished.find((f) => f.result.failed && f.result.failureReason === reason) ?? null;
  if (hit === null) return { status: 'FAILED', reason: `${reason}; after ${input.finished.length} of ${input.total} steps`, decisive: null };
  return { status: 'FAILED', reason: describeStepOutcome(hit.label, hit.result), decisive: hit.result };
}

function decideStopped(input: OutcomeInput, stopped: FinishedStep | null): Verdict {
  const where = stopped === null ? null : describeStepOutcome(stopped.label, stopped.result);
  const after = `after ${input.finished.length} of ${input.total} steps`;
  const decisive = stopped?.result ?? null;
  switch (input.stop) {
    case 'shutdown':
      return { status: 'FAILED', reason: 'stopped by agent shutdown', decisive };
    case 'cancel':
      return { status: 'CANCELED', reason: where ?? `the job was canceled ${after}`, decisive };
    default:
      return {
        status: 'TIMED_OUT',
        reason: where ?? `the job's time limit of ${formatLimit(input.timeoutMs)} ran out ${after}`,
        decisive,
      };
  }
}
