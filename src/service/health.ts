// The watchdog gate: WATCHDOG=1 goes to systemd only while the agent is
// healthy, so a hung agent is restarted (balena's healthcheck, not
// zigbee2mqtt's blind setInterval). The loop itself runs on the event loop,
// so a blocked event loop also stops the pings.
import type { Clock } from '../clock/clock.js';
import type { Log } from '../log/log.js';
import type { Notifier } from './sd-notify.js';

/** Inputs of isPollLoopHealthy, all in clock milliseconds. */
export interface PollLoopProgress {
  /** The clock's now(). */
  now: number;
  /** When the poll loop last made progress (a poll answered or failed, a job step advanced). */
  lastProgressAt: number;
  /** The longest the loop may legitimately go without progress (the agent passes the longer of its poll intervals and the request time limit); twice this is allowed. */
  intervalMs: number;
  /** End of a deliberate backoff the loop is sleeping in, or null when it is not backing off. */
  backoffUntil: number | null;
}

/** Decides whether the poll loop is alive: progress within 2 intervals, or inside a deliberate backoff (plus 2 intervals to act on it). */
export function isPollLoopHealthy(progress: PollLoopProgress): boolean {
  const { now, lastProgressAt, intervalMs, backoffUntil } = progress;
  const allowance = 2 * intervalMs;
  if (now - lastProgressAt <= allowance) return true;
  return backoffUntil !== null && now <= backoffUntil + allowance;
}

/** Turns systemd's $WATCHDOG_USEC/$WATCHDOG_PID into the ping period in ms (half the timeout), or null when no watchdog applies to this process. */
export function parseWatchdogInterval(watchdogUsec: string | undefined, watchdogPid: string | undefined, pid: number): number | null {
  if (watchdogUsec === undefined || !/^\d+$/.test(watchdogUsec)) return null;
  if (watchdogPid !== undefined && watchdogPid !== '' && watchdogPid !== String(pid)) return null;
  const usec = Number(watchdogUsec);
  if (!Number.isSafeInteger(usec) || usec <= 0) return null;
  return Math.max(1, Math.floor(usec / 2000));
}

/** Inputs of createWatchdog. */
export interface WatchdogOptions {
  /** Time between health checks; half of WatchdogSec (see parseWatchdogInterval). */
  intervalMs: number;
  clock: Clock;
  /** The agent's health check; a throw counts as unhealthy. */
  isHealthy: () => boolean;
  notifier: Pick<Notifier, 'watchdog'>;
  /** Stops the loop. */
  signal: AbortSignal;
  /** Gets one warning when pings stop and one info when they resume. */
  log?: Log;
}

/** A running watchdog loop. */
export interface Watchdog {
  /** Resolves once the signal aborted and the loop ended. */
  readonly done: Promise<void>;
}

/** Starts the loop that checks health every intervalMs and pings WATCHDOG=1 only when healthy. */
export function createWatchdog(options: WatchdogOptions): Watchdog {
  const { intervalMs, clock, isHealthy, notifier, signal, log } = options;
  if (!(intervalMs > 0)) throw new RangeError(`watchdog interval must be a positive number of ms, got ${intervalMs}`);
  const done = (async () => {
    let healthy = true;
    while (!signal.aborted) {
      const now = checkHealth(isHealthy);
      if (now) notifier.watchdog();
      if (now !== healthy) {
        if (now) log?.info('health check passes again; resuming watchdog pings');
        else log?.warn('health check failed; withholding WATCHDOG=1 so systemd restarts a hung agent');
        healthy = now;
      }
      try {
        await clock.sleep(intervalMs, signal);
      } catch {
        break;
      }
    }
  })();
  return { done };
}

function checkHealth(isHealthy: () => boolean): boolean {
  try {
    return isHealthy() === true;
  } catch {
    return false;
  }
}
