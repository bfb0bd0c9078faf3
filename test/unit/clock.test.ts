import { describe, expect, it } from 'vitest';
import { createManualClock, createScaledClock } from '../../src/clock/clock.js';
import { AbortedError } from '../../src/errors/errors.js';

describe('manual clock', () => {
  it('resolves sleeps in time order as it advances', async () => {
    const clock = createManualClock(1000);
    const order: number[] = [];
    void clock.sleep(300).then(() => order.push(clock.now()));
    void clock.sleep(100).then(() => order.push(clock.now()));
    await clock.advance(200);
    expect(order).toEqual([1100]);
    await clock.advance(200);
    expect(order).toEqual([1100, 1300]);
    expect(clock.now()).toBe(1400);
  });

  it('rejects a sleep when its signal aborts', async () => {
    const clock = createManualClock();
    const controller = new AbortController();
    const pending = clock.sleep(1000, controller.signal);
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(AbortedError);
    expect(clock.pending()).toBe(0);
  });
});

describe('clock timers', () => {
  it('fires a manual timer when advance passes it, in order with sleeps', async () => {
    const clock = createManualClock(0);
    const fired: string[] = [];
    clock.timer(200, () => fired.push(`timer@${clock.now()}`));
    void clock.sleep(100).then(() => fired.push(`sleep@${clock.now()}`));
    expect(clock.pending()).toBe(2);
    await clock.advance(150);
    expect(fired).toEqual(['sleep@100']);
    await clock.advance(100);
    expect(fired).toEqual(['sleep@100', 'timer@200']);
    expect(clock.pending()).toBe(0);
  });

  it('never fires a cancelled timer', async () => {
    const manual = createManualClock(0);
    let manualFired = false;
    const cancel = manual.timer(100, () => (manualFired = true));
    cancel();
    expect(manual.pending()).toBe(0);
    await manual.advance(1000);
    expect(manualFired).toBe(false);

    const scaled = createScaledClock(100);
    let scaledFired = false;
    scaled.timer(1000, () => (scaledFired = true))();
    await scaled.sleep(3000);
    expect(scaledFired).toBe(false);
  });

  it('fires a scaled timer after ms/scale real milliseconds', async () => {
    const clock = createScaledClock(100);
    const started = Date.now();
    const firedAfter = await new Promise<number>((resolve) => clock.timer(2000, () => resolve(Date.now() - started)));
    expect(firedAfter).toBeGreaterThanOrEqual(15);
    expect(firedAfter).toBeLessThan(1000);
  });
});

describe('scaled clock', () => {
  it('advances now() faster than real time by its scale', async () => {
    const clock = createScaledClock(50);
    const before = clock.now();
    await clock.sleep(1000);
    expect(clock.now() - before).toBeGreaterThanOrEqual(1000);
  });
});

describe('the two readings: wall clock and monotonic', () => {
  it('a manual clock: stepWall moves now() only; advance moves both', async () => {
    const clock = createManualClock(5000);
    clock.stepWall(-3600_000);
    expect([clock.now(), clock.monotonic()]).toEqual([5000 - 3600_000, 5000]);
    await clock.advance(250);
    expect([clock.now(), clock.monotonic()]).toEqual([5250 - 3600_000, 5250]);
  });

  it('the system clock: monotonic() moves forward with real waits', async () => {
    const clock = createScaledClock(10);
    const before = clock.monotonic();
    await new Promise((resolve) => setTimeout(resolve, 30));
    const after = clock.monotonic();
    expect(after).toBeGreaterThan(before);
    expect([Number.isInteger(before), Number.isInteger(after)]).toEqual([true, true]);
  });
});
