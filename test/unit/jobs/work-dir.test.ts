// As root: work dirs are created and removed without root ever resolving a
// path its step's user can change (src/jobs/work-dir.ts INVARIANTS).
import { chmod, chown, lstat, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSystemClock } from '../../../src/clock/clock.js';
import { readAgentPrivileges, type AgentPrivileges } from '../../../src/jobs/launch.js';
import { lookupUser, type UserInfo } from '../../../src/jobs/users.js';
import { createJobDir, prepareWorkRoot, removeJobDir, removeLeftoverJobDirs } from '../../../src/jobs/work-dir.js';

const isRoot = process.getuid?.() === 0;
const temps: string[] = [];

afterEach(async () => {
  await Promise.all(temps.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function makeBase(): Promise<string> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-workdir-'));
  temps.push(base);
  await chmod(base, 0o755);
  return base;
}

describe.runIf(isRoot)('work dirs (root only)', () => {
  let nobody: UserInfo;
  let root: UserInfo;
  let agent: AgentPrivileges;
  const clock = createSystemClock();

  beforeAll(async () => {
    nobody = (await lookupUser('nobody')) as UserInfo;
    root = (await lookupUser('root')) as UserInfo;
    agent = await readAgentPrivileges(0);
  });

  it('accepts a work_dir whose parents are root-only or sticky (/tmp)', async () => {
    const base = await makeBase();
    expect(await prepareWorkRoot(path.join(base, 'a', 'work'), 0)).toBeNull();
  });

  it('refuses a work_dir below a directory another user owns', async () => {
    const base = await makeBase();
    const home = path.join(base, 'home');
    await mkdir(home, { mode: 0o755 });
    await chown(home, nobody.uid, nobody.gid);
    const workDir = path.join(home, 'work');
    expect(await prepareWorkRoot(workDir, 0)).toBe(
      `work_dir ${workDir} is below ${home}, owned by uid ${nobody.uid}, not root; that user could swap work_dir for a symlink: move work_dir or chown root ${home}`,
    );
  });

  it('refuses a work_dir below a group-writable directory that is not sticky', async () => {
    const base = await makeBase();
    const shared = path.join(base, 'shared');
    await mkdir(shared);
    await chmod(shared, 0o775);
    const workDir = path.join(shared, 'work');
    expect(await prepareWorkRoot(workDir, 0)).toBe(
      `work_dir ${workDir} is below ${shared}, which others can write (mode 775); they could swap work_dir for a symlink: move work_dir or chmod go-w ${shared}`,
    );
  });

  it('refuses a work_dir whose configured path passes a symlink held by a directory others can write', async () => {
    const base = await makeBase();
    const real = path.join(base, 'real');
    const links = path.join(base, 'links');
    await mkdir(path.join(real, 'work'), { recursive: true, mode: 0o755 });
    await mkdir(links, { mode: 0o755 });
    await symlink(real, path.join(links, 'to-real'));
    const workDir = path.join(links, 'to-real', 'work');
    expect(await prepareWorkRoot(workDir, 0)).toBeNull();
    // whoever can write `links` can repoint to-real
    await chmod(links, 0o775);
    expect(await prepareWorkRoot(workDir, 0)).toBe(
      `work_dir ${workDir} is below ${links}, which others can write (mode 775); they could swap work_dir for a symlink: move work_dir or chmod go-w ${links}`,
    );
  });

  it('refuses a work_dir whose real path lies below a directory another user owns', async () => {
    const base = await makeBase();
    const home = path.join(base, 'home');
    await mkdir(path.join(home, 'real', 'work'), { recursive: true, mode: 0o755 });
    await chown(home, nobody.uid, nobody.gid);
    await symlink(path.join(home, 'real'), path.join(base, 'to-home'));
    const workDir = path.join(base, 'to-home', 'work');
    expect(await prepareWorkRoot(workDir, 0)).toBe(
      `work_dir ${workDir} is below ${home}, owned by uid ${nobody.uid}, not root; that user could swap work_dir for a symlink: move work_dir or chown root ${home}`,
    );
  });

  it("creates a job dir owned by the step's user, mode 0700", async () => {
    const base = await makeBase();
    const dir = await createJobDir(base, '../job/1', nobody, 0);
    expect(path.dirname(dir)).toBe(base);
    expect(path.basename(dir)).toMatch(/^\.\._job_1\.nobody\.\w{6}$/);
    const info = await lstat(dir);
    expect([info.uid, info.gid, info.mode & 0o7777]).toEqual([nobody.uid, nobody.gid, 0o700]);
  });

  it("removes a job dir as its user: read-only subdirectories go, a symlink's target and root's files stay", async () => {
    const base = await makeBase();
    const victim = path.join(base, 'victim');
    await mkdir(victim, { mode: 0o777 });
    await writeFile(path.join(victim, 'precious'), 'x', { mode: 0o666 });
    const dir = await createJobDir(base, 'job', nobody, 0);
    const deep = path.join(dir, 'ro', 'deeper');
    await mkdir(deep, { recursive: true });
    await writeFile(path.join(deep, 'file'), 'x');
    await symlink(victim, path.join(dir, 'link'));
    await symlink(victim, path.join(deep, 'link'));
    await chownTree(dir, nobody);
    await chmod(deep, 0o500);
    await chmod(path.join(dir, 'ro'), 0o500);

    await removeJobDir(dir, { user: nobody, agent, clock, killGraceMs: 200 });
    expect(await readdir(base)).toEqual(['victim']);
    expect(await readdir(victim)).toEqual(['precious']);
  });

  it('leaves what the user cannot remove, and says so', async () => {
    const base = await makeBase();
    const dir = await createJobDir(base, 'job', nobody, 0);
    const planted = path.join(dir, 'roots');
    await mkdir(planted);
    await writeFile(path.join(planted, 'file'), 'x');
    await writeFile(path.join(dir, 'mine'), 'x');
    await chown(path.join(dir, 'mine'), nobody.uid, nobody.gid);

    await expect(removeJobDir(dir, { user: nobody, agent, clock, killGraceMs: 200 })).rejects.toThrow(
      new RegExp(`^${escapeRegExp(dir)} was emptied as user nobody but not removed: it is not empty .*; rm said: .*Permission denied`),
    );
    expect(await readdir(dir)).toEqual(['roots']);
    expect(await readdir(planted)).toEqual(['file']);
  });

  it("removes an interrupted job's leftover dirs as their owners, and nothing of another job", async () => {
    const base = await makeBase();
    const mine = await createJobDir(base, 'job-7', nobody, 0);
    const asRoot = await createJobDir(base, 'job-7', root, 0);
    const other = await createJobDir(base, 'job-70', nobody, 0);
    await writeFile(path.join(base, 'job-7.file.abcdef'), 'not a dir');
    await mkdir(path.join(mine, 'sub'));
    await chown(path.join(mine, 'sub'), nobody.uid, nobody.gid);

    const result = await removeLeftoverJobDirs(base, 'job-7', { agent, clock, killGraceMs: 200 });
    expect(result).toEqual({ removed: expect.arrayContaining([mine, asRoot]), problems: [] });
    expect(result.removed).toHaveLength(2);
    expect((await readdir(base)).sort()).toEqual(['job-7.file.abcdef', path.basename(other)].sort());
  });

  it('removes the job dir of a step that ran as root, without following its symlinks', async () => {
    const base = await makeBase();
    const victim = path.join(base, 'victim');
    await mkdir(victim);
    await writeFile(path.join(victim, 'precious'), 'x');
    const dir = await createJobDir(base, 'job', root, 0);
    await mkdir(path.join(dir, 'sub'));
    await symlink(victim, path.join(dir, 'sub', 'link'));
    await removeJobDir(dir, { user: root, agent, clock, killGraceMs: 200 });
    expect(await readdir(base)).toEqual(['victim']);
    expect(await readdir(victim)).toEqual(['precious']);
  });
});

async function chownTree(dir: string, user: UserInfo): Promise<void> {
  await chown(dir, user.uid, user.gid);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) await chownTree(full, user);
    else await chown(full, user.uid, user.gid);
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
