// Which boot the agent runs in, so that after a reboot requested by a job it
// can tell "the device rebooted" from "the agent was merely restarted".
//
// Two signs, either one proves a reboot:
// - the kernel's boot_id (/proc/sys/kernel/random/boot_id), new on every boot
//   of a machine (and of a systemd-nspawn container, which gets its own);
// - a marker file in runtime_dir (on /run, a tmpfs that starts empty on every
//   boot). It covers containers whose boot_id is the host's and never changes.
//   The unit keeps runtime_dir across service restarts
//   (RuntimeDirectoryPreserve=yes), so only a boot removes the marker.
//
// INVARIANTS
// - readBootIdentity creates the marker when it is missing and never rewrites
//   an existing one: within one boot every call returns the same marker.
// - A marker that cannot be read or written is an error, never a silent new
//   identity (that would make a restart look like a reboot).
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describeIoError, ensureDir, isErrnoCode, writeFileAtomic } from './atomic-file.js';

/** The identity of the current boot. */
export interface BootIdentity {
  /** The kernel's boot_id, or null where the file does not exist (not Linux, no /proc). */
  bootId: string | null;
  /** The random token in runtime_dir's marker file, made at the first call in this boot. */
  marker: string;
}

/** Where the identity comes from ([agent] boot_id_file and runtime_dir). */
export interface BootIdentitySource {
  bootIdFile: string;
  runtimeDir: string;
}

/** The marker's file name in runtime_dir. */
export const BOOT_MARKER_NAME = 'boot-marker';

// A marker or boot id longer than this is not ours.
const MAX_TOKEN_CHARS = 200;

/** Reads the boot identity, creating runtime_dir's marker when this boot has none yet. */
export async function readBootIdentity(source: BootIdentitySource): Promise<BootIdentity> {
  return { bootId: await readBootId(source.bootIdFile), marker: await readOrCreateMarker(source.runtimeDir) };
}

/** Whether `now` is a later boot than `before`: the boot_id changed, or the marker did. */
export function hasRebooted(before: BootIdentity, now: BootIdentity): boolean {
  if (before.bootId !== null && now.bootId !== null && before.bootId !== now.bootId) return true;
  return before.marker !== now.marker;
}

async function readBootId(path: string): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (isErrnoCode(error, 'ENOENT')) return null;
    throw describeIoError('read the boot id from', path, error);
  }
  const id = text.trim();
  if (id === '' || id.length > MAX_TOKEN_CHARS) throw describeIoError('read the boot id from', path, new Error(`unexpected content ${JSON.stringify(id.slice(0, 40))}`));
  return id;
}

async function readOrCreateMarker(runtimeDir: string): Promise<string> {
  const path = join(runtimeDir, BOOT_MARKER_NAME);
  const existing = await readMarker(path);
  if (existing !== null) return existing;
  await ensureDir(runtimeDir, 0o755);
  const marker = randomUUID();
  // /run dies with the boot: no fsync needed, and none wanted (tmpfs)
  await writeFileAtomic(path, `${marker}\n`, { mode: 0o644, durable: false });
  return marker;
}

async function readMarker(path: string): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if (isErrnoCode(error, 'ENOENT')) return null;
    throw describeIoError('read the boot marker', path, error);
  }
  const marker = text.trim();
  if (marker === '' || marker.length > MAX_TOKEN_CHARS) {
    throw describeIoError('read the boot marker', path, new Error(`unexpected content ${JSON.stringify(marker.slice(0, 40))}; remove the file`));
  }
  return marker;
}
