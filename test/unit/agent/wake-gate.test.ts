import { describe, expect, it } from 'vitest';
import { createWakeGate, decideWake } from '../../../src/agent/wake-gate.js';
import { createManualClock } from '../../../src/clock/clock.js';
import { AbortedError } from '../../../src/errors/errors.js';

describe('decideWake', () => {
  it('nothing pending: no wake-up', () => {
    expect(decideWake({ pending: false, lastPollAt: 5000 }, 1000)).toBeNull();
  });
  it('pending before any poll: due at once', () => {
    expect(decideWake({ pending: true, lastPollAt: null }, 1000)).toBe(0);
  });
  it('pending: due one gap after the last poll started', () => {
    expect(decideWake({ pending: true, lastPollAt: 5000 }, 1000)).toBe(6000);
  });
});

describe('createWakeGate', () => {
  const never = new AbortController().signal;

  it('a wake-up ends an idle wait (once the gap since the last poll has passed)', async () => {
    const clock = createManualClock(10_000);
    const gate = createWakeGate(clock, 1000);
    gate.pollStarting();
    await clock.advance(2000);
    const waiting = gate.sleep(30_000, never);
    await clock.advance(100);
    gate.wake();
    expect(await waiting).toBe('wake');
    expect(clock.now()).toBe(12_100);
    expect(gate.counts()).toEqual({ wakes: 1, served: 1 });
  });

  it('a wall clock set back or forward during the wait changes neither its length nor the gap', async () => {
    const clock = createManualClock(0);
    const gate = createWakeGate(clock, 1000);
    gate.pollStarting();
    let done: string | null = null;
    const waiting = gate.sleep(30_000, never).then((r) => (done = r));
    clock.stepWall(-3600_000);
    await clock.advance(29_999);
    expect(done).toBeNull();
    await clock.advance(1);
    expect(await waiting).toBe('timeout');
    gate.pollStarting();
    clock.stepWall(7200_000);
    const woken = gate.sleep(30_000, never);
    gate.wake();
    await clock.advance(999);
    expect(gate.counts().served).toBe(0);
    await clock.advance(1);
    expect(await woken).toBe('wake');
  });

  it('without a wake-up the wait runs its whole length', async () => {
    const clock = createManualClock(0);
    const gate = createWakeGate(clock, 1000);
    gate.pollStarting();
    const waiting = gate.sleep(30_000, never);
    await clock.advance(30_000);
    expect(await waiting).toBe('timeout');
  });

  it('1,000 wake-ups between two polls are one wake-up, served no sooner than the gap', async () => {
    const clock = createManualClock(0);
    const gate = createWakeGate(clock, 1000);
    gate.pollStarting();
    let done: string | null = null;
    const waiting = gate.sleep(30_000, never).then((r) => (done = r));
    for (let i = 0; i < 1000; i += 1) gate.wake();
    await clock.advance(999);
    expect(done).toBeNull();
    await clock.advance(1);
    expect(await waiting).toBe('wake');
    expect(gate.counts()).toEqual({ wakes: 1000, served: 1 });
    // the poll that serves them clears them: the next wait is a full one
    gate.pollStarting();
    const next = gate.sleep(30_000, never);
    await clock.advance(30_000);
    expect(await next).toBe('timeout');
  });

  it('a wake-up while a job runs (no wait in progress) is remembered until the next poll starts', async () => {
    const clock = createManualClock(0);
    const gate = createWakeGate(clock, 1000);
    gate.pollStarting();
    await clock.advance(5000);
    gate.wake(); // the job is running: nobody waits
    // the loop polls right after the job: that poll serves it
    const pending = gate.sleep(0, never);
    expect(await pending).toBe('wake');
  });

  it('a wake-up during a poll in flight is served after it: the poll may have missed the new job', async () => {
    const clock = createManualClock(0);
    const gate = createWakeGate(clock, 1000);
    gate.pollStarting();
    gate.wake(); // arrives while GET jobs/next is in flight
    const waiting = gate.sleep(30_000, never);
    await clock.advance(1000);
    expect(await waiting).toBe('wake');
  });

  it('a wake-up before a poll starts is served by that poll, not by another one', async () => {
    const clock = createManualClock(0);
    const gate = createWakeGate(clock, 1000);
    gate.wake();
    gate.pollStarting();
    const waiting = gate.sleep(30_000, never);
    await clock.advance(30_000);
    expect(await waiting).toBe('timeout');
  });

  it('an abort ends the wait with AbortedError', async () => {
    const clock = createManualClock(0);
    const gate = createWakeGate(clock, 1000);
    const stop = new AbortController();
    const waiting = gate.sleep(30_000, stop.signal);
    stop.abort();
    await expect(waiting).rejects.toBeInstanceOf(AbortedError);
    expect(clock.pending()).toBe(0);
  });
});
