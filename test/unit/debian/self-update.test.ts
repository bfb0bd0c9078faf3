// The shipped self-update handler's step side (issue 21): it reads the agent's
// configured state_dir, refuses a package below a directory another user can
// write or behind a link (a link to /proc/self/pagemap filled the disk as
// root), and leaves no partial file behind. Runs the real script as root,
// with `cloudjobs check-config` a test double naming a temp state_dir; it
// stops before anything is installed.
import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const HANDLER = path.resolve('debian/handlers/self-update');
const SHA = 'a'.repeat(64);
const isRoot = process.getuid?.() === 0;
// the handler refuses anything below a directory others can write (os.tmpdir() is one): a root-only base
const BASE = '/run';
const baseInfo = statSync(BASE, { throwIfNoEntry: false });
const baseIsRootOnly = isRoot && baseInfo !== undefined && baseInfo.uid === 0 && (baseInfo.mode & 0o022) === 0;

describe.skipIf(!baseIsRootOnly)('self-update handler: what it reads', () => {
  let dir: string;
  let bin: string;
  let stateDir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(BASE, 'cloudjobs-self-update-'));
    await chmod(dir, 0o700);
    bin = path.join(dir, 'bin');
    stateDir = path.join(dir, 'state');
    await mkdir(bin);
    await writeFile(path.join(bin, 'cloudjobs'), `#!/bin/sh\nprintf '[agent]\\nstate_dir = ${stateDir}\\nruntime_dir = ${dir}/run\\n\\n[logging]\\nlevel = info\\n'\n`);
    await chmod(path.join(bin, 'cloudjobs'), 0o755);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const run = (source: string): Promise<{ code: number; stderr: string }> =>
    new Promise((resolve) => {
      const env = { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin`, CLOUDJOBS_JOB_ID: 'job-1' };
      execFile('/bin/sh', [HANDLER, 'root', source, SHA, '30'], { env }, (error, _stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stderr: String(stderr) });
      });
    });

  it('refuses a package in a directory another user can write, and one behind a link', async () => {
    const open = path.join(dir, 'open');
    await mkdir(open);
    await chmod(open, 0o1777);
    await writeFile(path.join(open, 'c.deb'), 'x');
    let result = await run(path.join(open, 'c.deb'));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`refusing ${open}/c.deb: ${open} is writable by group or others (mode 1777)`);

    const owned = path.join(dir, 'owned');
    await mkdir(owned);
    await chown(owned, 65534, 65534);
    await writeFile(path.join(owned, 'c.deb'), 'x');
    result = await run(path.join(owned, 'c.deb'));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${owned} is owned by uid 65534, not root`);

    const safe = path.join(dir, 'safe');
    await mkdir(safe, { mode: 0o700 });
    await symlink('/proc/self/pagemap', path.join(safe, 'c.deb'));
    result = await run(path.join(safe, 'c.deb'));
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`${safe}/c.deb is a symbolic link`);
    await expect(readdir(stateDir)).rejects.toThrow(/ENOENT/);
  });

  it('copies into the configured state_dir and removes the copy when it fails its check', async () => {
    const safe = path.join(dir, 'safe');
    await mkdir(safe, { mode: 0o700 });
    await writeFile(path.join(safe, 'c.deb'), 'not the package the job names');
    const result = await run(path.join(safe, 'c.deb'));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('sha256 mismatch');
    expect(await readdir(path.join(stateDir, 'self-update'))).toEqual([]);
  });
});
