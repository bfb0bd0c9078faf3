// What to do with a job that asked for a reboot: pure decisions, no I/O, so the
// whole life cycle is tested as arithmetic (like cloud/backoff.ts).
//
// The life cycle of a job that reboots (the journal holds the state):
//
//   RUNNING --step exits 194 / reboot handler--> decideRebootRequest
//       'reboot' -> REBOOTING (journaled durably with the boot identity)
//       'fail'   -> FAILED (more reboots than jobs.max_reboots)
//   REBOOTING --agent starts or waits--> decideAfterReboot
//       'resume'    -> RUNNING from the step after the one that asked
//       'wait'      -> still REBOOTING (same boot, reboot_timeout not over)
//       'fail'      -> FAILED "reboot did not happen"
//       'timed-out' -> TIMED_OUT (the job's time limit ran out across the reboot)
//
// A job that caused an agent restart (stop-cause.ts) is RESTARTING: the same
// journal record, kind 'restart'; the next agent process is the restart, so it
// resumes at start (decideAfterRestart) unless the time limit ran out.
//
// A job that was RUNNING (not REBOOTING) when the agent died is not decided
// here: it is reported FAILED "interrupted" and never resumed. Only an
// explicit, journaled reboot request resumes, and a power cut while REBOOTING
// is a new boot like any other, so it resumes.
//
// Times are wall-clock milliseconds (the only clock that spans a reboot). An
// elapsed time below zero (the clock was set back) counts as zero.
import type { BootIdentity } from '../state/boot-identity.js';
import { hasRebooted } from '../state/boot-identity.js';

/** The outcome of a step's reboot request. */
export type RebootRequestDecision = { kind: 'reboot'; count: number } | { kind: 'fail'; reason: string };

/** Whether a job that already rebooted `rebootsSoFar` times may reboot once more. */
/** Whether the user a step ran as may reboot the device: root, or one of jobs.reboot_users; null when it may. */
export function decideRebootUser(user: string, allowedUsers: readonly string[], stepLabel: string): { kind: 'fail'; reason: string } | null {
  if (user === 'root' || allowedUsers.includes(user)) return null;
  const shown = JSON.stringify(user.slice(0, 64));
  const allowed = allowedUsers.length === 0 ? 'only root may (jobs.reboot_users is empty)' : `only root and jobs.reboot_users (${allowedUsers.join(', ')}) may`;
  return { kind: 'fail', reason: `${stepLabel} asked for a reboot as user ${shown}, but ${allowed}; not rebooting` };
}

export function decideRebootRequest(rebootsSoFar: number, maxReboots: number, stepLabel: string): RebootRequestDecision {
  const count = rebootsSoFar + 1;
  if (count > maxReboots) {
    const allowed = maxReboots === 0 ? 'jobs.max_reboots is 0 (reboots by jobs are off)' : `jobs.max_reboots is ${maxReboots}`;
    return { kind: 'fail', reason: `${stepLabel} asked for reboot ${count} of this job, but ${allowed}` };
  }
  return { kind: 'reboot', count };
}

/** What was journaled when the reboot was requested. */
export interface PendingReboot {
  /** Wall-clock ms of the request. */
  requestedAt: number;
  /** The boot the request was made in. */
  boot: BootIdentity;
}

/** What decideAfterReboot needs besides the pending reboot. */
export interface AfterRebootInput {
  pending: PendingReboot;
  /** The boot the agent runs in now. */
  currentBoot: BootIdentity;
  now: number;
  /** jobs.reboot_timeout. */
  rebootTimeoutMs: number;
  /** Wall-clock ms the job was received (its time limit counts from there). */
  receivedAt: number;
  /** The job's whole time limit. */
  jobTimeoutMs: number;
}

/** The outcome for a REBOOTING job. */
export type AfterRebootDecision =
  | { kind: 'resume'; remainingMs: number }
  | { kind: 'wait'; waitMs: number }
  | { kind: 'fail'; reason: string }
  | { kind: 'timed-out'; reason: string };

/** Decides what happens to a REBOOTING job now. */
export function decideAfterReboot(input: AfterRebootInput): AfterRebootDecision {
  const { pending, now } = input;
  if (hasRebooted(pending.boot, input.currentBoot)) {
    const used = Math.max(0, now - input.receivedAt);
    const remainingMs = input.jobTimeoutMs - used;
    if (remainingMs <= 0) {
      return {
        kind: 'timed-out',
        reason: `the job's time limit of ${formatMs(input.jobTimeoutMs)} ran out while the device rebooted; the remaining steps did not run`,
      };
    }
    return { kind: 'resume', remainingMs };
  }
  const waited = Math.max(0, now - pending.requestedAt);
  if (waited >= input.rebootTimeoutMs) {
    return {
      kind: 'fail',
      reason: `reboot did not happen: the device was still in the same boot ${formatMs(input.rebootTimeoutMs)} after the reboot was requested (jobs.reboot_timeout)`,
    };
  }
  return { kind: 'wait', waitMs: input.rebootTimeoutMs - waited };
}

/** The outcome for a RESTARTING job, decided by the next agent process (any new process is the restart). */
export type AfterRestartDecision = { kind: 'resume'; remainingMs: number } | { kind: 'timed-out'; reason: string };

/** Decides a job the agent restarted for: it goes on unless its time limit ran out meanwhile. */
export function decideAfterRestart(input: { now: number; receivedAt: number; jobTimeoutMs: number }): AfterRestartDecision {
  const remainingMs = input.jobTimeoutMs - Math.max(0, input.now - input.receivedAt);
  if (remainingMs <= 0) {
    return {
      kind: 'timed-out',
      reason: `the job's time limit of ${formatMs(input.jobTimeoutMs)} ran out while the agent restarted; the remaining steps did not run`,
    };
  }
  return { kind: 'resume', remainingMs };
}

/** "10m", "90s", "1h30m", "250ms": a duration as the config writes it. */
export function formatMs(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const seconds = Math.round(ms / 1000);
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return [h > 0 ? `${h}h` : '', m > 0 ? `${m}m` : '', s > 0 ? `${s}s` : ''].join('') || '0s';
}
