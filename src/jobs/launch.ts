// Decides how a step's process becomes its user. As root there are two ways,
// which leave the step with the same identity and no way back to privilege:
// - direct: the spawn itself sets uid and gid (libuv: setgroups(0), setgid,
//   setuid). Leaving uid 0 clears the permitted, effective and ambient
//   capabilities; no_new_privs is inherited from the agent. Used only when
//   that is the whole story: the agent already has no_new_privs (the shipped
//   unit sets NoNewPrivileges=yes), empty inheritable and ambient capability
//   sets, and the user has no supplementary group besides its primary one.
// - setpriv (util-linux): sets uid, gid and the initgroups list, empties every
//   capability set and sets no_new_privs itself. One more exec per step
//   (about 4 ms on the benchmark machine), so it is the fallback.
//
// INVARIANTS
// - A step never runs with a capability, a group or a uid other than its
//   user's, and (as root, for anyone but root) never without no_new_privs.
// - Without root, a step runs as the agent's own user or not at all.
import { readFile } from 'node:fs/promises';
import { isExecutableFile } from './executable.js';
import type { UserInfo } from './users.js';

/** What the agent process holds that a step would inherit; from /proc/self/status. */
export interface AgentPrivileges {
  uid: number;
  /** NoNewPrivs: 1 (set by systemd's NoNewPrivileges=yes or by whoever started the agent). */
  noNewPrivs: boolean;
  /** CapInh and CapAmb are both zero. */
  noInheritableCaps: boolean;
  /** Absolute path of setpriv; null when not found (only needed as root). */
  setprivPath: string | null;
}

/** How to spawn one step: the file and arguments, and the ids the spawn sets. */
export interface Launch {
  file: string;
  args: string[];
  /** Set by the spawn itself (the direct way); absent when setpriv switches or no switch is needed. */
  uid?: number;
  gid?: number;
  /** Which way the user switch is made: for the logs and the tests. */
  via: 'none' | 'direct' | 'setpriv';
}

const SETPRIV_CANDIDATES = ['/usr/bin/setpriv', '/bin/setpriv'];

/** Reads what the agent holds; the unknown (no /proc) reads as "not safe for the direct way". */
export async function readAgentPrivileges(uid: number): Promise<AgentPrivileges> {
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  const setprivPath = uid === 0 ? await findSetpriv() : null;
  return { uid, ...parseProcStatus(status), setprivPath };
}

/** The no_new_privs flag and whether CapInh and CapAmb are empty, from /proc/PID/status text. */
export function parseProcStatus(text: string): { noNewPrivs: boolean; noInheritableCaps: boolean } {
  const field = (name: string): string | null => {
    const match = new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(text);
    return match ? (match[1] ?? null) : null;
  };
  const isZero = (value: string | null): boolean => value !== null && /^0+$/.test(value);
  return { noNewPrivs: field('NoNewPrivs') === '1', noInheritableCaps: isZero(field('CapInh')) && isZero(field('CapAmb')) };
}

/**
 * Plans the spawn of `file args` as `user`; a problem when the agent cannot run
 * steps as that user. `spawnMaySwitch` false (a step started through
 * systemd-run, which must run as root) leaves the switch to setpriv.
 */
export function planLaunch(
  file: string,
  args: string[],
  user: UserInfo,
  agent: AgentPrivileges,
  spawnMaySwitch = true,
): Launch | { problem: string } {
  if (agent.uid !== 0) {
    if (user.uid !== agent.uid) {
      return { problem: `cannot run as "${user.name}": the agent is not root (uid ${agent.uid}) and can only run steps as itself` };
    }
    return { file, args, via: 'none' };
  }
  const onlyPrimaryGroup = user.groups.every((gid) => gid === user.gid);
  if (spawnMaySwitch && user.uid !== 0 && agent.noNewPrivs && agent.noInheritableCaps && onlyPrimaryGroup) {
    return { file, args, uid: user.uid, gid: user.gid, via: 'direct' };
  }
  if (agent.setprivPath === null) return { problem: 'cannot switch user: setpriv (util-linux) was not found in /usr/bin or /bin' };
  const identity = [`--reuid=${user.uid}`, `--regid=${user.gid}`, `--groups=${user.groups.join(',')}`];
  // root keeps its capabilities (it is root); anyone else gets none and no way back
  const drop = user.uid === 0 ? [] : ['--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all', '--no-new-privs'];
  return { file: agent.setprivPath, args: [...identity, ...drop, '--', file, ...args], via: 'setpriv' };
}

/** Finds util-linux setpriv, which drops to a user with initgroups and no capabilities. */
async function findSetpriv(): Promise<string | null> {
  for (const candidate of SETPRIV_CANDIDATES) {
    if (await isExecutableFile(candidate)) return candidate;
  }
  return null;
}
