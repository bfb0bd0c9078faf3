import { describe, expect, it } from 'vitest';
import { composeReport, createRejectedReport, describeStepOutcome, truncateChars } from '../../../src/jobs/report.js';
import type { StepResult } from '../../../src/jobs/types.js';
import { createStepResult } from '../../../src/jobs/step-result.js';

function result(name: string, extra: Partial<StepResult> = {}): StepResult {
  return createStepResult(
    { name, argv: ['/bin/echo', name], handler: null, user: 'cloudjobs', startedAt: '2025-01-01T00:00:00.000Z' },
    { exitCode: 0, durationMs: 12, stdout: `${name} out\n`, stdoutBytes: name.length + 5, ...extra },
  );
}

describe('composeReport', () => {
  it('rebuilds a crashed job from journal results alone: FAILED with the caller reason', () => {
    const report = composeReport({
      status: 'FAILED',
      reason: 'the agent restarted while step 2 ("B") was running',
      results: [result('A'), result('B', { exitCode: null, stdout: 'partial' })],
      includeStdOut: true,
      agentVersion: '1.2.3',
      durationMs: 1500,
    });
    expect(report).toEqual({
      status: 'FAILED',
      exit_code: null,
      stdout: '=== Step: A ===\nA out\n=== Step: B ===\npartial\n',
      stderr: '',
      reason: 'the agent restarted while step 2 ("B") was running',
      executed_steps: 2,
      failed_step: null,
      status_details: {
        agent_version: '1.2.3',
        duration_ms: 1500,
        steps: [
          expect.objectContaining({ name: 'A', argv: ['/bin/echo', 'A'], exit_code: 0 }),
          expect.objectContaining({ name: 'B', exit_code: null }),
        ],
      },
    });
  });

  it('takes exit_code and failed_step from the first failed, not ignored step', () => {
    const report = composeReport({
      status: 'FAILED',
      reason: 'x',
      results: [
        result('A', { exitCode: 1, failed: true, ignored: true, failureReason: 'exited with code 1' }),
        result('B', { exitCode: 7, failed: true, failureReason: 'exited with code 7', stderr: 'boom', stderrBytes: 4 }),
      ],
      includeStdOut: false,
      agentVersion: '1',
      durationMs: 0,
    });
    expect(report.exit_code).toBe(7);
    expect(report.failed_step).toBe('B');
    expect(report.stdout).toBe('');
    expect(report.stderr).toBe('=== Step: B ===\nboom\n');
  });

  it('describes a handler step by handler and args', () => {
    const report = composeReport({
      status: 'SUCCEEDED',
      reason: '1 of 1 steps succeeded',
      results: [result('H', { handler: '/usr/lib/cloudjobs/handlers/h.sh', argv: ['/usr/lib/cloudjobs/handlers/h.sh', 'cloudjobs', 'a'] })],
      includeStdOut: true,
      agentVersion: '1',
      durationMs: 0,
    });
    expect((report.status_details.steps as unknown[])[0]).toEqual({
      name: 'H',
      handler: '/usr/lib/cloudjobs/handlers/h.sh',
      args: ['cloudjobs', 'a'],
      user: 'cloudjobs',
      exit_code: 0,
      signal: null,
      duration_ms: 12,
      timed_out: false,
      canceled: false,
      stdout_bytes: 6,
      stderr_bytes: 0,
      stdout_truncated: false,
      stderr_truncated: false,
      failure_reason: null,
      ignored: false,
    });
  });

  it('keeps failed_step within 255 characters', () => {
    const long = 'é'.repeat(300);
    const report = composeReport({
      status: 'FAILED',
      reason: 'x',
      results: [result(long, { failed: true, exitCode: 1, failureReason: 'exited with code 1' })],
      includeStdOut: true,
      agentVersion: '1',
      durationMs: 0,
    });
    expect(report.failed_step).toBe('é'.repeat(255));
  });
});

describe('createRejectedReport', () => {
  it('reports REJECTED with every problem and nothing executed', () => {
    const report = createRejectedReport(['step 1: input.command is missing', 'version must be "1.0"'], '1.2.3');
    expect(report).toEqual({
      status: 'REJECTED',
      exit_code: null,
      stdout: '',
      stderr: '',
      reason: 'job document rejected: step 1: input.command is missing; version must be "1.0"',
      executed_steps: 0,
      failed_step: null,
      status_details: {
        agent_version: '1.2.3',
        duration_ms: 0,
        steps: [],
        problems: ['step 1: input.command is missing', 'version must be "1.0"'],
      },
    });
  });
});

describe('describeStepOutcome', () => {
  it('says failed for a failure and was stopped for a stop', () => {
    expect(describeStepOutcome('step 2', result('Check', { failed: true, failureReason: 'exited with code 3' }))).toBe(
      'step 2 ("Check") failed: exited with code 3',
    );
    expect(
      describeStepOutcome('step 1', result('Sleep', { failed: true, timedOut: true, failureReason: 'stopped: its time limit of 2s ran out' })),
    ).toBe('step 1 ("Sleep") was stopped: its time limit of 2s ran out');
    expect(describeStepOutcome('step 3', result('step 3', { failed: true, failureReason: 'exited with code 1' }))).toBe(
      'step 3 failed: exited with code 1',
    );
  });
});

describe('truncateChars', () => {
  it('does not split a surrogate pair', () => {
    expect(truncateChars('ab😀', 3)).toBe('ab');
    expect(truncateChars('abc', 3)).toBe('abc');
  });
});
