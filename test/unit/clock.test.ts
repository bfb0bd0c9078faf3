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

describe('scaled clock', () => {
  it('advances now() faster than real time by its scale', async () => {
    const clock = createScaledClock(50);
    const before = clock.now();
    await clock.sleep(1000);
    expect(clock.now() - before).toBeGreaterThanOrEqual(1000);
  });
});
