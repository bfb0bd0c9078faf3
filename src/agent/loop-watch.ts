// Loop supervision: the agent's long-lived loops (ports.ts LoopName) are
// watched; one that rejects, or ends while the agent runs, is a death. The
// first death is logged and handed to `onDeath` (the agent stops everything
// and run() rejects with it, exit EXIT_LOOP_DIED).
import { AbortedError, LoopDiedError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import type { LoopName } from './ports.js';

// Exit status of `cloudjobs run` when a loop died or a bug escaped (EX_SOFTWARE); systemd restarts it.
export const EXIT_LOOP_DIED = 70;

/** Watches loops; remembers the first death. */
export interface LoopWatch {
  /** Resolves when `loop` ended; rejecting, or ending before `signal` aborted, is a death. */
  watch(name: LoopName, signal: AbortSignal, loop: Promise<void>): Promise<void>;
  /** Records a death met outside a watched promise (a bug in a job's journal write). */
  die(error: LoopDiedError): void;
  /** The first death, or null. */
  dead(): LoopDiedError | null;
}

/** Creates the watch; `onDeath` runs once, after the death is logged. */
export function createLoopWatch(options: { log: Log; onDeath(error: LoopDiedError): void; inject?: (loop: LoopName) => Promise<never> | null }): LoopWatch {
  let first: LoopDiedError | null = null;
  const die = (error: LoopDiedError): void => {
    if (first) return;
    first = error;
    const cause = error.cause instanceof Error ? (error.cause.stack ?? error.cause.message) : String(error.cause);
    options.log.error(`${error.message}; the agent exits with status ${EXIT_LOOP_DIED} so systemd restarts it (${cause})`, { loop: error.loop });
    options.onDeath(error);
  };
  return {
    watch(name, signal, loop) {
      const injected = options.inject?.(name) ?? null;
      const watched = injected === null ? loop : Promise.race([loop, injected]);
      return watched.then(
        () => {
          if (!signal.aborted) die(new LoopDiedError(name, new Error('it ended while the agent was running')));
        },
        (error: unknown) => {
          if (signal.aborted && error instanceof AbortedError) return;
          die(new LoopDiedError(name, error));
        },
      );
    },
    die,
    dead: () => first,
  };
}
