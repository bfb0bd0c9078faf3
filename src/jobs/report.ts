// Turns StepResults into the StatusReport the cloud stores
// (test/cloud/CONTRACT.md "Status update"): every column filled, output headed
// per step, and the per-step details under status_details.
import type { JobStatus, StatusReport } from '../contract/types.js';
import type { StepResult } from './types.js';

/** What composeReport needs: the results, and the verdict the caller reached. */
export interface ReportInput {
  status: JobStatus;
  /** One sentence, e.g. `step 2 ("Check") failed: exited with code 3`. */
  reason: string;
  results: readonly StepResult[];
  includeStdOut: boolean;
  agentVersion: string;
  durationMs: number;
  /** The step that decided the outcome; default: the first failed, not ignored result. */
  decisive?: StepResult | null;
  /** Extra fields for status_details (e.g. steps still running in a progress report). */
  extraDetails?: Record<string, unknown>;
}

const FAILED_STEP_MAX = 255;

/** Builds a full StatusReport from step results (also for a job rebuilt from the journal after a crash). */
export function composeReport(input: ReportInput): StatusReport {
  const { results } = input;
  const decisive =
    input.decisive !== undefined ? input.decisive : (results.find((r) => r.failed && !r.ignored) ?? null);
  const last = results[results.length - 1] ?? null;
  const exitSource = decisive ?? last;
  return {
    status: input.status,
    exit_code: exitSource?.exitCode ?? null,
    stdout: input.includeStdOut ? joinOutput(results, 'stdout', true) : '',
    stderr: joinOutput(results, 'stderr', false),
    reason: input.reason,
    executed_steps: results.length,
    failed_step: input.status === 'SUCCEEDED' || decisive === null ? null : truncateChars(decisive.name, FAILED_STEP_MAX),
    status_details: {
      agent_version: input.agentVersion,
      duration_ms: Math.max(0, Math.round(input.durationMs)),
      steps: results.map(describeStepDetails),
      ...input.extraDetails,
    },
  };
}

/** The REJECTED report of a job document that failed validation: nothing ran. */
export function createRejectedReport(problems: readonly string[], agentVersion: string): StatusReport {
  return {
    status: 'REJECTED',
    exit_code: null,
    stdout: '',
    stderr: '',
    reason: `job document rejected: ${problems.join('; ')}`,
    executed_steps: 0,
    failed_step: null,
    status_details: { agent_version: agentVersion, duration_ms: 0, steps: [], problems: [...problems] },
  };
}

/** One sentence about a failed or stopped step, e.g. `step 2 ("Check") failed: exited with code 3`. */
export function describeStepOutcome(label: string, result: StepResult): string {
  const who = label === result.name ? label : `${label} (${JSON.stringify(truncateChars(result.name, 200))})`;
  const why = result.failureReason ?? 'failed';
  if (result.timedOut || result.canceled) return `${who} was ${why}`;
  return `${who} failed: ${why}`;
}

/** The per-step object under status_details.steps. */
function describeStepDetails(result: StepResult): Record<string, unknown> {
  return {
    name: result.name,
    ...(result.handler === null ? { argv: result.argv } : { handler: result.handler, args: result.argv.slice(1) }),
    user: result.user,
    exit_code: result.exitCode,
    signal: result.signal,
    duration_ms: result.durationMs,
    timed_out: result.timedOut,
    canceled: result.canceled,
    stdout_bytes: result.stdoutBytes,
    stderr_bytes: result.stderrBytes,
    stdout_truncated: result.stdoutTruncated,
    stderr_truncated: result.stderrTruncated,
    failure_reason: result.failureReason,
    ignored: result.ignored,
    ...(result.rebootRequested ? { reboot_requested: true } : {}),
  };
}

/** Cuts `text` to at most `max` characters without splitting a surrogate pair. */
export function truncateChars(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max;
  const code = text.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end -= 1;
  return text.slice(0, end);
}

// Every step's stdout part is headed (so an empty step shows it ran); a stderr
// part only when the step wrote to stderr.
function joinOutput(results: readonly StepResult[], stream: 'stdout' | 'stderr', always: boolean): string {
  const parts: string[] = [];
  for (const result of results) {
    const text = result[stream];
    if (!always && text === '') continue;
    parts.push(`=== Step: ${result.name} ===\n${text === '' || text.endsWith('\n') ? text : `${text}\n`}`);
  }
  return parts.join('');
}
