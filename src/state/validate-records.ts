// Validators for the shared records the stores keep (contract and job types).
import { isNestedDeeperThan, MAX_DOCUMENT_DEPTH } from '../contract/limits.js';
import type { JobOffer, JobStatus, StatusReport } from '../contract/types.js';
import type { StepResult } from '../jobs/types.js';
import {
  expectArray,
  expectBoolean,
  expectInteger,
  expectNonEmptyString,
  expectNonNegativeNumber,
  expectNullableInteger,
  expectNullableString,
  expectOneOf,
  expectRecord,
  expectString,
  failValidation,
} from './validate.js';

const JOB_STATUSES: readonly JobStatus[] = [
  'QUEUED',
  'IN_PROGRESS',
  'SUCCEEDED',
  'FAILED',
  'TIMED_OUT',
  'REJECTED',
  'CANCELED',
];

/** Validates a stored status report (every field the server overwrites). */
export function validateStatusReport(value: unknown, where = 'report'): StatusReport {
  const r = prefixed(where, () => expectRecord(value, where));
  return prefixed(where, () => ({
    status: expectOneOf(r, 'status', JOB_STATUSES),
    exit_code: expectNullableInteger(r, 'exit_code'),
    stdout: expectString(r, 'stdout'),
    stderr: expectString(r, 'stderr'),
    reason: expectString(r, 'reason'),
    executed_steps: expectInteger(r, 'executed_steps', 0),
    failed_step: expectNullableString(r, 'failed_step'),
    status_details: expectRecord(r.status_details, 'status_details'),
  }));
}

/** Validates a stored job offer. */
export function validateJobOffer(value: unknown, where = 'offer'): JobOffer {
  const r = prefixed(where, () => expectRecord(value, where));
  return prefixed(where, () => {
    if (!('document' in r)) failValidation('document: missing');
    // later copies (structuredClone) recurse: never take back what parse-answer would not have kept
    if (isNestedDeeperThan(r.document, MAX_DOCUMENT_DEPTH)) failValidation(`document: nested more than ${MAX_DOCUMENT_DEPTH} levels deep`);
    const timeoutSeconds = expectNullableInteger(r, 'timeoutSeconds');
    const problems = r.problems === undefined ? undefined : expectArray(r, 'problems').map((p, i) => (typeof p === 'string' ? p : failValidation(`problems[${i}]: not a string`)));
    return {
      jobId: expectNonEmptyString(r, 'jobId'),
      jobName: expectString(r, 'jobName'),
      timeoutSeconds,
      createdAt: expectNullableString(r, 'createdAt'),
      document: r.document,
      ...(problems === undefined ? {} : { problems }),
    };
  });
}

/** Validates a stored step result. */
export function validateStepResult(value: unknown, where = 'step'): StepResult {
  const r = prefixed(where, () => expectRecord(value, where));
  return prefixed(where, () => {
    const argv = expectArray(r, 'argv');
    if (!argv.every((a) => typeof a === 'string')) failValidation('argv: expected strings only');
    return {
      name: expectString(r, 'name'),
      argv: argv as string[],
      handler: expectNullableString(r, 'handler'),
      user: expectString(r, 'user'),
      exitCode: expectNullableInteger(r, 'exitCode'),
      signal: expectNullableString(r, 'signal'),
      timedOut: expectBoolean(r, 'timedOut'),
      canceled: expectBoolean(r, 'canceled'),
      durationMs: expectNonNegativeNumber(r, 'durationMs'),
      stdout: expectString(r, 'stdout'),
      stderr: expectString(r, 'stderr'),
      stdoutBytes: expectInteger(r, 'stdoutBytes', 0),
      stderrBytes: expectInteger(r, 'stderrBytes', 0),
      stdoutTruncated: expectBoolean(r, 'stdoutTruncated'),
      stderrTruncated: expectBoolean(r, 'stderrTruncated'),
      stderrLines: expectInteger(r, 'stderrLines', 0),
      failed: expectBoolean(r, 'failed'),
      ignored: expectBoolean(r, 'ignored'),
      failureReason: expectNullableString(r, 'failureReason'),
      startedAt: expectString(r, 'startedAt'),
      ...(readRebootRequested(r) ? { rebootRequested: true as const } : {}),
    };
  });
}

// Optional: results written before reboots existed have no such field.
function readRebootRequested(r: Record<string, unknown>): boolean {
  if (r.rebootRequested === undefined) return false;
  if (r.rebootRequested !== true) failValidation('rebootRequested: expected true or nothing');
  return true;
}

function prefixed<T>(where: string, run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof Error && !error.message.startsWith(`${where}`)) error.message = `${where}.${error.message}`;
    throw error;
  }
}
