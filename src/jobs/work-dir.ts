// The per-job working directories under [jobs] work_dir: the root is checked
// (or created) like sshd checks StrictModes paths, each job gets a fresh
// directory per run-as user, and all of them are removed when the job ends.
import { chmod, chown, lstat, mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import type { UserInfo } from './users.js';

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
  if (agentUid === 0 && (stat.mode & 0o001) === 0) {
    return `work_dir ${workDir} cannot be entered by the users steps run as (mode ${(stat.mode & 0o7777).toString(8)}); fix with: chmod 755 ${workDir}`;
  }
  return null;
}

/** Creates a fresh directory for one job and one run-as user, owned by that user, mode 0700. */
export async function createJobDir(workDir: string, jobId: string, user: UserInfo, agentUid: number): Promise<string> {
  const safeId = jobId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
  const safeUser = user.name.replace(/[^A-Za-z0-9_.-]/g, '_');
  const dir = await mkdtemp(path.join(workDir, `${safeId}.${safeUser}.`));
  await chmod(dir, 0o700);
  if (agentUid === 0) await chown(dir, user.uid, user.gid);
  return dir;
}

/** Removes a job directory and everything in it (symlinks inside are removed, never followed). */
export async function removeJobDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}
