// The one way a StepResult is made: the step's identity, plus what happened.
// Run, unstarted, running (a snapshot) and test results all start here, so a
// new field is added in one place.
import type { CapturedText } from './output-buffer.js';
import type { StepResult } from './types.js';

/** What names a step in its result. */
export type StepIdentity = Pick<StepResult, 'name' | 'argv' | 'handler' | 'user' | 'startedAt'>;

/** A step result; what `happened` does not say did not happen (no exit code, no output, not failed). */
export function createStepResult(step: StepIdentity, happened: Partial<StepResult> = {}): StepResult {
  return {
    ...step,
    exitCode: null,
    signal: null,
    timedOut: false,
    canceled: false,
    durationMs: 0,
    stdout: '',
    stderr: '',
    stdoutBytes: 0,
    stderrBytes: 0,
    stdoutTruncated: false,
    stderrTruncated: false,
    stderrLines: 0,
    failed: false,
    ignored: false,
    failureReason: null,
    ...happened,
  };
}

/** A result's output fields from what the buffers captured. */
export function outputFields(stdout: CapturedText, stderr: CapturedText): Partial<StepResult> {
  return {
    stdout: stdout.text,
    stderr: stderr.text,
    stdoutBytes: stdout.bytes,
    stderrBytes: stderr.bytes,
    stdoutTruncated: stdout.truncated,
    stderrTruncated: stderr.truncated,
    stderrLines: stderr.lines,
  };
}
