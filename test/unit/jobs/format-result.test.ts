import { describe, expect, it } from 'vitest';
import { formatExecResult } from '../../../src/jobs/format-result.js';

describe('formatExecResult', () => {
  it('shows output, a line per step and the final status', () => {
    const text = formatExecResult({
      status: 'FAILED',
      exit_code: 3,
      stdout: '=== Step: A ===\nhi\n=== Step: Check ===\n',
      stderr: '=== Step: Check ===\nbad\n',
      reason: 'step 2 ("Check") failed: exited with code 3',
      executed_steps: 2,
      failed_step: 'Check',
      status_details: {
        agent_version: '1',
        duration_ms: 20,
        steps: [
          { name: 'A', exit_code: 0, signal: null, duration_ms: 5, failure_reason: null, ignored: false },
          { name: 'Check', exit_code: 3, signal: null, duration_ms: 7, failure_reason: 'exited with code 3', ignored: false, stderr_truncated: true },
        ],
      },
    });
    expect(text).toBe(
      [
        '=== Step: A ===',
        'hi',
        '=== Step: Check ===',
        '--- stderr ---',
        '=== Step: Check ===',
        'bad',
        '--- steps ---',
        '1. A: ok [exit 0, 5 ms]',
        '2. Check: FAILED [exit 3, 7 ms, output truncated]: exited with code 3',
        'FAILED: step 2 ("Check") failed: exited with code 3 (failed step: Check)',
        '',
      ].join('\n'),
    );
  });

  it('shows a REJECTED report as its reason alone', () => {
    const text = formatExecResult({
      status: 'REJECTED',
      exit_code: null,
      stdout: '',
      stderr: '',
      reason: 'job document rejected: version must be "1.0"',
      executed_steps: 0,
      failed_step: null,
      status_details: { agent_version: '1', duration_ms: 0, steps: [] },
    });
    expect(text).toBe('REJECTED: job document rejected: version must be "1.0"\n');
  });

  it('marks a killed step and an ignored failure', () => {
    const text = formatExecResult({
      status: 'TIMED_OUT',
      exit_code: null,
      stdout: '',
      stderr: '',
      reason: 'step 2 ("S") was stopped: its time limit of 1s ran out',
      executed_steps: 2,
      failed_step: 'S',
      status_details: {
        steps: [
          { name: 'F', exit_code: 1, signal: null, duration_ms: 1, failure_reason: 'exited with code 1', ignored: true },
          { name: 'S', exit_code: null, signal: 'SIGKILL', duration_ms: 1200, failure_reason: 'stopped: its time limit of 1s ran out', ignored: false },
        ],
      },
    });
    expect(text).toBe(
      [
        '--- steps ---',
        '1. F: failed (ignored) [exit 1, 1 ms]: exited with code 1',
        '2. S: FAILED [signal SIGKILL, 1200 ms]: stopped: its time limit of 1s ran out',
        'TIMED_OUT: step 2 ("S") was stopped: its time limit of 1s ran out (failed step: S)',
        '',
      ].join('\n'),
    );
  });
});
