// The runtime status file (runtime_dir/status.json) that the running agent
// rewrites and `cloudjobs status` reads. World-readable (0644) by design: the
// caller builds the object, and must put no secrets in it.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StateCorruptError } from '../errors/errors.js';
import { describeIoError, ensureDir, isErrnoCode, removeFileDurable, writeFileAtomic } from './atomic-file.js';
import { checkJson } from './json-file.js';
import { expectRecord, expectVersion } from './validate.js';

/** The version field of the status file (and of `cloudjobs status --json`). */
export const STATUS_VERSION = 1;
const STATUS_MODE = 0o644;
const RUNTIME_DIR_MODE = 0o755;

/** What readRuntimeStatus found. */
export interface RuntimeStatusFile {
  path: string;
  /** The object the agent wrote (without the version field). */
  status: Record<string, unknown>;
}

/** Returns the path of the status file under `runtimeDir`. */
export function runtimeStatusPath(runtimeDir: string): string {
  return join(runtimeDir, 'status.json');
}

/** Replaces the status file atomically with `status` (mode 0644). */
// Atomic (a reader never sees half a file) but not fsynced: /run dies with the boot anyway,
// and the agent rewrites this file on the idle path.
// The directory is made (or its mode fixed) only when a write fails: the agent
// rewrites this file with every step, so the common case is one write.
export async function writeRuntimeStatus(runtimeDir: string, status: object): Promise<void> {
  const body = JSON.stringify({ ...(status as Record<string, unknown>), version: STATUS_VERSION });
  const write = (): Promise<void> => writeFileAtomic(runtimeStatusPath(runtimeDir), body, { mode: STATUS_MODE, durable: false });
  try {
    await write();
  } catch {
    await ensureDir(runtimeDir, RUNTIME_DIR_MODE);
    await write();
  }
}

/** Reads the status file: null when missing (the agent is not running); throws StateCorruptError when unreadable. */
export async function readRuntimeStatus(runtimeDir: string): Promise<RuntimeStatusFile | null> {
  const path = runtimeStatusPath(runtimeDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (isErrnoCode(error, 'ENOENT')) return null;
    throw describeIoError('read', path, error);
  }
  const checked = checkJson(text, (value) => {
    const r = expectRecord(value, 'status');
    expectVersion(r, STATUS_VERSION);
    const { version: _version, ...rest } = r;
    return rest;
  });
  if ('reason' in checked) {
    throw new StateCorruptError(path, `is not a status file the agent wrote (${checked.reason}); restart the agent to rewrite it`);
  }
  return { path, status: checked.value };
}

/** Removes the status file when the agent stops; missing is fine. */
export async function removeRuntimeStatus(runtimeDir: string): Promise<void> {
  await removeFileDurable(runtimeStatusPath(runtimeDir));
}
