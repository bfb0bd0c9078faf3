import { describe, expect, it } from 'vitest';
import { createIdleReclaimer } from '../../../src/agent/idle-reclaim.js';
import { createManualClock } from '../../../src/clock/clock.js';

function setup() {
  const clock = createManualClock(1000);
  const stop = new AbortController();
  let collections = 0;
  const reclaimer = createIdleReclaimer({ clock, reclaim: () => (collections += 1), delayMs: 1000, signal: stop.signal });
  return { clock, stop, reclaimer, collections: () => collections };
}

describe('createIdleReclaimer', () => {
  it('collects once, delayMs after a poke', async () => {
    const { clock, reclaimer, collections } = setup();
    reclaimer.poke();
    await clock.advance(999);
    expect(collections()).toBe(0);
    await clock.advance(1);
    expect(collections()).toBe(1);
    await clock.advance(10_000);
    expect(collections()).toBe(1);
    expect(clock.pending()).toBe(0);
  });

  it('collects delayMs after a poke whatever the wall clock does meanwhile', async () => {
    const { clock, reclaimer, collections } = setup();
    reclaimer.poke();
    clock.stepWall(-3600_000);
    await clock.advance(999);
    expect(collections()).toBe(0);
    await clock.advance(1);
    expect(collections()).toBe(1);
    reclaimer.poke();
    clock.stepWall(7200_000);
    await clock.advance(999);
    expect(collections()).toBe(1);
    await clock.advance(1);
    expect(collections()).toBe(2);
  });

  it('a poke during the wait moves the one collection later (a queue of jobs costs one at its end)', async () => {
    const { clock, reclaimer, collections } = setup();
    for (let i = 0; i < 5; i += 1) {
      reclaimer.poke();
      await clock.advance(600);
    }
    expect(collections()).toBe(0);
    await clock.advance(400);
    expect(collections()).toBe(1);
    expect(reclaimer.runs()).toBe(1);
    reclaimer.poke();
    await clock.advance(1000);
    expect(collections()).toBe(2);
  });

  it('runs nothing after the signal aborted', async () => {
    const { clock, stop, reclaimer, collections } = setup();
    reclaimer.poke();
    stop.abort();
    await clock.advance(5000);
    reclaimer.poke();
    await clock.advance(5000);
    expect(collections()).toBe(0);
    expect(clock.pending()).toBe(0);
  });
});
