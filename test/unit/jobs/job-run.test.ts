import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { JobRun } from '../../../src/jobs/job-run.js';
import type { StepResult } from '../../../src/jobs/types.js';
import { makeJob, makeOptions, scriptStep } from './engine-helpers.js';

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
  return {
    name,
    argv: ['/bin/echo', name],
    handler: null,
    user: 'cloudjobs',
    exitCode: 0,
    signal: null,
    timedOut: false,
    canceled: false,
    durationMs: 7,
    stdout: `${name} ran before\n`,
    stderr: '',
    stdoutBytes: 12,
    stderrBytes: 0,
    stdoutTruncated: false,
    stderrTruncated: false,
    stderrLines: 0,
    failed: false,
    ignored: false,
    failureReason: null,
    startedAt: '2025-01-01T00:00:00.000Z',
    ...extra,
  };
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
