// Finds processes through /proc: the members of a process group, and the
// processes that carry a job's CLOUDJOBS_JOB_ID in their environment (how we
// find daemons that left their step's process group with setsid, to stop
// them). Only for stopping: what a process says about itself (argv, environ)
// never decides what the agent reports (README "What the agent believes").
import { readdir, readFile } from 'node:fs/promises';

/** One live (non-zombie) process. */
export interface ProcessEntry {
  pid: number;
  pgid: number;
}

/** Lists live processes (zombies and unreadable entries are skipped). */
async function listProcesses(procRoot = '/proc'): Promise<ProcessEntry[]> {
  const pids = (await readdir(procRoot)).filter((name) => /^\d+$/.test(name));
  const entries = await Promise.all(
    pids.map(async (name): Promise<ProcessEntry | null> => {
      const stat = await readFile(`${procRoot}/${name}/stat`, 'utf8').catch(() => null);
      const parsed = stat === null ? null : parseStat(stat);
      if (parsed === null || parsed.state === 'Z' || parsed.state === 'X') return null;
      return { pid: Number(name), pgid: parsed.pgid };
    }),
  );
  return entries.filter((entry): entry is ProcessEntry => entry !== null);
}

/** Returns the live members of process group `pgid`. */
export async function findGroupMembers(pgid: number, procRoot = '/proc'): Promise<number[]> {
  return (await listProcesses(procRoot)).filter((p) => p.pgid === pgid).map((p) => p.pid);
}

/**
 * Returns live processes whose initial environment holds exactly `entry`
 * ("NAME=value"), except `excludePid`. Root reads every environ; another user
 * only its own processes, which are the only ones it could have started.
 */
export async function findProcessesWithEnv(entry: string, excludePid: number, procRoot = '/proc'): Promise<number[]> {
  const wanted = Buffer.from(`\0${entry}\0`);
  const candidates = (await listProcesses(procRoot)).filter((proc) => proc.pid !== excludePid);
  const matches = await Promise.all(
    candidates.map(async (proc) => {
      const environ = await readFile(`${procRoot}/${proc.pid}/environ`).catch(() => null);
      return environ !== null && Buffer.concat([Buffer.from([0]), environ, Buffer.from([0])]).includes(wanted) ? proc.pid : null;
    }),
  );
  return matches.filter((pid): pid is number => pid !== null);
}

/** Parses the state and pgid out of /proc/PID/stat (comm may hold spaces and parens). */
export function parseStat(text: string): { state: string; pgid: number } | null {
  const close = text.lastIndexOf(')');
  if (close === -1) return null;
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const pgid = Number(fields[2]);
  if (state === undefined || !Number.isInteger(pgid)) return null;
  return { state, pgid };
}
