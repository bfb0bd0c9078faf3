// Crash-safe file primitives (balena-supervisor lib/fs-utils.ts writeFileAtomic).
//
// INVARIANTS (the crash-consistency protocol every state file relies on):
// - A state file is only ever replaced by rename(2) of a complete, fsynced
//   temp file in the same directory, followed by an fsync of the directory.
//   After a crash at any point a reader sees either the old content or the
//   new content, never a mix, and never a missing file that existed before.
// - Temp files are named `.<name>.tmp-<random uuid>` and created with O_EXCL,
//   so two writers never share one and an attacker cannot pre-create it.
//   Temp files left by a crash are invisible to readers (they match no state
//   file pattern) and are removed by removeStaleTempFiles when a store opens.
// - A removal is durable only after the directory is fsynced
//   (removeFileDurable), so an acknowledged report stays acknowledged.
// - A new record file (a name that does not exist yet: a job's journal entry,
//   a final report, a history entry) may instead be written in place under its
//   name (createFileDurable): one fsync of the file commits its name, inode and
//   content in one ext4 journal commit, where a temp file and a rename take
//   two. A crash before that fsync leaves no file or, when ext4's periodic
//   commit took the name first, an empty one: a record never acknowledged,
//   which the stores remove (json-file.ts setAsideRecordFile) instead of
//   quarantining.
import { randomUUID } from 'node:crypto';
import { closeSync, constants, fchmodSync, openSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { AgentError, StateIoError } from '../errors/errors.js';

const TEMP_MARK = '.tmp-';

/** Options for writeFileAtomic. */
export interface AtomicWriteOptions {
  /** Permission bits of the file, applied exactly (not reduced by the umask). */
  mode: number;
  /**
   * fsync the file and its directory so the new content survives power loss.
   * Off only for files on tmpfs that die with the boot anyway (/run). @default true
   */
  durable?: boolean;
}

/** Replaces `path` with `data` so that a crash leaves either the old or the new content. */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions,
): Promise<void> {
  const dir = dirname(path);
  // randomUUID draws from a cached entropy pool: cheaper per write than randomBytes
  const temp = join(dir, `.${basename(path)}${TEMP_MARK}${randomUUID()}`);
  if (options.durable === false) {
    writeTempAndRenameSync(temp, path, data, options.mode);
    return;
  }
  let handle;
  try {
    handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, options.mode);
  } catch (error) {
    throw describeIoError('create a temporary file for', path, error);
  }
  try {
    await handle.chmod(options.mode);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, path);
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw describeIoError('write', path, error);
  }
  await syncDirectory(dir);
}

// Without fsync, replacing a small state file is a few microseconds of page-cache
// work: blocking calls cost less than five thread-pool round trips (this is the
// per-step journal record and the runtime status file).
function writeTempAndRenameSync(temp: string, path: string, data: string | Uint8Array, mode: number): void {
  let fd: number;
  try {
    fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  } catch (error) {
    throw describeIoError('create a temporary file for', path, error);
  }
  try {
    try {
      fchmodSync(fd, mode);
      writeFileSync(fd, data);
    } finally {
      closeSync(fd);
    }
    renameSync(temp, path);
  } catch (error) {
    try {
      unlinkSync(temp);
    } catch {
      // already gone or never made: nothing to clean up
    }
    throw describeIoError('write', path, error);
  }
}

/**
 * Writes a file that does not exist yet at `path` itself, fsynced, then its
 * directory (see the INVARIANTS); replaces it as writeFileAtomic does when it
 * exists after all.
 */
export async function createFileDurable(path: string, data: string | Uint8Array, mode: number): Promise<void> {
  let handle;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  } catch (error) {
    if (isErrnoCode(error, 'EEXIST')) return writeFileAtomic(path, data, { mode });
    throw describeIoError('create', path, error);
  }
  try {
    await handle.chmod(mode);
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
    handle = undefined;
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await unlink(path).catch(() => undefined);
    throw describeIoError('write', path, error);
  }
  await syncDirectory(dirname(path));
}

/** Removes `path` (a missing file is fine) and makes the removal durable; returns whether it existed. */
export async function removeFileDurable(path: string): Promise<boolean> {
  const existed = await removeFileLazily(path);
  if (existed) await syncDirectory(dirname(path));
  return existed;
}

/**
 * Removes `path` (a missing file is fine) without waiting for the disk: a
 * crash may bring it back. Only for a file whose return is harmless (the
 * caller says why); any later fsync on the file system commits the removal.
 */
export async function removeFileLazily(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (error) {
    if (isErrnoCode(error, 'ENOENT')) return false;
    throw describeIoError('remove', path, error);
  }
}

/** Flushes a directory's entries (new names, renames, removals) to disk. */
export async function syncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    await handle.sync();
  } catch (error) {
    throw describeIoError('flush the directory', dir, error);
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Creates a directory (and its parents) with `mode`, or tightens an existing one that is looser. */
export async function ensureDir(path: string, mode: number): Promise<void> {
  try {
    await mkdir(path, { recursive: true, mode }).catch((error: unknown) => {
      if (!isErrnoCode(error, 'EEXIST')) throw error;
    });
    const info = await stat(path);
    if (!info.isDirectory()) {
      throw new StateIoError(path, `${path} exists but is not a directory; move it away so cloudjobs can keep its state there`, { errno: 'ENOTDIR' });
    }
    const current = info.mode & 0o7777;
    if ((current & ~mode) !== 0) await chmod(path, current & mode);
  } catch (error) {
    if (error instanceof AgentError) throw error;
    throw describeIoError('create the directory', path, error);
  }
}

/** Creates a directory only its owner can enter (0700 unless told otherwise), tightening a looser one. */
export async function ensurePrivateDir(path: string, mode = 0o700): Promise<void> {
  await ensureDir(path, mode);
}

/** Removes the temp files a crash left in `dir` (only call it from the single process that owns `dir`); returns their names. */
export async function removeStaleTempFiles(dir: string): Promise<string[]> {
  const names = await listDirectory(dir);
  const stale = names.filter((name) => isTempFileName(name));
  for (const name of stale) await unlink(join(dir, name)).catch(() => undefined);
  if (stale.length > 0) await syncDirectory(dir);
  return stale;
}

/** Returns whether `name` is a temp file made by writeFileAtomic. */
function isTempFileName(name: string): boolean {
  return name.startsWith('.') && name.includes(TEMP_MARK);
}

/** Lists the names in `dir`, sorted; a missing directory is empty. */
export async function listDirectory(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort();
  } catch (error) {
    if (isErrnoCode(error, 'ENOENT')) return [];
    throw describeIoError('list the directory', dir, error);
  }
}

/** Returns whether `error` is a Node system error with `code`. */
export function isErrnoCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}

/** Wraps a file system error into a STATE_IO AgentError that names the file and the cause. */
export function describeIoError(action: string, path: string, error: unknown): StateIoError {
  const reason = error instanceof Error ? error.message : String(error);
  return new StateIoError(
    path,
    `could not ${action} ${path} (${reason}); check that the state directory exists, is writable by the agent and the disk is not full`,
    { cause: error },
  );
}
