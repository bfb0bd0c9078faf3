// Application holds: files in [jobs] hold_dir (/run/cloudjobs-holds, made by
// the package's tmpfiles.d entry: mode 3770 root:cloudjobs-hold, setgid so
// files belong to the group, sticky so one application cannot remove another's).
// A file counts while the kernel lists a lock on it (/proc/locks, see
// proc-locks.ts); the file's name is the holder's name, its first line the
// reason. The directory is writable by other users, so root reads it with
// care: no symlink is followed, no FIFO or device is opened for reading, and
// every count and length is bounded.
import { constants } from 'node:fs';
import { open, opendir } from 'node:fs/promises';
import { join } from 'node:path';
import { truncateText } from '../log/escape.js';
import { describeIoError, isErrnoCode } from './atomic-file.js';
import { lockKey, splitDevice } from './proc-locks.js';

/** Directory entries looked at, at most (the rest is counted as ignored). */
const MAX_HOLD_FILES = 64;
/** Bytes of a hold file read for its reason. */
const MAX_REASON_BYTES = 512;
/** Characters of a holder's name kept. */
const MAX_HOLDER_NAME_CHARS = 64;
const MAX_REASON_CHARS = 200;

/** One live application hold. Name and reason are as written: escape them before showing. */
export interface AppHold {
  name: string;
  reason: string;
}

/** What scanAppHolds found. */
export interface AppHoldScan {
  holds: AppHold[];
  /** Files with no live lock (their holder died or never locked them): ignored. */
  stale: string[];
  /** Entries not looked at: not regular files, or beyond MAX_HOLD_FILES. */
  skipped: number;
}

/**
 * Lists the live holds in `dir`. `readLocks` gives the set of locked files
 * (readLockedFiles), or null when the kernel's list could not be read: then
 * every file counts (holding when in doubt). It is called only when the
 * directory holds a file (an idle agent with no holds reads no /proc/locks).
 * A missing directory holds nothing.
 */
export async function scanAppHolds(dir: string, readLocks: () => Promise<ReadonlySet<string> | null>): Promise<AppHoldScan> {
  const scan: AppHoldScan = { holds: [], stale: [], skipped: 0 };
  let handle;
  try {
    handle = await opendir(dir, { bufferSize: 32 });
  } catch (error) {
    if (isErrnoCode(error, 'ENOENT')) return scan;
    throw describeIoError('list the application holds in', dir, error);
  }
  const names: string[] = [];
  for await (const entry of handle) {
    // hidden files (an application's temporary file) are not holds
    if (entry.name.startsWith('.')) continue;
    if (names.length >= MAX_HOLD_FILES || !entry.isFile()) scan.skipped += 1;
    else names.push(entry.name);
  }
  if (names.length === 0) return scan;
  const locked = await readLocks();
  for (const entryName of names) {
    const file = await readHoldFile(join(dir, entryName));
    if (file === null) {
      scan.skipped += 1;
      continue;
    }
    const name = truncateText(entryName, MAX_HOLDER_NAME_CHARS);
    if (locked === null || locked.has(file.key)) scan.holds.push({ name, reason: file.reason });
    else scan.stale.push(name);
  }
  scan.holds.sort((a, b) => a.name.localeCompare(b.name));
  return scan;
}

// The file's lock key and reason, or null when it is not a regular file (any more).
async function readHoldFile(path: string): Promise<{ key: string; reason: string } | null> {
  let handle;
  try {
    // O_NOFOLLOW: a symlink planted here is never followed; O_NONBLOCK: a FIFO cannot block the agent
    handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
    const stats = await handle.stat({ bigint: true });
    if (!stats.isFile()) return null;
    const { major, minor } = splitDevice(stats.dev);
    const buffer = Buffer.alloc(MAX_REASON_BYTES);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    const firstLine = buffer.subarray(0, bytesRead).toString('utf8').split('\n', 1)[0] ?? '';
    return { key: lockKey(major, minor, stats.ino), reason: truncateText(firstLine.trim(), MAX_REASON_CHARS) };
  } catch (error) {
    // gone meanwhile, or a symlink (ELOOP): not a hold
    if (isErrnoCode(error, 'ENOENT') || isErrnoCode(error, 'ELOOP')) return null;
    throw describeIoError('read the application hold', path, error);
  } finally {
    await handle?.close();
  }
}
