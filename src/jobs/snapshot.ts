// The IN_PROGRESS report of a running job, as a pure function of the steps
// that ended and the output the running ones wrote so far.
import type { StatusReport } from '../contract/types.js';
import type { CapturedText } from './output-buffer.js';
import { composeReport } from './report.js';
import { stepIdentity } from './run-step.js';
import { createStepResult, outputFields } from './step-result.js';
import type { StepResult, StepSpec } from './types.js';

/** A step still running, with what it wrote so far. */
export interface ActiveStep {
  spec: StepSpec;
  label: string;
  startedAtMs: number;
  output: { stdout: CapturedText; stderr: CapturedText };
}

/** What composeSnapshot needs. */
export interface SnapshotInput {
  /** Results of the ended steps, in the order they ended. */
  finished: readonly StepResult[];
  active: readonly ActiveStep[];
  total: number;
  includeStdOut: boolean;
  agentVersion: string;
  /** When the job started and now, in clock ms. */
  startedAtMs: number;
  now: number;
}

/**
 * Builds the progress report in the final report's full shape: output of
 * ended and running steps, per-step details of the ended ones only, no exit
 * code or failed step yet, and the names of the running steps.
 */
export function composeSnapshot(input: SnapshotInput): StatusReport {
  const { finished, active, total, now } = input;
  const partial = active.map((entry) => describeRunning(entry, now));
  const runningText = active.map((entry) => describeLabel(entry.label, entry.spec.name)).join(', ');
  const base = composeReport({
    status: 'IN_PROGRESS',
    reason: `${finished.length} of ${total} steps done${runningText === '' ? '' : `; running ${runningText}`}`,
    decisive: null,
    results: [...finished, ...partial],
    includeStdOut: input.includeStdOut,
    agentVersion: input.agentVersion,
    durationMs: now - input.startedAtMs,
    extraDetails: { running: active.map((entry) => entry.spec.name) },
  });
  const details = base.status_details as { steps: unknown[] };
  return {
    ...base,
    exit_code: null,
    failed_step: null,
    executed_steps: finished.length,
    status_details: { ...base.status_details, steps: details.steps.slice(0, finished.length) },
  };
}

/** What composeRebootingReport needs. */
export interface RebootingInput extends Omit<SnapshotInput, 'active'> {
  /** 'step 2 ("Reboot")': the step that asked. */
  requestedBy: string;
}

/** The IN_PROGRESS report sent before the agent reboots for a job: every step so far, and who asked. */
export function composeRebootingReport(input: RebootingInput): StatusReport {
  const base = composeSnapshot({ ...input, active: [] });
  return {
    ...base,
    reason: `rebooting: ${input.requestedBy} asked for a reboot; ${input.finished.length} of ${input.total} steps done, the rest run after the boot`,
    status_details: { ...base.status_details, rebooting: true },
  };
}

// A running step as a result that has not failed: its output so far and its age.
function describeRunning(entry: ActiveStep, now: number): StepResult {
  const { stdout, stderr } = entry.output;
  return createStepResult(stepIdentity(entry.spec, now), { durationMs: now - entry.startedAtMs, ...outputFields(stdout, stderr) });
}

function describeLabel(label: string, name: string): string {
  return label === name ? label : `${label} (${JSON.stringify(name.length > 200 ? `${name.slice(0, 200)}…` : name)})`;
}
