// Every wait in the agent goes through a Clock so tests can drive time.
// Two readings: now() is the wall clock, for timestamps shown to people or
// sent to the cloud and for comparing with times saved before a restart or
// reboot; monotonic() is elapsed time, for every duration, deadline, backoff,
// timeout and health allowance within the process. A Pi has no RTC: its wall
// clock may start at the last shutdown or in 1970 and jump by years when NTP
// syncs, while monotonic() only moves forward at the rate of real time.
import { performance } from 'node:perf_hooks';
import { AbortedError } from '../errors/errors.js';

/** The source of time and waiting for everything in the agent. */
export interface Clock {
  /** Wall clock: milliseconds since the epoch (possibly scaled, see createScaledClock). For timestamps only. */
  now(): number;
  /**
   * Monotonic whole milliseconds from an arbitrary origin (possibly scaled), unaffected by
   * the wall clock being set: for durations and deadlines. sleep() and timer() wait on it.
   */
  monotonic(): number;
  /** Resolves after `ms` clock milliseconds; rejects with AbortedError when `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Calls `fire` once after `ms` clock milliseconds unless the returned cancel
   * function runs first. For deadlines that are nearly always cancelled (one per
   * HTTP request): no promise, no AbortController, no error when cancelled.
   */
  timer(ms: number, fire: () => void): () => void;
}

/** The real clock. */
export function createSystemClock(): Clock {
  return createScaledClock(1);
}

/**
 * A clock that runs `scale` times faster than real time: `sleep(1000)` waits
 * 1000/scale real ms and `now()` advances `scale` ms per real ms. Used by the
 * e2e tests (CLOUDJOBS_TIME_SCALE) to play minutes of backoff in seconds.
 */
export function createScaledClock(scale: number): Clock {
  const origin = Date.now();
  return {
    now: () => (scale === 1 ? Date.now() : origin + (Date.now() - origin) * scale),
    // whole ms like Date.now(): durations are reported as integers
    monotonic: () => Math.floor(performance.now() * scale),
    sleep: (ms, signal) => sleepReal(Math.max(0, ms / scale), signal),
    timer(ms, fire) {
      const handle = setTimeout(fire, Math.max(0, ms / scale));
      return () => clearTimeout(handle);
    },
  };
}

function sleepReal(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortedError());
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new AbortedError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A manually advanced clock for unit tests: sleeps resolve when `advance` passes them. */
export interface ManualClock extends Clock {
  advance(ms: number): Promise<void>;
  /** Sets the wall clock `ms` forward (negative: back), as NTP or an operator does; monotonic() and waits do not move. */
  stepWall(ms: number): void;
  /** Number of sleeps and timers currently pending. */
  pending(): number;
}

/** Creates a ManualClock starting at `start` ms. */
export function createManualClock(start = 0): ManualClock {
  let current = start;
  let wallOffset = 0;
  let waiters: { at: number; resolve: () => void }[] = [];
  return {
    now: () => current + wallOffset,
    monotonic: () => current,
    stepWall(ms) {
      wallOffset += ms;
    },
    pending: () => waiters.length,
    timer(ms, fire) {
      const waiter = { at: current + Math.max(0, ms), resolve: fire };
      waiters.push(waiter);
      return () => {
        waiters = waiters.filter((w) => w !== waiter);
      };
    },
    sleep(ms, signal) {
      return new Promise((resolve, reject) => {
        if (signal?.aborted) {
          reject(new AbortedError());
          return;
        }
        const waiter = { at: current + Math.max(0, ms), resolve: () => resolve() };
        waiters.push(waiter);
        signal?.addEventListener(
          'abort',
          () => {
            waiters = waiters.filter((w) => w !== waiter);
            reject(new AbortedError());
          },
          { once: true },
        );
      });
    },
    async advance(ms) {
      const target = current + ms;
      for (;;) {
        const due = waiters.filter((w) => w.at <= target).sort((a, b) => a.at - b.at)[0];
        if (!due) break;
        current = Math.max(current, due.at);
        waiters = waiters.filter((w) => w !== due);
        due.resolve();
        // let the woken code run before the next waiter fires
        for (let i = 0; i < 20; i += 1) await Promise.resolve();
      }
      current = target;
    },
  };
}
