// Finds the executable a runHandler step names and proves it safe to run.
//
// Handlers run with whatever user the job asks for (root included when an
// admin allows it), so whoever can change a handler, or any directory above
// it, can run code as that user. Like sshd's StrictModes, the file and every
// directory above it up to / must be owned by root and not group- or
// world-writable; checked for both the configured path (its symlinked parts)
// and the real path. A handler may be a symlink, but only to a file inside
// its own directory. Once this passes, only root can change what will run.
import { lstat, realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import path from 'node:path';
import { ancestorsOf } from './path-ancestors.js';

/** The identity a handler will run with; a structural subset of users.ts UserInfo. */
export interface HandlerUser {
  name: string;
  uid: number;
  gid: number;
  groups: number[];
}

/** Where to look for a handler and whom it must be executable by. */
export interface ResolveHandlerOptions {
  /** `[jobs] handler_dirs`, searched in order. */
  handlerDirs: readonly string[];
  /** `input.path`: null, "" or "default" search every handler dir; any other value must be one of them. */
  inputPath: string | null;
  /** When known, the file must be executable and every directory searchable by this user. */
  user: HandlerUser | null;
  /**
   * This directory and every one above it are not checked. Only for tests,
   * whose temporary trees live below the world-writable /tmp; production
   * leaves it unset so the walk goes all the way to /.
   */
  trustedDir?: string;
}

/** The verified real path of the handler, or every problem found (each a phrase naming the path). */
export type ResolveHandlerResult = { ok: true; path: string } | { ok: false; problems: string[] };

// NAME_MAX on Linux.
const MAX_NAME_BYTES = 255;

/** Returns why `name` is not a plain handler file name, or null when it is one. */
export function checkHandlerName(name: string): string | null {
  if (name === '') return 'input.handler must not be empty';
  if (name.includes('/')) return `input.handler ${quote(name)} must be a plain file name without "/"`;
  if (name.startsWith('.')) return `input.handler ${quote(name)} must not start with "."`;
  if (/[\u0000-\u001f\u007f]/.test(name)) return `input.handler ${quote(name)} must not contain control characters`;
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_NAME_BYTES) return `input.handler is ${bytes} bytes long; a file name has at most ${MAX_NAME_BYTES}`;
  return null;
}

/** Finds handler `name` in the allowed directories and checks the file and every directory above it. */
export async function resolveHandler(name: string, options: ResolveHandlerOptions): Promise<ResolveHandlerResult> {
  const nameProblem = checkHandlerName(name);
  if (nameProblem !== null) return { ok: false, problems: [nameProblem] };

  const allowed = options.handlerDirs.map((dir) => path.resolve(dir));
  let dirs: string[];
  const wanted = options.inputPath;
  if (wanted === null || wanted === '' || wanted === 'default') {
    dirs = allowed;
  } else {
    const normalized = path.isAbsolute(wanted) ? path.resolve(wanted) : null;
    if (normalized === null || !allowed.includes(normalized)) {
      return {
        ok: false,
        problems: [`input.path ${quote(wanted)} is not one of jobs.handler_dirs (${allowed.join(', ') || 'none configured'})`],
      };
    }
    dirs = [normalized];
  }

  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    let link: Stats;
    try {
      link = await lstat(candidate);
    } catch (error) {
      // A missing directory or file just means "look in the next one".
      if (isCode(error, 'ENOENT') || isCode(error, 'ENOTDIR')) continue;
      return { ok: false, problems: [`${candidate} cannot be read (${codeOf(error)})`] };
    }
    // The first directory holding the name decides: an unsafe handler in the
    // first directory is an error, never a reason to run another one.
    return checkCandidate(candidate, dir, link, options);
  }
  const where = dirs.length > 0 ? dirs.join(', ') : 'no directory (jobs.handler_dirs is empty)';
  return { ok: false, problems: [`input.handler ${quote(name)} was not found in ${where}`] };
}

async function checkCandidate(
  candidate: string,
  dir: string,
  link: Stats,
  options: ResolveHandlerOptions,
): Promise<ResolveHandlerResult> {
  let real: string;
  let realDir: string;
  try {
    realDir = await realpath(dir);
    real = await realpath(candidate);
  } catch (error) {
    if (link.isSymbolicLink() && isCode(error, 'ENOENT')) {
      return { ok: false, problems: [`${candidate} is a broken symlink`] };
    }
    return { ok: false, problems: [`${candidate} cannot be resolved (${codeOf(error)})`] };
  }
  if (!real.startsWith(realDir === '/' ? '/' : `${realDir}/`)) {
    return {
      ok: false,
      problems: [`${candidate} is a symlink to ${real}, outside ${dir}; a handler must stay inside its directory`],
    };
  }

  const file = await stat(real);
  if (!file.isFile()) {
    return { ok: false, problems: [`${candidate} is not a regular file (${describeType(file)})`] };
  }

  const problems: string[] = [];
  const seen = new Set<string>();
  const trusted = options.trustedDir === undefined ? null : path.resolve(options.trustedDir);
  // The real file, the directories above it, and the directories of the path
  // as configured (a symlinked handler dir can be repointed by whoever can
  // write the directory that holds the symlink).
  const targets = [real, ...ancestorsOf(real), ...ancestorsOf(candidate)];
  for (const target of targets) {
    if (trusted !== null && isAtOrAbove(target, trusted)) continue;
    let info: Stats;
    try {
      info = await stat(target);
    } catch (error) {
      problems.push(`${target} cannot be checked (${codeOf(error)})`);
      continue;
    }
    const key = `${info.dev}:${info.ino}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const isTheFile = target === real;
    problems.push(...checkOwnership(target, info));
    const user = options.user;
    if (isTheFile) {
      if ((info.mode & 0o111) === 0) {
        problems.push(`${target} is not executable (mode ${formatMode(info.mode)}); chmod +x it`);
      } else if (user !== null && !permits(info, user, 0o1)) {
        problems.push(`${target} is not executable by user ${quote(user.name)} (mode ${formatMode(info.mode)}, group ${info.gid})`);
      }
    } else if (user !== null && !permits(info, user, 0o1)) {
      problems.push(`${target} is not searchable by user ${quote(user.name)} (mode ${formatMode(info.mode)}); chmod o+x it`);
    }
  }
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, path: real };
}

/** Returns what makes `target` unsafe to trust (owner, group/world write), as StrictModes judges it. */
export function checkOwnership(target: string, info: Pick<Stats, 'uid' | 'mode'>): string[] {
  const problems: string[] = [];
  if (info.uid !== 0) problems.push(`${target} is owned by uid ${info.uid}, not root; chown root it`);
  const groupWritable = (info.mode & 0o020) !== 0;
  const worldWritable = (info.mode & 0o002) !== 0;
  const mode = formatMode(info.mode);
  if (groupWritable && worldWritable) {
    problems.push(`${target} is group- and world-writable (mode ${mode}); chmod go-w it`);
  } else if (groupWritable) {
    problems.push(`${target} is group-writable (mode ${mode}); chmod g-w it`);
  } else if (worldWritable) {
    problems.push(`${target} is world-writable (mode ${mode}); chmod o-w it`);
  }
  return problems;
}

// Permission bits as the kernel applies them to a process without
// capabilities: owner bits if it owns the file, else group bits if it is in
// the file's group, else the other bits. The runner drops every capability,
// so this holds for root too.
function permits(info: Pick<Stats, 'uid' | 'gid' | 'mode'>, user: HandlerUser, bit: number): boolean {
  if (info.uid === user.uid) return (info.mode & (bit << 6)) !== 0;
  if (info.gid === user.gid || user.groups.includes(info.gid)) return (info.mode & (bit << 3)) !== 0;
  return (info.mode & bit) !== 0;
}

function isAtOrAbove(target: string, trusted: string): boolean {
  return target === trusted || trusted.startsWith(target === '/' ? '/' : `${target}/`);
}

function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

function describeType(info: Stats): string {
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice() || info.isBlockDevice()) return 'a device';
  return 'not a file';
}

function isCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}

function codeOf(error: unknown): string {
  if (typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string') {
    return (error as { code: string }).code;
  }
  return error instanceof Error ? error.message : String(error);
}

function quote(text: string): string {
  return JSON.stringify(text.length > 60 ? `${text.slice(0, 60)}…` : text);
}
