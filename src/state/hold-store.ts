// The operator's hold (`cloudjobs hold`, `cloudjobs release`): one JSON file
// in state_dir, written atomically and durably, so it survives agent restarts
// and reboots until released or expired.
//
// Expiry. `--until TIME` is a wall-clock moment by nature and is compared with
// the wall clock: a Pi that boots with a clock in the past (no RTC, before
// NTP) keeps the hold longer, never shorter. `--for DURATION` is counted on
// the kernel's boot clock (/proc/uptime: CLOCK_BOOTTIME, which counts suspend
// and does not move when the wall clock is set), so an NTP jump changes
// nothing. The file keeps an anchor: the boot it was counted in, the boot
// clock then and the time left then. Within that boot the time left is
// `remainingMs - (now - bootMs)`. Time with the device off cannot be measured
// without an RTC and is not counted: the agent re-anchors the hold to the new
// boot at start and records the time left when it stops, so a power cut
// counts the time since the last record again (the hold lasts longer, never
// shorter).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Log } from '../log/log.js';
import { describeIoError, isErrnoCode, removeFileDurable } from './atomic-file.js';
import { checkJson, quarantineFile, writeJsonFile, type TimeSource } from './json-file.js';
import { expectInteger, expectNonEmptyString, expectRecord, expectString, expectTimestamp, expectVersion, failValidation } from './validate.js';

const HOLD_VERSION = 1;
const HOLD_FILE_NAME = 'hold.json';
// root-only like the rest of state_dir; `cloudjobs status` shows the reason
const HOLD_FILE_MODE = 0o600;
/** The longest reason kept (characters). */
export const MAX_HOLD_REASON_CHARS = 200;
// A boot id longer than this is not the kernel's.
const MAX_BOOT_ID_CHARS = 100;

/** Where a --for hold was last counted. */
export interface HoldAnchor {
  bootId: string;
  /** The boot clock (ms since boot) at the anchor. */
  bootMs: number;
  /** Time left at the anchor. */
  remainingMs: number;
}

/** How a hold ends. */
export type HoldExpiry = { kind: 'none' } | { kind: 'until'; at: number } | { kind: 'for'; durationMs: number; anchor: HoldAnchor };

/** The operator's hold as stored. */
export interface OperatorHold {
  reason: string;
  /** When it was set (wall clock, ISO 8601): for display only. */
  setAt: string;
  expiry: HoldExpiry;
}

/** What readOperatorHold found. */
export type OperatorHoldRead = { kind: 'none' } | { kind: 'hold'; hold: OperatorHold } | { kind: 'corrupt'; reason: string };

/** The kernel's boot clock and boot id, read by the agent and the CLI alike. */
export interface BootClock {
  bootId(): Promise<string>;
  /** Milliseconds since boot, suspend included. */
  sinceBootMs(): Promise<number>;
}

/** Returns the path of the hold file under `stateDir`. */
export function holdFilePath(stateDir: string): string {
  return join(stateDir, HOLD_FILE_NAME);
}

/** Tells whether a file name in state_dir is the hold file (for a directory watch). */
export function isHoldFileName(name: string | null): boolean {
  return name === HOLD_FILE_NAME;
}

/** Reads the hold: none when the file is missing, corrupt (not moved: the agent holds until release) when unreadable as a hold. */
export async function readOperatorHold(stateDir: string): Promise<OperatorHoldRead> {
  const path = holdFilePath(stateDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (isErrnoCode(error, 'ENOENT')) return { kind: 'none' };
    throw describeIoError('read', path, error);
  }
  const checked = checkJson(text, validateHold);
  return 'value' in checked ? { kind: 'hold', hold: checked.value } : { kind: 'corrupt', reason: checked.reason };
}

/** Stores `hold`, replacing any earlier one (atomic and durable). */
export async function writeOperatorHold(stateDir: string, hold: OperatorHold): Promise<void> {
  await writeJsonFile(holdFilePath(stateDir), { version: HOLD_VERSION, ...hold }, HOLD_FILE_MODE);
}

/** Removes the hold; a corrupt file is moved aside (kept for inspection). Resolves whether a file was there. */
export async function removeOperatorHold(stateDir: string, corrupt: { reason: string; log: Log; clock: TimeSource } | null): Promise<boolean> {
  if (corrupt) {
    await quarantineFile(holdFilePath(stateDir), corrupt.reason, corrupt.log, corrupt.clock);
    return true;
  }
  return removeFileDurable(holdFilePath(stateDir));
}

/** Time left of a hold (ms; 0 = expired), or null when it has no end. Pure. */
export function holdRemainingMs(expiry: HoldExpiry, wallNow: number, boot: { id: string; ms: number }): number | null {
  switch (expiry.kind) {
    case 'none':
      return null;
    case 'until':
      return Math.max(0, expiry.at - wallNow);
    case 'for': {
      const { anchor } = expiry;
      // another boot: the time since the anchor is unknown and not counted
      const elapsed = anchor.bootId === boot.id ? Math.max(0, boot.ms - anchor.bootMs) : 0;
      return Math.max(0, anchor.remainingMs - elapsed);
    }
  }
}

/** The hold with a --for anchor moved to the current boot (time left recorded); other holds unchanged. Pure. */
export function reanchorHold(hold: OperatorHold, wallNow: number, boot: { id: string; ms: number }): OperatorHold {
  if (hold.expiry.kind !== 'for') return hold;
  const remainingMs = holdRemainingMs(hold.expiry, wallNow, boot) ?? 0;
  return { ...hold, expiry: { ...hold.expiry, anchor: { bootId: boot.id, bootMs: boot.ms, remainingMs } } };
}

/** The boot clock of this machine: `bootIdFile` ([agent] boot_id_file) and /proc/uptime. */
export function createBootClock(bootIdFile: string, uptimeFile = '/proc/uptime'): BootClock {
  return {
    async bootId() {
      let text: string;
      try {
        text = await readFile(bootIdFile, 'utf8');
      } catch (error) {
        throw describeIoError('read the boot id from', bootIdFile, error);
      }
      const id = text.trim();
      if (id === '' || id.length > MAX_BOOT_ID_CHARS) throw describeIoError('read the boot id from', bootIdFile, new Error('not a boot id'));
      return id;
    },
    async sinceBootMs() {
      let text: string;
      try {
        text = await readFile(uptimeFile, 'utf8');
      } catch (error) {
        throw describeIoError('read the boot clock from', uptimeFile, error);
      }
      const seconds = Number(/^(\d+(?:\.\d+)?)\s/.exec(text)?.[1] ?? Number.NaN);
      if (!Number.isFinite(seconds)) throw describeIoError('read the boot clock from', uptimeFile, new Error(`unexpected content ${JSON.stringify(text.slice(0, 40))}`));
      return Math.round(seconds * 1000);
    },
  };
}

function validateHold(value: unknown): OperatorHold {
  const record = expectRecord(value, 'hold');
  expectVersion(record, HOLD_VERSION);
  const reason = expectString(record, 'reason');
  if (reason.length > MAX_HOLD_REASON_CHARS) failValidation(`reason is longer than ${MAX_HOLD_REASON_CHARS} characters`);
  return { reason, setAt: expectTimestamp(record, 'setAt'), expiry: validateExpiry(expectRecord(record.expiry, 'expiry')) };
}

function validateExpiry(record: Record<string, unknown>): HoldExpiry {
  switch (record.kind) {
    case 'none':
      return { kind: 'none' };
    case 'until':
      return { kind: 'until', at: expectInteger(record, 'at', 0) };
    case 'for': {
      const anchor = expectRecord(record.anchor, 'expiry.anchor');
      const bootId = expectNonEmptyString(anchor, 'bootId');
      if (bootId.length > MAX_BOOT_ID_CHARS) failValidation('expiry.anchor.bootId is too long');
      return {
        kind: 'for',
        durationMs: expectInteger(record, 'durationMs', 1),
        anchor: { bootId, bootMs: expectInteger(anchor, 'bootMs', 0), remainingMs: expectInteger(anchor, 'remainingMs', 0) },
      };
    }
    default:
      return failValidation(`expiry.kind must be none, until or for, got ${JSON.stringify(record.kind)}`);
  }
}
