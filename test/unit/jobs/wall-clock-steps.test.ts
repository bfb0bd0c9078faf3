// A Pi has no RTC: NTP may set its wall clock years forward (or an operator
// back) while a job runs. Durations and time limits are elapsed time: a short
// step reports a short duration, a job's time limit fires after its length,
// and snapshots never show hours that did not pass.
import { describe, expect, it } from 'vitest';
import { createSystemClock, type Clock } from '../../../src/clock/clock.js';
import { startJob } from '../../../src/jobs/engine.js';
import { commandStep, makeJob, makeOptions } from './engine-helpers.js';

const HOUR = 3600_000;

// The system clock whose wall reading the test sets, as NTP would.
function steppableClock(): Clock & { stepWall(ms: number): void } {
  const base = createSystemClock();
  let offset = 0;
  return {
    now: () => base.now() + offset,
    monotonic: () => base.monotonic(),
    sleep: (ms, signal) => base.sleep(ms, signal),
    timer: (ms, fire) => base.timer(ms, fire),
    stepWall: (ms) => void (offset += ms),
  };
}

function stepDurations(report: { status_details: Record<string, unknown> }): number[] {
  return (report.status_details.steps as { duration_ms: number }[]).map((s) => s.duration_ms);
}

describe('a wall clock set during a job', () => {
  it('forward two years: the step and job durations are the time that passed, not years', async () => {
    const clock = steppableClock();
    const run = startJob(makeJob([commandStep('Nap', ['sh', '-c', 'sleep 0.3'])]), await makeOptions({ clock }));
    setTimeout(() => clock.stepWall(2 * 365 * 24 * HOUR), 100);
    const report = await run.done;
    expect(report.status).toBe('SUCCEEDED');
    const [step] = stepDurations(report);
    // a bound far above 0.3 s and far below the jump, not a timing
    expect(step).toBeGreaterThan(0);
    expect(step).toBeLessThan(HOUR);
    expect(report.status_details.duration_ms as number).toBeLessThan(HOUR);
  });

  it('back an hour: durations are never negative or zero for a step that ran, and snapshots agree', async () => {
    const clock = steppableClock();
    const run = startJob(makeJob([commandStep('Nap', ['sh', '-c', 'sleep 0.3; echo done'])]), await makeOptions({ clock }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    clock.stepWall(-HOUR);
    const running = run.snapshot();
    expect(running.status_details.duration_ms as number).toBeGreaterThan(0);
    expect(running.status_details.duration_ms as number).toBeLessThan(HOUR);
    const report = await run.done;
    expect(stepDurations(report)[0]).toBeGreaterThan(0);
    expect(report.status_details.duration_ms as number).toBeGreaterThan(0);
  });

  it('forward while a job with a 500 ms time limit runs: the limit still needs its 500 ms, and the job is stopped by it', async () => {
    const clock = steppableClock();
    const run = startJob(makeJob([commandStep('Long', ['sh', '-c', 'sleep 5'])], { timeoutMs: 500 }), await makeOptions({ clock }));
    clock.stepWall(HOUR);
    const report = await run.done;
    expect(report.status).toBe('TIMED_OUT');
    expect(stepDurations(report)[0]).toBeLessThan(HOUR);
  });
});
