// The human form of a job's report for `cloudjobs exec`: the output as the
// cloud would get it, one line per step, and the final status.
import type { StatusReport } from '../contract/types.js';

interface StepLine {
  name?: unknown;
  exit_code?: unknown;
  signal?: unknown;
  duration_ms?: unknown;
  failure_reason?: unknown;
  ignored?: unknown;
  stdout_truncated?: unknown;
  stderr_truncated?: unknown;
}

/** Renders `report` for a terminal: output, a line per step, and the status with its reason. */
export function formatExecResult(report: StatusReport): string {
  const lines: string[] = [];
  if (report.stdout !== '') lines.push(report.stdout.replace(/\n$/, ''));
  if (report.stderr !== '') lines.push('--- stderr ---', report.stderr.replace(/\n$/, ''));
  const steps = Array.isArray(report.status_details.steps) ? (report.status_details.steps as StepLine[]) : [];
  if (steps.length > 0) {
    lines.push('--- steps ---');
    steps.forEach((step, i) => lines.push(formatStepLine(step, i + 1)));
  }
  const failed = report.failed_step === null ? '' : ` (failed step: ${report.failed_step})`;
  lines.push(`${report.status}: ${report.reason}${failed}`);
  return `${lines.join('\n')}\n`;
}

function formatStepLine(step: StepLine, number: number): string {
  const name = typeof step.name === 'string' ? step.name : `step ${number}`;
  const failure = typeof step.failure_reason === 'string' ? step.failure_reason : null;
  const verdict = failure === null ? 'ok' : step.ignored === true ? 'failed (ignored)' : 'FAILED';
  const facts: string[] = [];
  if (typeof step.exit_code === 'number') facts.push(`exit ${step.exit_code}`);
  if (typeof step.signal === 'string') facts.push(`signal ${step.signal}`);
  if (typeof step.duration_ms === 'number') facts.push(`${step.duration_ms} ms`);
  if (step.stdout_truncated === true || step.stderr_truncated === true) facts.push('output truncated');
  const why = failure === null ? '' : `: ${failure}`;
  return `${number}. ${name}: ${verdict}${facts.length > 0 ? ` [${facts.join(', ')}]` : ''}${why}`;
}
