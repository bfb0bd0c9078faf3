// Gives memory back once the agent is idle after a job. A job with much output
// leaves garbage (step output, report strings, pipe buffers) that an idle
// agent, allocating almost nothing, would keep for a long time: V8 collects
// when allocation asks for it. A full collection shortly after the last final
// report went out returns the agent near its idle size.
//
// INVARIANTS
// - At most one collection per quiet period: poke() during the wait moves the
//   collection later (a queue of jobs costs one collection at its end).
// - Waits go through the injected clock and stop with `signal`: nothing runs
//   after the agent stopped.
import type { Clock } from '../clock/clock.js';

/** Options of createIdleReclaimer. */
export interface IdleReclaimerOptions {
  clock: Clock;
  /** The collection (a full GC). */
  reclaim: () => void;
  /** How long after the last poke the collection runs. */
  delayMs: number;
  signal: AbortSignal;
}

/** Schedules a collection `delayMs` after the last poke(). */
export interface IdleReclaimer {
  poke(): void;
  /** Collections run so far. */
  runs(): number;
}

/** Creates the reclaimer; nothing runs until poke(). */
export function createIdleReclaimer(options: IdleReclaimerOptions): IdleReclaimer {
  const { clock, reclaim, delayMs, signal } = options;
  let dueAt: number | null = null;
  let waiting = false;
  let runs = 0;
  const wait = async (): Promise<void> => {
    waiting = true;
    try {
      while (dueAt !== null && !signal.aborted) {
        const left = dueAt - clock.monotonic();
        if (left <= 0) {
          dueAt = null;
          runs += 1;
          reclaim();
          break;
        }
        await clock.sleep(left, signal);
      }
    } catch {
      // stopped: the process is ending anyway
    } finally {
      waiting = false;
    }
  };
  return {
    poke() {
      if (signal.aborted) return;
      dueAt = clock.monotonic() + delayMs;
      if (!waiting) void wait();
    },
    runs: () => runs,
  };
}
