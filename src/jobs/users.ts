// Looks up the accounts steps run as. Goes through NSS (`getent`) rather than
// parsing /etc/passwd so LDAP/sssd/systemd-homed users resolve like they do for
// login, and initgroups gives the same supplementary groups a login would get.
import { execa } from 'execa';

/** A user account as a step runs it: identity, groups, home and shell. */
export interface UserInfo {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
  /** Supplementary groups per initgroups(3), primary gid included, sorted, no duplicates. */
  groups: number[];
}

// POSIX portable user names plus what Debian's adduser accepts; rejects
// anything getent could read as an option or that cannot be a passwd field.
const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}\$?$/;

/** Returns the account `name` (with its initgroups groups), or null when it does not exist. */
export async function lookupUser(name: string): Promise<UserInfo | null> {
  if (!USER_NAME.test(name)) return null;
  const passwd = await runGetent(['passwd', name]);
  if (passwd === null) return null;
  const entry = parsePasswdLine(passwd.split('\n')[0] ?? '');
  if (entry === null || entry.name !== name) return null;
  const initgroups = await runGetent(['initgroups', name]);
  const groups = new Set<number>([entry.gid]);
  if (initgroups !== null) {
    for (const gid of parseInitgroupsLine(initgroups.split('\n')[0] ?? '')) groups.add(gid);
  }
  return { ...entry, groups: [...groups].sort((a, b) => a - b) };
}

/** Parses one passwd(5) line; null when it is not one. */
export function parsePasswdLine(line: string): Omit<UserInfo, 'groups'> | null {
  const fields = line.split(':');
  if (fields.length !== 7) return null;
  const [name, , uidText, gidText, , home, shell] = fields as [string, string, string, string, string, string, string];
  const uid = parseId(uidText);
  const gid = parseId(gidText);
  if (name === '' || uid === null || gid === null) return null;
  return { name, uid, gid, home, shell };
}

/** Parses `getent initgroups` output ("name  gid gid ...") into gids. */
export function parseInitgroupsLine(line: string): number[] {
  const words = line.trim().split(/\s+/).slice(1);
  const gids: number[] = [];
  for (const word of words) {
    const gid = parseId(word);
    if (gid !== null) gids.push(gid);
  }
  return gids;
}

function parseId(text: string): number | null {
  if (!/^\d{1,10}$/.test(text)) return null;
  const value = Number(text);
  return value <= 0xffffffff ? value : null;
}

// getent exits 2 when the key is not found; anything else unexpected is an error
// the caller should see (NSS broken), not a silent "no such user".
async function runGetent(args: string[]): Promise<string | null> {
  const result = await execa('getent', args, { reject: false, stdin: 'ignore', env: { LANG: 'C' }, extendEnv: false });
  if (result.exitCode === 0) return result.stdout;
  if (result.exitCode === 2) return null;
  throw new Error(`getent ${args.join(' ')} failed: ${result.stderr || result.shortMessage}`);
}
