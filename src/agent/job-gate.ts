// The job gate: before each `GET jobs/next` the poll loop asks whether a new
// job may be taken (asking the cloud hands the job out, so a held agent must
// not ask). Three things close it: the operator's hold (`cloudjobs hold`, in
// state_dir), an application's hold (a locked file in hold_dir) and being
// outside every maintenance window. The verdict is pure (decideGate); the
// gate around it reads the files, remembers, logs changes and waits.
//
// INVARIANTS
// - The gate is asked only before a poll: a running job (and a job resumed
//   after a reboot) always finishes; reports are delivered by their own loop.
// - In doubt the gate holds: a hold file that cannot be read or parsed holds
//   until `cloudjobs release`; without the kernel's lock list every
//   application file holds.
// - Checks run one at a time (a serial queue); a flood of file events is
//   served by at most one check per EVENT_GAP_MS.
// - A wait ends early on a file event (inotify through fs.watch), and by
//   itself at an expiry or a window start; a lock released by a dying
//   holder makes no file event and is seen by the next check (at most one
//   poll interval later).
import { watch, type FSWatcher } from 'node:fs';
import type { Clock } from '../clock/clock.js';
import { formatDuration } from '../config/parse-value.js';
import { formatWindowStart, isInMaintenanceWindow, nextMaintenanceWindow, type MaintenanceWindow } from '../config/maintenance-windows.js';
import { AbortedError, AgentError, describeError } from '../errors/errors.js';
import { showText } from '../log/escape.js';
import type { Log } from '../log/log.js';
import { scanAppHolds, type AppHold, type AppHoldScan } from '../state/app-holds.js';
import {
  holdRemainingMs,
  isHoldFileName,
  readOperatorHold,
  reanchorHold,
  removeOperatorHold,
  writeOperatorHold,
  type BootClock,
  type OperatorHoldRead,
} from '../state/hold-store.js';
import { createSerialQueue } from '../state/serial-queue.js';

/** The least time between two checks caused by file events. */
const EVENT_GAP_MS = 1000;

/** The gate as `cloudjobs status --json` shows it (field `hold`). */
export interface JobGateStatus {
  /** True while no new job is taken. */
  held: boolean;
  /** Why, one line ("held by kiosk-app: customer session", "outside maintenance window, next at 02:00"), or null. */
  reason: string | null;
  /** The operator's hold, or null. */
  operator: { reason: string; setAt: string | null; expiresAt: number | null; expiry: 'none' | 'until' | 'for' | 'unreadable' } | null;
  /** Live application holds, by holder name. */
  applications: AppHold[];
  /** Files in hold_dir with no live lock: ignored. */
  staleApplicationFiles: string[];
  /** [jobs] maintenance_windows as configured (empty: always). */
  maintenanceWindows: string[];
  inMaintenanceWindow: boolean;
  /** When the next window opens (ms since the epoch), or null inside a window or with none configured. */
  nextWindowAt: number | null;
}

/** What the gate read, for decideGate. */
export interface GateFacts {
  now: number;
  operator: OperatorHoldRead;
  /** Time left of the operator's hold (ms), null when it has no end or there is none. */
  operatorRemainingMs: number | null;
  apps: AppHoldScan;
  windows: readonly MaintenanceWindow[];
}

/** Decides the gate from what was read: operator first, then applications, then windows. Pure. */
export function decideGate(facts: GateFacts): JobGateStatus {
  const { now, operator, apps, windows } = facts;
  const inWindow = isInMaintenanceWindow(windows, now);
  const nextWindowAt = inWindow ? null : nextMaintenanceWindow(windows, now);
  const base = {
    operator: describeOperator(operator, facts.operatorRemainingMs, now),
    applications: apps.holds,
    staleApplicationFiles: apps.stale,
    maintenanceWindows: windows.map((w) => w.text),
    inMaintenanceWindow: inWindow,
    nextWindowAt,
  };
  const reason = holdReason(base.operator, operator, apps.holds) ?? (inWindow ? null : windowReason(nextWindowAt, now));
  return { held: reason !== null, reason, ...base };
}

function describeOperator(read: OperatorHoldRead, remainingMs: number | null, now: number): JobGateStatus['operator'] {
  if (read.kind === 'none') return null;
  if (read.kind === 'corrupt') return { reason: read.reason, setAt: null, expiresAt: null, expiry: 'unreadable' };
  const { hold } = read;
  return { reason: hold.reason, setAt: hold.setAt, expiresAt: remainingMs === null ? null : now + remainingMs, expiry: hold.expiry.kind };
}

function holdReason(view: JobGateStatus['operator'], read: OperatorHoldRead, apps: readonly AppHold[]): string | null {
  if (read.kind === 'corrupt') return `held by operator: the hold file is unusable (${showText(read.reason, 200)}); run cloudjobs release`;
  if (view && read.kind === 'hold') {
    // stable text (no countdown): a change of reason is logged and rewrites the status file
    const { expiry } = read.hold;
    const end = expiry.kind === 'until' ? ` until ${formatClock(expiry.at)}` : expiry.kind === 'for' ? ` (for ${formatDuration(expiry.durationMs)})` : '';
    return `held by operator${view.reason ? `: ${showText(view.reason, 200)}` : ''}${end}`;
  }
  const first = apps[0];
  if (!first) return null;
  const more = apps.length > 1 ? ` (and ${apps.length - 1} more)` : '';
  return `held by ${showText(first.name, 64)}${first.reason ? `: ${showText(first.reason, 200)}` : ''}${more}`;
}

function windowReason(nextWindowAt: number | null, now: number): string {
  return nextWindowAt === null ? 'outside maintenance window' : `outside maintenance window, next at ${formatWindowStart(nextWindowAt, now)}`;
}

// "14:03" (local time) for a hold's end.
function formatClock(at: number): string {
  const date = new Date(at);
  return `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
}

/** Inputs of createJobGate. */
export interface JobGateOptions {
  clock: Clock;
  log: Log;
  stateDir: string;
  /** [jobs] hold_dir; '' for none. */
  holdDir: string;
  windows: readonly MaintenanceWindow[];
  bootClock: BootClock;
  /** The kernel's locked files (readLockedFiles). */
  readLocks(): Promise<ReadonlySet<string>>;
  /** Watches a directory; absent: no watching (checks before polls only). */
  watchDir?: (dir: string, onEvent: (name: string | null) => void) => (() => void) | null;
}

/** The gate the poll loop asks. */
export interface JobGate {
  /** Re-anchors a --for hold to this boot and starts watching. */
  start(onChange: () => void): Promise<void>;
  /** Reads the holds and decides; logs when the verdict changes. */
  check(): Promise<JobGateStatus>;
  /** Waits up to `ms`, less when a hold file changes, a hold expires or a window opens; rejects with AbortedError on abort. */
  wait(ms: number, signal: AbortSignal): Promise<void>;
  /** The last verdict (before the first check: open). */
  status(): JobGateStatus;
  /** Stops watching and records the time left of a --for hold. */
  close(): Promise<void>;
}

/** Creates the gate; nothing is read before start(). */
export function createJobGate(options: JobGateOptions): JobGate {
  const { clock, log, stateDir, holdDir, windows } = options;
  const queue = createSerialQueue();
  const closers: (() => void)[] = [];
  let current: JobGateStatus = decideGate({ now: clock.now(), operator: { kind: 'none' }, operatorRemainingMs: null, apps: { holds: [], stale: [], skipped: 0 }, windows });
  // the verdict last logged: none before the first check, so a hold found at start is logged
  let loggedReason: string | null = null;
  let loggedStale = '';
  let locksFault: string | null = null;
  let removeFault: string | null = null;
  let interrupt: (() => void) | null = null;
  let eventPending = false;
  let onChange: () => void = () => undefined;

  const readOperator = async (): Promise<{ read: OperatorHoldRead; remainingMs: number | null }> => {
    let read: OperatorHoldRead;
    try {
      read = await readOperatorHold(stateDir);
    } catch (error) {
      if (!(error instanceof AgentError)) throw error;
      return { read: { kind: 'corrupt', reason: describeError(error) }, remainingMs: null };
    }
    if (read.kind !== 'hold') return { read, remainingMs: null };
    let remainingMs: number | null;
    try {
      remainingMs = holdRemainingMs(read.hold.expiry, clock.now(), await currentBoot());
    } catch (error) {
      if (!(error instanceof AgentError)) throw error;
      // in doubt: held
      return { read: { kind: 'corrupt', reason: `cannot tell when it ends: ${describeError(error)}` }, remainingMs: null };
    }
    if (remainingMs !== 0) return { read, remainingMs };
    await removeOperatorHold(stateDir, null).then(
      () => log.info(`the operator's hold expired${read.hold.reason ? ` (${showText(read.hold.reason, 200)})` : ''}; removed it`),
      (error: unknown) => {
        if (!(error instanceof AgentError)) throw error;
        if (removeFault === null) log.warn(`the operator's hold expired but its file cannot be removed (${describeError(error)}); jobs are taken all the same`);
        removeFault = describeError(error);
      },
    );
    return { read: { kind: 'none' }, remainingMs: null };
  };

  const currentBoot = async (): Promise<{ id: string; ms: number }> => ({
    id: await options.bootClock.bootId(),
    ms: await options.bootClock.sinceBootMs(),
  });

  const readApps = async (): Promise<AppHoldScan> => {
    if (holdDir === '') return { holds: [], stale: [], skipped: 0 };
    return scanAppHolds(holdDir, async () => {
      try {
        const locked = await options.readLocks();
        if (locksFault !== null) log.info('the kernel lock list reads again; application hold files count only while locked');
        locksFault = null;
        return locked;
      } catch (error) {
        if (!(error instanceof AgentError)) throw error;
        if (locksFault === null) log.warn(`${describeError(error)}; every file in ${holdDir} counts as a hold until it reads again`);
        locksFault = describeError(error);
        return null;
      }
    });
  };

  const decide = async (): Promise<JobGateStatus> => {
    const operator = await readOperator();
    let apps: AppHoldScan;
    try {
      apps = await readApps();
    } catch (error) {
      if (!(error instanceof AgentError)) throw error;
      // in doubt: held
      apps = { holds: [{ name: 'hold_dir', reason: `cannot be read: ${describeError(error)}` }], stale: [], skipped: 0 };
    }
    return decideGate({ now: clock.now(), operator: operator.read, operatorRemainingMs: operator.remainingMs, apps, windows });
  };

  const logChange = (next: JobGateStatus): void => {
    if (next.reason !== loggedReason) {
      if (next.reason !== null) log.info(`taking no new job: ${next.reason}`, { held: true });
      else log.info(`jobs are no longer held (was: ${loggedReason}); polling for jobs again`, { held: false });
      loggedReason = next.reason;
    }
    const stale = next.staleApplicationFiles.join(', ');
    if (stale !== loggedStale && stale !== '') {
      log.info(`ignoring hold files whose holder ended (no lock on them): ${showText(stale, 300)}`);
    }
    loggedStale = stale;
  };

  const check = (): Promise<JobGateStatus> =>
    queue.run(async () => {
      const next = await decide();
      logChange(next);
      current = next;
      return next;
    });

  // A file event: end a wait, and refresh the status (a job may be running) at most once per EVENT_GAP_MS.
  const onEvent = (): void => {
    interrupt?.();
    if (eventPending) return;
    eventPending = true;
    clock.timer(EVENT_GAP_MS, () => {
      eventPending = false;
      check().then(
        () => onChange(),
        (error: unknown) => log.error(`could not check the holds after a file change: ${describeError(error)}`),
      );
    });
  };

  return {
    async start(changed) {
      onChange = changed;
      await queue.run(async () => {
        const read = await readOperatorHold(stateDir).catch(() => null);
        if (read?.kind !== 'hold' || read.hold.expiry.kind !== 'for') return;
        const boot = await currentBoot();
        if (read.hold.expiry.anchor.bootId === boot.id) return;
        // a new boot: the time the device was off is not counted (nothing measured it)
        const moved = reanchorHold(read.hold, clock.now(), boot);
        await writeOperatorHold(stateDir, moved).catch((error: unknown) => {
          if (!(error instanceof AgentError)) throw error;
          log.warn(`could not move the operator's hold to this boot (${describeError(error)}); it may end early`);
        });
      });
      const watchDir = options.watchDir;
      if (!watchDir) return;
      const stateWatch = watchDir(stateDir, (name) => {
        if (name === null || isHoldFileName(name)) onEvent();
      });
      if (stateWatch) closers.push(stateWatch);
      const appWatch = holdDir === '' ? null : watchDir(holdDir, () => onEvent());
      if (appWatch) closers.push(appWatch);
    },
    check,
    status: () => current,
    async wait(ms, signal) {
      const due = nextChangeIn(current, clock.now(), ms);
      const inner = new AbortController();
      const onAbort = (): void => inner.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      interrupt = () => inner.abort();
      try {
        await clock.sleep(due, inner.signal);
      } catch (error) {
        if (signal.aborted) throw error instanceof AbortedError ? error : new AbortedError();
        // a file event: the loop checks again
      } finally {
        interrupt = null;
        signal.removeEventListener('abort', onAbort);
      }
    },
    async close() {
      for (const closeWatch of closers.splice(0)) closeWatch();
      await queue.run(async () => {
        const read = await readOperatorHold(stateDir).catch(() => null);
        if (read?.kind !== 'hold' || read.hold.expiry.kind !== 'for') return;
        // the time left now, so that the next boot goes on from here
        await writeOperatorHold(stateDir, reanchorHold(read.hold, clock.now(), await currentBoot())).catch((error: unknown) => {
          if (!(error instanceof AgentError)) throw error;
          log.warn(`could not record the time left of the operator's hold (${describeError(error)}); after a reboot it counts from the last record`);
        });
      });
    },
  };
}

// How long a held loop may sleep before the verdict can change by itself: an expiry, a window start, or `ms`.
function nextChangeIn(status: JobGateStatus, now: number, ms: number): number {
  const moments = [status.operator?.expiresAt ?? null, status.nextWindowAt].filter((at): at is number => at !== null);
  return Math.max(0, Math.min(ms, ...moments.map((at) => at - now + 1)));
}

/** Watches `dir` with inotify (fs.watch); null when it cannot be watched (then only checks before polls notice changes). */
export function watchDirectory(log: Log): (dir: string, onEvent: (name: string | null) => void) => (() => void) | null {
  return (dir, onEvent) => {
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, { persistent: false }, (_event, name) => onEvent(typeof name === 'string' ? name : null));
    } catch (error) {
      log.debug(`not watching ${dir} (${describeError(error)}); hold changes there are noticed before each poll`);
      return null;
    }
    watcher.on('error', (error) => {
      log.debug(`stopped watching ${dir} (${describeError(error)}); hold changes there are noticed before each poll`);
      watcher.close();
    });
    return () => watcher.close();
  };
}
