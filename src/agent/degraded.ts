// Degraded mode: state_dir cannot be written (ENOSPC, EROFS, EIO, EACCES...).
// The agent takes no new job (it could not be journaled), the running job
// starts no further step, delivery goes on; state_dir is probed every
// recheck interval and the agent returns to normal by itself.
//
// INVARIANTS
// - A fault is logged once per change of fault, and recovery once.
// - While degraded, state_dir is probed (a real write) every recheck interval:
//   by the poll loop before each would-be poll, and by a store operation
//   waiting in untilStored when the poll loop does not run.
import type { Clock } from '../clock/clock.js';
import { AbortedError, type LocalFault } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import type { StatusSink } from './status.js';
import { asLocalFault, formatDelay } from './words.js';

/** What degraded mode needs. */
export interface DegradedOptions {
  clock: Clock;
  log: Log;
  status: Pick<StatusSink, 'update'>;
  /** Checks state_dir without writing (checkStateDir); absent: never faulty. */
  checkState?(): Promise<LocalFault | null>;
  /** Proves state_dir takes writes again (probeStateDir); absent: always. */
  probeState?(): Promise<LocalFault | null>;
  /** How often state_dir is probed while degraded. */
  recheckIntervalMs: number;
  /** A fault was met (each time): the agent halts its running job and shows its state. */
  onEnter(fault: LocalFault): void;
  /** state_dir is writable again. */
  onLeave(): void;
  /** Whether the poll loop probes (untilStored probes itself when it does not). */
  pollLoopProbes(): boolean;
}

/** The agent's degraded mode. */
export interface DegradedMode {
  /** The fault in force, or null when state_dir is usable. */
  fault(): LocalFault | null;
  enter(fault: LocalFault, during: string): void;
  /** Before a poll: whether state_dir cannot take a new job; while degraded, probes it (true until it recovers). */
  checkBeforePoll(): Promise<boolean>;
  /** Before a step: a state_dir that cannot take the job's records enters degraded mode (which halts the job). */
  checkBeforeStep(step: string): Promise<void>;
  /** Runs a state operation; on a local fault waits for recovery and tries again (a bug rethrows). */
  untilStored<T>(what: string, operation: () => Promise<T>, signal: AbortSignal): Promise<T>;
}

/** Creates degraded mode, not degraded. */
export function createDegradedMode(options: DegradedOptions): DegradedMode {
  const { clock, log, status } = options;
  let fault: LocalFault | null = null;

  const enter = (next: LocalFault, during: string): void => {
    const changed = fault?.message !== next.message;
    fault = next;
    status.update({ degraded: next.message });
    if (changed) {
      log.error(
        `degraded: ${next.message} (while ${during}); taking no new job and delivering what can be delivered; checking again every ${formatDelay(options.recheckIntervalMs)}`,
        { path: next.path, errno: next.errno ?? 'none' },
      );
    }
    options.onEnter(next);
  };

  const leave = (): void => {
    const was = fault;
    if (was === null) return;
    fault = null;
    status.update({ degraded: null });
    log.info(`state directory writable again (was: ${was.message}); back to normal`, { path: was.path });
    options.onLeave();
  };

  const recheck = async (): Promise<void> => {
    const found = (await options.probeState?.()) ?? null;
    if (found === null) leave();
    else enter(found, 'checking the state directory');
  };

  return {
    fault: () => fault,
    enter,
    async checkBeforePoll() {
      if (fault === null) {
        const found = (await options.checkState?.()) ?? null;
        if (found !== null) enter(found, 'checking the state directory before a poll');
        return found !== null;
      }
      await recheck();
      return fault !== null;
    },
    async checkBeforeStep(step) {
      if (fault !== null) return;
      const found = (await options.checkState?.()) ?? null;
      if (found !== null) enter(found, `checking the state directory before step ${step}`);
    },
    async untilStored(what, operation, signal) {
      for (;;) {
        try {
          return await operation();
        } catch (error) {
          if (signal.aborted) throw new AbortedError();
          enter(asLocalFault(error), what);
          while (fault !== null) {
            await clock.sleep(options.recheckIntervalMs, signal);
            if (fault !== null && !options.pollLoopProbes()) await recheck();
          }
        }
      }
    },
  };
}
