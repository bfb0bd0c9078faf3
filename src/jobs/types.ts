// Types shared by the job engine's parts: the validated job (what document.ts
// produces) and the results the runner produces (what the journal stores).
import type { EffectiveLimits } from './limits.js';

/** A step's action after validation, ready to run. */
export type StepAction =
  | {
      type: 'runCommand';
      /** argv; argv[0] is looked up in PATH unless it contains '/'. With shell, ['/bin/sh','-c',script]. */
      argv: string[];
      shell: boolean;
    }
  | {
      type: 'runHandler';
      /** The handler's absolute, verified path. */
      handlerPath: string;
      /** input.args (the run-as user is prepended as $1 when run). */
      args: string[];
    };

/** One validated step. */
export interface StepSpec {
  /** The step's name, or "step N" (1-based) when it has none. */
  name: string;
  action: StepAction;
  /** The user it runs as (already checked against allowed_users). */
  user: string;
  /** Stderr lines allowed before the step counts as failed (AWS default 0). */
  allowStdErr: number;
  ignoreStepFailure: boolean;
  /** input.timeoutSeconds (extension) in ms, or null. */
  timeoutMs: number | null;
}

/** A step or a `{"parallel": [...]}` group (extension). */
export type StepNode = { kind: 'step'; step: StepSpec } | { kind: 'parallel'; name: string; members: StepSpec[] };

/** A job document that passed validation. */
export interface NormalizedJob {
  jobId: string;
  jobName: string;
  /** The whole job's limit in ms (timeout_seconds, else default_timeout). */
  timeoutMs: number;
  includeStdOut: boolean;
  steps: StepNode[];
  finalStep: StepSpec | null;
  /** The limits it runs with: the device's ceiling, lowered by the document's "limits" (extension); absent: the ceiling. */
  limits?: EffectiveLimits;
}

/** One run of one step, success or failure alike (execa's result shape). */
export interface StepResult {
  name: string;
  /** What ran: argv for runCommand; [handlerPath, user, ...args] for runHandler. */
  argv: string[];
  handler: string | null;
  user: string;
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  canceled: boolean;
  durationMs: number;
  stdout: string;
  stderr: string;
  /** Bytes the child wrote, including those dropped. */
  stdoutBytes: number;
  stderrBytes: number;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  stderrLines: number;
  /** Whether the step failed by the outcome rules (exit, signal, stderr lines, spawn error). */
  failed: boolean;
  /** The step failed but ignoreStepFailure was set. */
  ignored: boolean;
  /** One sentence when failed, e.g. "exited with code 3" or "wrote 3 lines to stderr, allowStdErr is 0". */
  failureReason: string | null;
  /** ISO time the step started. */
  startedAt: string;
  /** Set when the step asked for a reboot (REBOOT_EXIT_CODE, or the reboot handler) and did not fail otherwise. */
  rebootRequested?: true;
}

/**
 * The exit code by which a step asks the agent to reboot the device and then
 * go on with the next step (the code AWS Systems Manager uses for the same).
 */
export const REBOOT_EXIT_CODE = 194;
