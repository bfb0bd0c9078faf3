// Loads the N-API addon that sends AF_UNIX datagrams (sd_notify and the
// journal's native protocol). Node itself cannot send AF_UNIX datagrams, hence
// the native code. Two sources:
// - installed (every package): the package puts the addon in /usr/lib/cloudjobs
//   (next to the armhf bundle; <prefix>/lib/cloudjobs for the single executable
//   <prefix>/bin/cloudjobs). It is dlopen'ed in place only when it and every
//   directory above it are owned by root (or us) and writable by nobody else,
//   and its sha256 is the one the bundle was built with. Nothing is written,
//   so /run, /tmp and the state dir may all be mounted noexec (Debian's
//   initramfs mounts /run noexec).
// - embedded (a single executable outside a package, e.g. build/cloudjobs): the
//   bundle carries the addon's bytes; they are written to a directory only this
//   user can write (root: runtime_dir; others: a fresh mkdtemp dir), checked,
//   and dlopen'ed. A noexec mount there is named in the error with what to do.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AgentError, describeError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import { findNoexecMount } from './noexec-mount.js';

/** Sends one datagram to an AF_UNIX socket path, or an abstract name starting with '@'. Throws on failure. */
export interface DatagramSender {
  send(socketPath: string, data: Buffer): void;
  /** Gives the C heap's free pages back to the system (glibc malloc_trim); null when the addon has no trim(). */
  trimHeap?: (() => void) | null;
}

/** The addon file a package installs (loaded in place), and the sha256 the bundle was built with. */
export interface InstalledAddon {
  path: string;
  sha256: string;
}

/** Inputs of loadDatagramSender. */
export interface LoadDatagramSenderOptions {
  /** The addon embedded in this build (see decodeEmbeddedAddon); null when none is (running from source). */
  addonBytes: Uint8Array | null;
  /** The addon a package installed; when given it is the only one tried (addonBytes is ignored). @default null */
  installed?: InstalledAddon | null;
  /** Where root writes the addon: runtime_dir (/run/cloudjobs). Must be root-owned and not group/world-writable. */
  dir: string;
  log: Log;
  /** Parent of the fresh private (0700) directory used when not running as root. @default os.tmpdir() */
  tmpDir?: string;
  /** The text of /proc/self/mountinfo, read when a directory is checked for noexec. @default reads the file */
  readMountinfo?: () => string;
}

/** The outcome of tryLoadDatagramSender: the sender, or why there is none. */
export type NativeLoad = { sender: DatagramSender; failure: null } | { sender: null; failure: string };

/** Where a package puts the addon for the executable at `executable`: <prefix>/lib/cloudjobs/datagram.node for <prefix>/bin/cloudjobs. */
export function packagedAddonPath(executable: string): string {
  return path.join(path.dirname(path.dirname(executable)), 'lib', 'cloudjobs', 'datagram.node');
}

/**
 * The installed addon of a single executable run from a package: when the package's
 * directory (<prefix>/lib/cloudjobs, which also holds the handlers) exists next to the
 * executable's bin directory, its datagram.node with the embedded addon's sha256; null
 * outside a package (build/cloudjobs), where the embedded copy is used.
 */
export function locatePackagedAddon(executable: string, embedded: Uint8Array): InstalledAddon | null {
  const file = packagedAddonPath(executable);
  try {
    if (!fs.lstatSync(path.dirname(file)).isDirectory()) return null;
  } catch {
    return null;
  }
  return { path: file, sha256: createHash('sha256').update(embedded).digest('hex') };
}

/** Decodes the base64 addon define (__CLOUDJOBS_ADDON__) of a build; null when the build has none. */
export function decodeEmbeddedAddon(base64: string | undefined): Uint8Array | null {
  if (base64 === undefined || base64 === '') return null;
  return Buffer.from(base64, 'base64');
}

/** Loads the installed addon in place, or writes the embedded one to a private directory, verifies and loads it; on any failure logs ONE warning and returns null. */
export function loadDatagramSender(options: LoadDatagramSenderOptions): DatagramSender | null {
  const loaded = tryLoadDatagramSender(options);
  if (loaded.failure !== null) {
    options.log.warn(`native datagram addon not loaded: ${loaded.failure}; running without systemd notify and journald fields`);
  }
  return loaded.sender;
}

/** As loadDatagramSender, but says why instead of logging: the caller decides how bad a missing sender is. */
export function tryLoadDatagramSender(options: Omit<LoadDatagramSenderOptions, 'log'>): NativeLoad {
  try {
    const { send, trim } = loadAddon(options);
    return { sender: { send: (socketPath, data) => void send(socketPath, data), trimHeap: trim ? () => void trim() : null }, failure: null };
  } catch (error) {
    return { sender: null, failure: describeError(error) };
  }
}

type SendFunction = (socketPath: string, data: Buffer) => unknown;
interface AddonExports {
  send: SendFunction;
  trim: (() => unknown) | null;
}

function loadAddon(options: Omit<LoadDatagramSenderOptions, 'log'>): AddonExports {
  const bytes = options.addonBytes;
  if (process.platform !== 'linux') throw new AgentError('NATIVE', `the addon is built for Linux, not ${process.platform}`);
  const euid = process.geteuid?.() ?? -1;
  if (options.installed) return loadInstalled(options.installed, euid);
  if (bytes === null || bytes.length === 0) {
    throw new AgentError('NATIVE', 'this build embeds no addon (running from source, not the built executable)');
  }
  const hash = createHash('sha256').update(bytes).digest('hex');
  const readMountinfo = options.readMountinfo ?? (() => fs.readFileSync('/proc/self/mountinfo', 'utf8'));
  if (euid === 0) {
    fs.mkdirSync(options.dir, { recursive: true, mode: 0o755 });
    checkTrustedDirectory(options.dir, euid, 0o022);
    checkExecMount(options.dir, readMountinfo, 'set [agent] runtime_dir to a directory on a filesystem mounted without noexec, or install the package, which loads /usr/lib/cloudjobs/datagram.node in place');
    const file = path.join(options.dir, `datagram-${hash.slice(0, 16)}.node`);
    writeVerified(file, bytes, hash, euid);
    return dlopenSend(file);
  }
  // Not root: a fresh mkdtemp directory (0700), never a predictable /tmp path; removed once loaded.
  const dir = fs.mkdtempSync(path.join(options.tmpDir ?? os.tmpdir(), 'cloudjobs-native-'));
  try {
    checkTrustedDirectory(dir, euid, 0o077);
    checkExecMount(dir, readMountinfo, 'set TMPDIR to a directory on a filesystem mounted without noexec');
    const file = path.join(dir, 'datagram.node');
    writeVerified(file, bytes, hash, euid);
    return dlopenSend(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// The installed addon is loaded in place: a regular file (not a symlink) owned by root or us,
// writable by nobody else, in a directory that passes the same test up to /, with the
// sha256 the bundle was built with (another version's addon, or a changed one, is refused).
function loadInstalled(addon: InstalledAddon, euid: number): AddonExports {
  if (!path.isAbsolute(addon.path)) throw new AgentError('NATIVE', `the addon path ${addon.path} is not absolute`);
  checkTrustedDirectory(path.dirname(addon.path), euid, 0o022, [0, euid]);
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(addon.path);
  } catch (error) {
    throw new AgentError('NATIVE', `${addon.path} is missing (${describeError(error)}); reinstall the package`);
  }
  if (!stat.isFile()) throw new AgentError('NATIVE', `${addon.path} is not a regular file (a symlink?)`);
  if (stat.uid !== 0 && stat.uid !== euid) throw new AgentError('NATIVE', `${addon.path} is owned by uid ${stat.uid}, not by root`);
  if ((stat.mode & 0o022) !== 0) {
    throw new AgentError('NATIVE', `${addon.path} has mode ${formatMode(stat.mode)}; it must not be writable by others`);
  }
  const hash = createHash('sha256').update(fs.readFileSync(addon.path)).digest('hex');
  if (hash !== addon.sha256) {
    throw new AgentError('NATIVE', `${addon.path} has sha256 ${hash}, not the ${addon.sha256} this agent was built with; reinstall the package`);
  }
  return dlopenSend(addon.path);
}

// The directory must be a real directory owned by one of `owners` (default: us) without the
// `forbidden` mode bits, and every ancestor must be owned by root or us and not writable by
// others unless sticky (/tmp).
function checkTrustedDirectory(dir: string, euid: number, forbidden: number, owners: readonly number[] = [euid]): void {
  const own = fs.lstatSync(dir);
  if (!own.isDirectory()) throw new AgentError('NATIVE', `${dir} is not a directory (a symlink?)`);
  if (!owners.includes(own.uid)) throw new AgentError('NATIVE', `${dir} is owned by uid ${own.uid}, not by uid ${owners.join(' or ')}`);
  if ((own.mode & forbidden) !== 0) {
    throw new AgentError('NATIVE', `${dir} has mode ${formatMode(own.mode)}; it must not be writable by others`);
  }
  let current = path.resolve(dir);
  while (path.dirname(current) !== current) {
    current = path.dirname(current);
    const parent = fs.statSync(current);
    const sticky = (parent.mode & 0o1000) !== 0;
    if ((parent.uid !== 0 && parent.uid !== euid) || ((parent.mode & 0o022) !== 0 && !sticky)) {
      throw new AgentError(
        'NATIVE',
        `${current} (uid ${parent.uid}, mode ${formatMode(parent.mode)}) lets others replace ${dir}`,
      );
    }
  }
}

// A shared object on a noexec mount cannot be mapped ("failed to map segment from shared
// object"): refuse before writing it, naming the mount and what to do. An unreadable
// mountinfo proves nothing; dlopen then says what it says.
function checkExecMount(dir: string, readMountinfo: () => string, advice: string): void {
  let mountinfo: string;
  try {
    mountinfo = readMountinfo();
  } catch {
    return;
  }
  const real = fs.realpathSync(dir);
  const mountPoint = findNoexecMount(real, mountinfo);
  if (mountPoint !== null) {
    throw new AgentError(
      'NATIVE',
      `${dir} is on ${mountPoint}, which is mounted noexec, so the embedded addon cannot be loaded from there; ${advice}`,
    );
  }
}

// Writes through a temp file and rename unless an identical file is there, then reads it back.
function writeVerified(file: string, bytes: Uint8Array, hash: string, euid: number): void {
  if (!matchesFile(file, hash, euid)) {
    const temp = `${file}.${process.pid}.tmp`;
    fs.rmSync(temp, { force: true });
    fs.writeFileSync(temp, bytes, { flag: 'wx', mode: 0o644 });
    fs.renameSync(temp, file);
  }
  if (!matchesFile(file, hash, euid)) {
    throw new AgentError('NATIVE', `${file} does not hold the embedded addon after writing it (sha256 mismatch)`);
  }
}

function matchesFile(file: string, hash: string, euid: number): boolean {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(file);
  } catch {
    return false;
  }
  if (!stat.isFile() || stat.uid !== euid || (stat.mode & 0o022) !== 0) return false;
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex') === hash;
}

function dlopenSend(file: string): AddonExports {
  const module = { exports: {} as Record<string, unknown> };
  process.dlopen(module, file, os.constants.dlopen.RTLD_NOW);
  const { send, trim } = module.exports;
  if (typeof send !== 'function') throw new AgentError('NATIVE', `${file} does not export send()`);
  return { send: send as SendFunction, trim: typeof trim === 'function' ? (trim as () => unknown) : null };
}

function formatMode(mode: number): string {
  return `0${(mode & 0o7777).toString(8)}`;
}
