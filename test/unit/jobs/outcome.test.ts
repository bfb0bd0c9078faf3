import { describe, expect, it } from 'vitest';
import { decideOutcome, findDecisive, type FinishedStep } from '../../../src/jobs/outcome.js';
import type { StepResult } from '../../../src/jobs/types.js';
import { createStepResult } from '../../../src/jobs/step-result.js';

function result(name: string, extra: Partial<StepResult> = {}): StepResult {
  return createStepResult(
    { name, argv: ['/bin/true'], handler: null, user: 'cloudjobs', startedAt: '2025-01-01T00:00:00.000Z' },
    { exitCode: 0, durationMs: 5, ...extra },
  );
}

const failed = (name: string, extra: Partial<StepResult> = {}) =>
  result(name, { exitCode: 3, failed: true, failureReason: 'exited with code 3', ...extra });
const stopped = (name: string, how: 'timedOut' | 'canceled', reason: string) =>
  result(name, { exitCode: null, signal: 'SIGTERM', failed: true, failureReason: reason, [how]: true });

function steps(...results: StepResult[]): FinishedStep[] {
  return results.map((r, i) => ({ index: i + 1, label: `step ${i + 1}`, result: r }));
}

describe('decideOutcome', () => {
  it('SUCCEEDED counts ignored failures', () => {
    const verdict = decideOutcome({ finished: steps(result('A'), failed('B', { ignored: true })), total: 2, stop: null, timeoutMs: 1000 });
    expect(verdict).toEqual({ status: 'SUCCEEDED', reason: '1 of 2 steps succeeded, 1 failed with ignoreStepFailure set', decisive: null });
  });

  it('FAILED names the first failed, not ignored step by its label and name', () => {
    const b = failed('Check');
    const verdict = decideOutcome({ finished: steps(result('A'), b, failed('C')), total: 4, stop: null, timeoutMs: 1000 });
    expect(verdict).toEqual({ status: 'FAILED', reason: 'step 2 ("Check") failed: exited with code 3', decisive: b });
  });

  it("TIMED_OUT when the deciding step ran out of its own limit", () => {
    const a = stopped('A', 'timedOut', 'stopped: its time limit of 300ms ran out');
    const verdict = decideOutcome({ finished: steps(a), total: 2, stop: null, timeoutMs: 1000 });
    expect(verdict).toEqual({ status: 'TIMED_OUT', reason: 'step 1 ("A") was stopped: its time limit of 300ms ran out', decisive: a });
  });

  it('a stop that cut the job short decides first', () => {
    const a = stopped('A', 'canceled', 'stopped: the job was canceled');
    expect(decideOutcome({ finished: steps(a), total: 2, stop: 'cancel', timeoutMs: 1000 })).toEqual({
      status: 'CANCELED',
      reason: 'step 1 ("A") was stopped: the job was canceled',
      decisive: a,
    });
    expect(decideOutcome({ finished: steps(result('A')), total: 2, stop: 'cancel', timeoutMs: 1000 })).toEqual({
      status: 'CANCELED',
      reason: 'the job was canceled after 1 of 2 steps',
      decisive: null,
    });
    expect(decideOutcome({ finished: steps(result('A')), total: 3, stop: 'job-timeout', timeoutMs: 4000 })).toEqual({
      status: 'TIMED_OUT',
      reason: "the job's time limit of 4s ran out after 1 of 3 steps",
      decisive: null,
    });
    expect(decideOutcome({ finished: steps(a), total: 1, stop: 'shutdown', timeoutMs: 1000 })).toEqual({
      status: 'FAILED',
      reason: 'stopped by agent shutdown',
      decisive: a,
    });
  });

  it('a stop that came after every step ended does not change the outcome', () => {
    const verdict = decideOutcome({ finished: steps(result('A'), result('B')), total: 2, stop: 'shutdown', timeoutMs: 1000 });
    expect(verdict.status).toBe('SUCCEEDED');
  });
});

describe('findDecisive', () => {
  it('skips ignored failures and keeps the order steps ended in', () => {
    const finished = steps(failed('A', { ignored: true }), failed('B'), failed('C'));
    expect(findDecisive(finished)?.label).toBe('step 2');
    expect(findDecisive(steps(result('A')))).toBeNull();
  });
});

describe('decideOutcome after a halt', () => {
  it('FAILED with the halt reason when steps were left unstarted', () => {
    const verdict = decideOutcome({ finished: steps(result('A')), total: 3, stop: null, halted: 'state_dir is full', timeoutMs: 1000 });
    expect(verdict).toEqual({ status: 'FAILED', reason: 'state_dir is full; 1 of 3 steps ran, the rest were not started', decisive: null });
  });

  it('a failed step still decides, and a halt after the last step changes nothing', () => {
    const b = failed('B');
    expect(decideOutcome({ finished: steps(result('A'), b), total: 3, stop: null, halted: 'full', timeoutMs: 1000 }).decisive).toBe(b);
    expect(decideOutcome({ finished: steps(result('A')), total: 1, stop: null, halted: 'full', timeoutMs: 1000 }).status).toBe('SUCCEEDED');
  });
});
