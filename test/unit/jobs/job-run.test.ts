import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { JobRun } from '../../../src/jobs/job-run.js';
import type { StepResult } from '../../../src/jobs/types.js';
import { makeJob, makeOptions, scriptStep } from './engine-helpers.js';
import { createStepResult } from '../../../src/jobs/step-result.js';

const cleanups: string[] = [];
afterEach(async () => {
  for (const dir of cleanups.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function options() {
  const built = await makeOptions();
  cleanups.push(built.workDir);
  return built;
}

function earlier(name: string, extra: Partial<StepResult> = {}): StepResult {
  return createStepResult(
    { name, argv: ['/bin/echo', name], handler: null, user: 'cloudjobs', startedAt: '2025-01-01T00:00:00.000Z' },
    { exitCode: 0, durationMs: 7, stdout: `${name} ran before\n`, stdoutBytes: 12, ...extra },
  );
}

describe('JobRun started after earlier steps', () => {
  it('runs only the steps after them, numbered as in the whole job, and reports all', async () => {
    const job = makeJob([scriptStep('First', 'exit-code.sh', ['9']), scriptStep('Second', 'exit-code.sh', ['0'])]);
    const started: number[] = [];
    const ended: number[] = [];
    const run = new JobRun(
      job,
      await options(),
      { onStepStart: (index) => void started.push(index), onStepEnd: (_r, index) => void ended.push(index) },
      { finished: [earlier('First')] },
    );
    const report = await run.done;
    expect(started).toEqual([2]);
    expect(ended).toEqual([2]);
    expect(report.status).toBe('SUCCEEDED');
    expect(report.reason).toBe('2 of 2 steps succeeded');
    expect(report.stdout).toBe('=== Step: First ===\nFirst ran before\n=== Step: Second ===\nargs: 0\n');
  });

  it('runs nothing more after an earlier step that failed the job', async () => {
    const job = makeJob([scriptStep('First', 'exit-code.sh', ['0']), scriptStep('Second', 'exit-code.sh', ['0'])]);
    const started: number[] = [];
    const failed = earlier('First', { exitCode: 4, failed: true, failureReason: 'exited with code 4' });
    const report = await new JobRun(job, await options(), { onStepStart: (i) => void started.push(i) }, { finished: [failed] }).done;
    expect(started).toEqual([]);
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe('step 1 ("First") failed: exited with code 4');
    expect(report.executed_steps).toBe(1);
  });

  it('refuses more earlier results than the job has steps', async () => {
    const job = makeJob([scriptStep('Only', 'exit-code.sh', ['0'])]);
    const opts = await options();
    expect(() => new JobRun(job, opts, {}, { finished: [earlier('a'), earlier('b')] })).toThrow(
      '2 earlier results for a job of 1 steps',
    );
  });
});

describe('JobRun.halt', () => {
  it('lets the running step finish and starts no other', async () => {
    const job = makeJob([scriptStep('First', 'exit-code.sh', ['0']), scriptStep('Second', 'exit-code.sh', ['0'])]);
    const started: number[] = [];
    let run: JobRun | null = null;
    run = new JobRun(job, await options(), {
      onStepStart: (index) => void started.push(index),
      onStepEnd: () => run?.halt('could not journal: ENOSPC'),
    });
    const report = await run.done;
    expect(started).toEqual([1]);
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe('could not journal: ENOSPC; 1 of 2 steps ran, the rest were not started');
    expect(report.stdout).toBe('=== Step: First ===\nargs: 0\n');
  });

  it('a halt from the step-start hook keeps that step from starting', async () => {
    const job = makeJob([scriptStep('First', 'exit-code.sh', ['0'])]);
    let run: JobRun | null = null;
    run = new JobRun(job, await options(), { onStepStart: () => run?.halt('read-only') });
    const report = await run.done;
    expect(report.executed_steps).toBe(0);
    expect(report.reason).toBe('read-only; 0 of 1 steps ran, the rest were not started');
  });
});

describe('JobRun: a step that asks for a reboot (exit 194)', () => {
  it('ends the run after it, before the next step, with an IN_PROGRESS report saying so', async () => {
    const job = makeJob([
      scriptStep('Mark', 'exit-code.sh', ['0']),
      scriptStep('Reboot', 'exit-code.sh', ['194']),
      scriptStep('Check', 'exit-code.sh', ['0']),
    ]);
    const started: number[] = [];
    const run = new JobRun(job, await options(), { onStepStart: (i) => void started.push(i) });
    const report = await run.done;
    expect(started).toEqual([1, 2]);
    expect(run.rebootRequest).toEqual({ label: 'step 2 ("Reboot")', stepsDone: 2 });
    expect(report.status).toBe('IN_PROGRESS');
    expect(report.reason).toBe('rebooting: step 2 ("Reboot") asked for a reboot; 2 of 3 steps done, the rest run after the boot');
    expect(report.executed_steps).toBe(2);
    expect(report.exit_code).toBeNull();
    const details = report.status_details as { rebooting: boolean; steps: { exit_code: number; reboot_requested?: boolean }[] };
    expect(details.rebooting).toBe(true);
    expect(details.steps.map((s) => [s.exit_code, s.reboot_requested ?? false])).toEqual([
      [0, false],
      [194, true],
    ]);
  });

  it('the run after the boot starts after it, and the final report covers both boots', async () => {
    const job = makeJob([
      scriptStep('Mark', 'exit-code.sh', ['0']),
      scriptStep('Reboot', 'exit-code.sh', ['194']),
      scriptStep('Check', 'exit-code.sh', ['0']),
    ]);
    const first = new JobRun(job, await options());
    await first.done;
    const before = (await first.done).status_details as { steps: unknown[] };
    expect(before.steps).toHaveLength(2);
    const finished = [earlier('Mark'), { ...earlier('Reboot'), exitCode: 194, rebootRequested: true as const }];
    const second = new JobRun(job, await options(), {}, { finished });
    const report = await second.done;
    expect(second.rebootRequest).toBeNull();
    expect(report.status).toBe('SUCCEEDED');
    expect(report.reason).toBe('3 of 3 steps succeeded');
    expect(report.executed_steps).toBe(3);
    expect(report.exit_code).toBe(0);
    expect(report.stdout).toBe(
      '=== Step: Mark ===\nMark ran before\n=== Step: Reboot ===\nReboot ran before\n=== Step: Check ===\nargs: 0\n',
    );
  });

  it('a finalStep that asks reboots too; after the boot nothing is left and the job SUCCEEDED', async () => {
    const job = makeJob([scriptStep('Work', 'exit-code.sh', ['0'])], { finalStep: scriptStep('Reboot', 'exit-code.sh', ['194']) });
    const run = new JobRun(job, await options());
    await run.done;
    expect(run.rebootRequest).toEqual({ label: 'final step ("Reboot")', stepsDone: 2 });
    const after = await new JobRun(job, await options(), {}, { finished: [earlier('Work'), earlier('Reboot', { exitCode: 194 })] }).done;
    expect(after.status).toBe('SUCCEEDED');
    expect(after.executed_steps).toBe(2);
  });

  it('exit 194 with more stderr than allowed is a failure, not a request', async () => {
    const job = makeJob([scriptStep('Noisy', 'stderr-lines.sh', ['2', '194'])]);
    const run = new JobRun(job, await options());
    const report = await run.done;
    expect(run.rebootRequest).toBeNull();
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe('step 1 ("Noisy") failed: wrote 2 lines to stderr, allowStdErr is 0');
  });

  it('a parallel member cannot ask: its exit 194 fails it', async () => {
    const job = makeJob([
      { kind: 'parallel', name: 'group', members: [scriptStep('A', 'exit-code.sh', ['194']), scriptStep('B', 'exit-code.sh', ['0'])] },
      scriptStep('After', 'exit-code.sh', ['0']),
    ]);
    const run = new JobRun(job, await options());
    const report = await run.done;
    expect(run.rebootRequest).toBeNull();
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe(
      'step 1.1 ("A") failed: exited with code 194 (a reboot request) inside a parallel group; only a step of its own may ask for a reboot',
    );
  });
});
