// Versioned JSON state files: written atomically, validated on read, and moved
// aside (never deleted or silently replaced) when they do not read back.
import { chmod, lstat, readFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Clock } from '../clock/clock.js';
import type { Log } from '../log/log.js';
import { describeIoError, isErrnoCode, removeFileDurable, syncDirectory, writeFileAtomic } from './atomic-file.js';
import { ValidationProblem, type Validator } from './validate.js';

/** Mode of state files: they may hold job output and secrets. */
export const STATE_FILE_MODE = 0o600;

/** Where the time of a quarantine comes from (a Clock, or anything with now()). */
export type TimeSource = Pick<Clock, 'now'>;

/** Reads and validates a JSON state file: null when missing; a corrupt file is quarantined with one warning and null returned. */
export async function readJsonFile<T>(
  path: string,
  validate: Validator<T>,
  log: Log,
  clock: TimeSource = { now: () => Date.now() },
): Promise<T | null> {
  return readChecked(path, validate, (_text, reason) => quarantineFile(path, reason, log, clock));
}

/** readJsonFile for a record file made by createFileDurable: an empty one is removed, not quarantined (setAsideRecordFile). */
export async function readRecordFile<T>(path: string, validate: Validator<T>, log: Log, clock: TimeSource): Promise<T | null> {
  return readChecked(path, validate, (text, reason) => setAsideRecordFile(path, text, reason, log, clock));
}

async function readChecked<T>(path: string, validate: Validator<T>, setAside: (text: string, reason: string) => Promise<unknown>): Promise<T | null> {
  const text = await readTextIfExists(path);
  if (text === null) return null;
  const checked = checkJson(text, validate);
  if ('value' in checked) return checked.value;
  await setAside(text, checked.reason);
  return null;
}

/** Reads a state file as text; null when it does not exist, an AgentError naming it on any other failure. */
export async function readTextIfExists(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (isErrnoCode(error, 'ENOENT')) return null;
    throw describeIoError('read', path, error);
  }
}

/** Parses and validates `text`; returns the value or the reason it is unusable. */
export function checkJson<T>(text: string, validate: Validator<T>): { value: T } | { reason: string } {
  if (text.length === 0) return { reason: 'the file is empty' };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    return { reason: error instanceof Error ? error.message : String(error) };
  }
  try {
    return { value: validate(raw) };
  } catch (error) {
    if (error instanceof ValidationProblem) return { reason: error.message };
    throw error;
  }
}

/** Writes `value` as JSON atomically and durably (no trailing newline, so any truncation is detectable). */
export async function writeJsonFile(path: string, value: unknown, mode = STATE_FILE_MODE): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value), { mode });
}

/** Moves an unusable state file to `<name>.corrupt-<UTC timestamp>` (mode 0600) and warns once; returns the new path. */
export async function quarantineFile(path: string, reason: string, log: Log, clock: TimeSource): Promise<string> {
  const stamp = formatQuarantineStamp(clock.now());
  let target = `${path}.corrupt-${stamp}`;
  for (let n = 1; await pathExists(target); n += 1) target = `${path}.corrupt-${stamp}-${n}`;
  try {
    await rename(path, target);
  } catch (error) {
    throw describeIoError('move aside the corrupt state file', path, error);
  }
  // a corrupt state file may still hold secrets or job output: keep it private
  await chmod(target, 0o600).catch(() => undefined);
  await syncDirectory(dirname(path));
  log.warn(`state file ${path} is corrupt (${reason}); moved it to ${target} and went on without it`, {
    file: path,
    quarantinedTo: target,
    reason,
  });
  return target;
}

/**
 * What a store does with a record file (created by createFileDurable) that
 * does not read back: an empty one is a creation a crash cut short before its
 * content reached the disk, never acknowledged, so it is removed with an info
 * line; anything else is quarantined.
 */
export async function setAsideRecordFile(path: string, text: string, reason: string, log: Log, clock: TimeSource): Promise<void> {
  if (text.length > 0) {
    await quarantineFile(path, reason, log, clock);
    return;
  }
  await removeFileDurable(path);
  log.info(`removed the empty state file ${path}: a record whose writing a crash or power cut interrupted before it was acknowledged`, { file: path });
}

/** Formats ms since the epoch as `20261128T100000Z`. */
export function formatQuarantineStamp(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if (isErrnoCode(error, 'ENOENT')) return false;
    throw describeIoError('inspect', path, error);
  }
}
