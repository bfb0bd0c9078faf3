// Push notifications are wake-ups for the poll loop, never work orders: a
// notification only makes the loop ask `GET jobs/next` sooner. This module
// decides when a wake-up is served; the decision is pure arithmetic
// (decideWake) and the gate around it only remembers and waits.
//
// INVARIANTS
// - A wake-up is never lost: it stays pending until a poll starts after it
//   (a poll that began before the wake-up may have missed the new job).
// - A wake-up never causes more than one poll: every poll start clears it, so
//   1,000 notifications between two polls are one wake-up.
// - Wake-ups are served at most once per minGapMs (counted from the last poll
//   start), so a flood cannot turn into a poll storm; a queue still drains back
//   to back because the loop polls at once after a job without asking the gate.
// - A wake-up that arrives while a job runs stays pending and is served by the
//   poll right after the job (the platform's own agent drops it).
import type { Clock } from '../clock/clock.js';
import { AbortedError } from '../errors/errors.js';

/** The smallest time between the start of a poll and a wake-up served after it. */
const WAKE_MIN_GAP_MS = 1000;

/** What decideWake looks at. */
export interface WakeState {
  /** A wake-up arrived since the last poll started. */
  pending: boolean;
  /** When the last poll started (clock ms), or null before the first. */
  lastPollAt: number | null;
}

/** Returns when a pending wake-up may be served (clock ms), or null when none is pending. */
export function decideWake(state: WakeState, minGapMs: number): number | null {
  if (!state.pending) return null;
  return state.lastPollAt === null ? 0 : state.lastPollAt + minGapMs;
}

/** The gate between push notifications and the poll loop. */
export interface WakeGate {
  /** A notification arrived (or the channel connected): poll soon. */
  wake(): void;
  /** The poll loop is about to ask for a job: wake-ups so far are served by this poll. */
  pollStarting(): void;
  /**
   * Waits up to `ms`, or less when a wake-up is (or becomes) due. Resolves
   * 'wake' or 'timeout'; rejects with AbortedError when `signal` aborts.
   */
  sleep(ms: number, signal: AbortSignal): Promise<'wake' | 'timeout'>;
  /** Counters for status and tests: notifications seen, wake-ups served. */
  counts(): { wakes: number; served: number };
}

/** Creates a gate; `minGapMs` defaults to WAKE_MIN_GAP_MS. */
export function createWakeGate(clock: Clock, minGapMs = WAKE_MIN_GAP_MS): WakeGate {
  const state: WakeState = { pending: false, lastPollAt: null };
  let wakes = 0;
  let served = 0;
  // set while sleep() waits: ends its current wait early
  let interrupt: (() => void) | null = null;
  return {
    wake() {
      wakes += 1;
      if (state.pending) return;
      state.pending = true;
      interrupt?.();
    },
    pollStarting() {
      state.pending = false;
      state.lastPollAt = clock.monotonic();
    },
    async sleep(ms, signal) {
      const end = clock.monotonic() + Math.max(0, ms);
      for (;;) {
        if (signal.aborted) throw new AbortedError();
        const now = clock.monotonic();
        const due = decideWake(state, minGapMs);
        if (due !== null && due <= now) {
          served += 1;
          return 'wake';
        }
        if (now >= end) return 'timeout';
        const until = due === null ? end : Math.min(end, due);
        await waitOrInterrupt(clock, until - now, signal, (fn) => (interrupt = fn));
        interrupt = null;
      }
    },
    counts: () => ({ wakes, served }),
  };
}

// One wait of `ms` that a wake-up can end early; abort rejects with AbortedError.
function waitOrInterrupt(clock: Clock, ms: number, signal: AbortSignal, setInterrupt: (fn: () => void) => void): Promise<void> {
  const inner = new AbortController();
  const onAbort = (): void => inner.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  setInterrupt(() => inner.abort());
  return clock.sleep(ms, inner.signal).then(
    () => signal.removeEventListener('abort', onAbort),
    (error: unknown) => {
      signal.removeEventListener('abort', onAbort);
      if (signal.aborted) throw error;
      // interrupted by a wake-up: the loop in sleep() decides again
    },
  );
}
