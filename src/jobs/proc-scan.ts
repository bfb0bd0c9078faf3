// Finds processes through /proc: the members of a process group, and the
// processes that carry a job's CLOUDJOBS_JOB_ID in their environment (how we
// find daemons that left their step's process group with setsid).
import { readdir, readFile } from 'node:fs/promises';

/** One live (non-zombie) process. */
export interface ProcessEntry {
  pid: number;
  pgid: number;
}

/** Lists live processes (zombies and unreadable entries are skipped). */
export async function listProcesses(procRoot = '/proc'): Promise<ProcessEntry[]> {
  const names = await readdir(procRoot);
  const entries: ProcessEntry[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`${procRoot}/${name}/stat`, 'utf8').catch(() => null);
    if (stat === null) continue;
    const parsed = parseStat(stat);
    if (parsed !== null && parsed.state !== 'Z' && parsed.state !== 'X') {
      entries.push({ pid: Number(name), pgid: parsed.pgid });
    }
  }
  return entries;
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
  const found: number[] = [];
  for (const proc of await listProcesses(procRoot)) {
    if (proc.pid === excludePid) continue;
    const environ = await readFile(`${procRoot}/${proc.pid}/environ`).catch(() => null);
    if (environ !== null && environ.toString('utf8').split('\0').includes(entry)) found.push(proc.pid);
  }
  return found;
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
