import { describe, expect, it } from 'vitest';
import { composeSnapshot } from '../../../src/jobs/snapshot.js';
import type { StepSpec } from '../../../src/jobs/types.js';
import { createStepResult } from '../../../src/jobs/step-result.js';

const spec = (name: string): StepSpec => ({
  name,
  action: { type: 'runCommand', argv: ['/bin/sleep', '9'], shell: false },
  user: 'cloudjobs',
  allowStdErr: 0,
  ignoreStepFailure: false,
  timeoutMs: null,
});

const ended = createStepResult(
  { name: 'First', argv: ['/bin/echo', 'hi'], handler: null, user: 'cloudjobs', startedAt: '2025-01-01T00:00:00.000Z' },
  { exitCode: 0, durationMs: 40, stdout: 'hi\n', stdoutBytes: 3 },
);

const text = (t: string, lines = 0) => ({ text: t, bytes: Buffer.byteLength(t), truncated: false, lines });

describe('composeSnapshot', () => {
  it('shows ended and running output, details of ended steps only, and who runs', () => {
    const report = composeSnapshot({
      finished: [ended],
      active: [
        { spec: spec('step 2.1'), label: 'step 2.1', startedAtMs: 1500, output: { stdout: text('half'), stderr: text('warn\n', 1) } },
        { spec: spec('Other'), label: 'step 2.2', startedAtMs: 1800, output: { stdout: text(''), stderr: text('') } },
      ],
      total: 4,
      includeStdOut: true,
      agentVersion: '1.0.0',
      startedAtMs: 1000,
      now: 2000,
    });
    expect(report).toMatchObject({
      status: 'IN_PROGRESS',
      exit_code: null,
      failed_step: null,
      executed_steps: 1,
      reason: '1 of 4 steps done; running step 2.1, step 2.2 ("Other")',
      stdout: '=== Step: First ===\nhi\n=== Step: step 2.1 ===\nhalf\n=== Step: Other ===\n',
      stderr: '=== Step: step 2.1 ===\nwarn\n',
    });
    expect(report.status_details).toMatchObject({ agent_version: '1.0.0', duration_ms: 1000, running: ['step 2.1', 'Other'] });
    expect((report.status_details.steps as unknown[]).length).toBe(1);
  });

  it('says no step runs between steps and hides stdout unless asked', () => {
    const report = composeSnapshot({
      finished: [ended],
      active: [],
      total: 2,
      includeStdOut: false,
      agentVersion: '1.0.0',
      startedAtMs: 0,
      now: 10,
    });
    expect(report.reason).toBe('1 of 2 steps done');
    expect(report.stdout).toBe('');
    expect(report.status_details.running).toEqual([]);
  });
});
