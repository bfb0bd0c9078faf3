// The per-job working directories under [jobs] work_dir: the root is checked
// (or created) like sshd checks StrictModes paths, each job gets a fresh
// directory per run-as user, and all of them are removed when the job ends.
//
// INVARIANTS (the agent is root, the step's user is not)
// - Root never resolves a path inside a directory the step's user can write.
//   work_dir and every directory above it are root's and not writable by
//   anyone else (a sticky directory such as /tmp is allowed above it: there
//   nobody else can rename root's entries), so `work_dir/<job dir>` always
//   names the directory root created; root only touches that one name.
// - A job directory is created by root (mkdtemp: fresh, never pre-existing),
//   then made the user's through a file descriptor opened with O_NOFOLLOW,
//   never through a path the user could have swapped.
// - Its contents are removed by the step's own user (rm -rf through the same
//   run-as mechanism as the steps, launch.ts), so a symlink a process of that
//   user swaps in mid-removal (renameat2 RENAME_EXCHANGE) can only ever make
//   it delete what that user could delete anyway. Root then removes the empty
//   job directory with rmdir (no recursion: a non-empty one stays, with a
//   warning). Walking the tree as root by directory fds (openat O_NOFOLLOW)
//   would also be safe, but Node has no openat/unlinkat, and GNU rm already is
//   that walk (fts with openat, O_NOFOLLOW and device/inode checks).
// - A job directory of a step that ran as root is removed by root's rm the
//   same way: it removes symlinks and never follows them, and with
//   --one-file-system it does not descend into mounts below the directory.
import { constants } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readdir, realpath, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { Clock } from '../clock/clock.js';
import { escapeText } from '../log/escape.js';
import { isExecutableFile } from './executable.js';
import { createGroupTarget, runKillLadder } from './kill-ladder.js';
import { planLaunch, type AgentPrivileges } from './launch.js';
import { ancestorsOf } from './path-ancestors.js';
import type { UserInfo } from './users.js';

/** How long removing one job directory may take before its remover is stopped. */
export const REMOVE_TIME_LIMIT_MS = 10 * 60_000;
const RM_CANDIDATES = ['/usr/bin/rm', '/bin/rm'];
const CHMOD_CANDIDATES = ['/usr/bin/chmod', '/bin/chmod'];
/** Bytes of the remover's stderr kept for the warning. */
const MAX_REMOVER_STDERR = 2000;

/**
 * Creates `workDir` (0755, owned by the agent) when missing; returns a problem
 * sentence when it is unsafe to hand out directories below it, else null.
 */
export async function prepareWorkRoot(workDir: string, agentUid: number): Promise<string | null> {
  if (!path.isAbsolute(workDir)) return `work_dir ${workDir} is not an absolute path`;
  await mkdir(workDir, { recursive: true, mode: 0o755 }).catch(() => undefined);
  const stat = await lstat(workDir).catch((error: NodeJS.ErrnoException) => error);
  if (stat instanceof Error) return `work_dir ${workDir} cannot be used: ${stat.message}`;
  if (!stat.isDirectory()) return `work_dir ${workDir} is not a directory`;
  if (stat.uid !== agentUid) {
    return `work_dir ${workDir} is owned by uid ${stat.uid}, not by the agent (uid ${agentUid}); fix with: chown ${agentUid} ${workDir}`;
  }
  if ((stat.mode & 0o022) !== 0) {
    return `work_dir ${workDir} is group- or world-writable (mode ${(stat.mode & 0o7777).toString(8)}); fix with: chmod go-w ${workDir}`;
  }
  if (agentUid !== 0) return null;
  if ((stat.mode & 0o001) === 0) {
    return `work_dir ${workDir} cannot be entered by the users steps run as (mode ${(stat.mode & 0o7777).toString(8)}); fix with: chmod 755 ${workDir}`;
  }
  return checkAncestors(workDir);
}

// As root: every directory above work_dir (as configured and as resolved) must
// be root's and writable by root only, or sticky (then nobody else can rename
// root's entries in it). Otherwise whoever can write one of them could swap
// work_dir for a symlink between two of root's operations.
async function checkAncestors(workDir: string): Promise<string | null> {
  const real = await realpath(workDir).catch(() => workDir);
  const targets = new Set([...ancestorsOf(workDir), ...ancestorsOf(real)]);
  for (const target of targets) {
    const info = await stat(target).catch((error: NodeJS.ErrnoException) => error);
    if (info instanceof Error) return `work_dir ${workDir} cannot be used: ${target} cannot be checked (${info.code ?? info.message})`;
    const mode = (info.mode & 0o7777).toString(8);
    if (info.uid !== 0) {
      return `work_dir ${workDir} is below ${target}, owned by uid ${info.uid}, not root; that user could swap work_dir for a symlink: move work_dir or chown root ${target}`;
    }
    if ((info.mode & 0o022) !== 0 && (info.mode & 0o1000) === 0) {
      return `work_dir ${workDir} is below ${target}, which others can write (mode ${mode}); they could swap work_dir for a symlink: move work_dir or chmod go-w ${target}`;
    }
  }
  return null;
}

/** Creates a fresh directory for one job and one run-as user, owned by that user, mode 0700. */
export async function createJobDir(workDir: string, jobId: string, user: UserInfo, agentUid: number): Promise<string> {
  const safeId = safeIdOf(jobId);
  const safeUser = user.name.replace(/[^A-Za-z0-9_.-]/g, '_');
  const dir = await mkdtemp(path.join(workDir, `${safeId}.${safeUser}.`));
  // through the descriptor of the directory mkdtemp made, never by name again
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    await handle.chmod(0o700);
    if (agentUid === 0) await handle.chown(user.uid, user.gid);
  } finally {
    await handle.close();
  }
  return dir;
}

function safeIdOf(jobId: string): string {
  return jobId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
}

/**
 * Removes the directories an interrupted job (the agent stopped mid-job: a
 * crash, kill -9, power loss) left in work_dir, each as its owner (uid and gid
 * from lstat of root's own entry) like removeJobDir. Only names createJobDir
 * made for this job id are touched. Never throws: returns what it removed and
 * one sentence per directory it could not remove.
 */
export async function removeLeftoverJobDirs(
  workDir: string,
  jobId: string,
  options: Omit<RemoveJobDirOptions, 'user'>,
): Promise<{ removed: string[]; problems: string[] }> {
  const prefix = `${safeIdOf(jobId)}.`;
  const removed: string[] = [];
  const problems: string[] = [];
  const names = await readdir(workDir).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix) || !/^[A-Za-z0-9_.$-]+\.[A-Za-z0-9]{6}$/.test(name.slice(prefix.length))) continue;
    const dir = path.join(workDir, name);
    try {
      const info = await lstat(dir);
      if (!info.isDirectory()) continue;
      const user: UserInfo = { name: `uid ${info.uid}`, uid: info.uid, gid: info.gid, home: '/', shell: '/bin/sh', groups: [info.gid] };
      await removeJobDir(dir, { ...options, user });
      removed.push(dir);
    } catch (error) {
      problems.push(error instanceof Error ? error.message : String(error));
    }
  }
  return { removed, problems };
}

/** What removing a job directory needs: whose it is, how to become that user, and a clock for the time limit. */
export interface RemoveJobDirOptions {
  user: UserInfo;
  agent: AgentPrivileges;
  clock: Clock;
  killGraceMs: number;
  /** Default REMOVE_TIME_LIMIT_MS. */
  timeLimitMs?: number;
}

/**
 * Removes a job directory and everything in it: the contents as the directory's
 * user (see INVARIANTS), then the empty directory itself. Throws with what is
 * left and why when the directory is not gone afterwards.
 */
export async function removeJobDir(dir: string, options: RemoveJobDirOptions): Promise<void> {
  const rm = await findTool(RM_CANDIDATES);
  const chmod = await findTool(CHMOD_CANDIDATES);
  // read-only directories (go's module cache makes them) cannot be emptied by
  // their owner until made writable; as root rm needs no such help
  if (options.user.uid !== 0) await runAsUser(chmod, ['-R', '-f', 'u+rwx', '--', dir], options);
  const removal = await runAsUser(rm, ['-r', '-f', '--one-file-system', '--', dir], options);
  try {
    await rmdir(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    const detail = removal.stderr === '' ? '' : `; rm said: ${escapeText(removal.stderr)}`;
    const why =
      code === 'ENOTEMPTY' || code === 'EEXIST'
        ? 'it is not empty (a process of that user is probably still changing it; it is left in place)'
        : (code ?? String(error));
    throw new Error(`${dir} was emptied as user ${options.user.name} but not removed: ${why}${removal.timedOut ? `; rm ran out of its ${REMOVE_TIME_LIMIT_MS / 60_000} min limit` : ''}${detail}`);
  }
}

async function findTool(candidates: string[]): Promise<string> {
  for (const candidate of candidates) {
    if (await isExecutableFile(candidate)) return candidate;
  }
  throw new Error(`none of ${candidates.join(', ')} exists`);
}

// Runs a coreutils tool as the directory's user with a clean environment, in
// its own process group, stopped through the kill ladder if it outlasts the
// limit. Keeps the first lines of what it says on stderr (read to the end).
async function runAsUser(file: string, args: string[], options: RemoveJobDirOptions): Promise<{ stderr: string; timedOut: boolean }> {
  const launch = planLaunch(file, args, options.user, options.agent);
  if ('problem' in launch) throw new Error(launch.problem);
  const child = execa(launch.file, launch.args, {
    cwd: '/',
    env: { PATH: '/usr/bin:/bin', LANG: 'C' },
    extendEnv: false,
    uid: launch.uid,
    gid: launch.gid,
    stdin: 'ignore',
    stdout: 'ignore',
    stderr: 'pipe',
    buffer: false,
    detached: true,
    cleanup: false,
    reject: false,
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (stderr.length < MAX_REMOVER_STDERR) stderr += chunk.toString('utf8');
  });
  const timer = new AbortController();
  let timedOut = false;
  options.clock.sleep(options.timeLimitMs ?? REMOVE_TIME_LIMIT_MS, timer.signal).then(
    () => {
      timedOut = true;
      if (child.pid !== undefined) void runKillLadder(createGroupTarget(child.pid), options.killGraceMs, options.clock).catch(() => undefined);
    },
    () => undefined,
  );
  try {
    await child;
    return { stderr: summarizeLines(stderr), timedOut };
  } finally {
    timer.abort('settled');
  }
}

// The first three lines of `text`, and how many more there were (at most MAX_REMOVER_STDERR read).
function summarizeLines(text: string): string {
  const lines = text.slice(0, MAX_REMOVER_STDERR).split('\n').filter((line) => line.trim() !== '');
  const shown = lines.slice(0, 3).join('; ');
  return lines.length > 3 ? `${shown}; and more` : shown;
}
