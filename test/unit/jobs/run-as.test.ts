// As root: a step really runs as its user, with initgroups groups, no
// capabilities, a clean environment and its own job directory.
import { execFileSync } from 'node:child_process';
import { readdir, rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startJob } from '../../../src/jobs/engine.js';
import { lookupUser, type UserInfo } from '../../../src/jobs/users.js';
import { makeJob, makeOptions, scriptStep, STEP_PATH } from './engine-helpers.js';

const isRoot = process.getuid?.() === 0;
const USER = `cjtest${process.pid}`;
const GROUP = `cjtestg${process.pid}`;

describe.runIf(isRoot)('run-as (root only)', () => {
  let user: UserInfo;
  let extraGid: number;

  beforeAll(async () => {
    execFileSync('groupadd', [GROUP]);
    execFileSync('useradd', ['--no-create-home', '--home-dir', `/home/${USER}`, '--shell', '/bin/sh', '--groups', GROUP, USER]);
    const found = await lookupUser(USER);
    if (found === null) throw new Error('test user was not created');
    user = found;
    extraGid = Number(execFileSync('getent', ['group', GROUP]).toString().split(':')[2]);
  });

  afterAll(() => {
    execFileSync('userdel', [USER]);
    execFileSync('groupdel', [GROUP]);
  });

  it('looks the user up with its supplementary groups', () => {
    expect(user.groups).toEqual([user.gid, extraGid].sort((a, b) => a - b));
    expect(user.shell).toBe('/bin/sh');
  });

  it("runs a step with the user's uid, gid and groups, no capabilities, a clean env and its own job dir", async () => {
    const options = await makeOptions();
    process.env.DEVICE_API_KEY = 'secret-device-key-must-not-leak';
    try {
      const job = makeJob([scriptStep('Who', 'identity.sh', [], { user: USER })], { jobId: 'job-42', jobName: 'who am i' });
      const report = await startJob(job, options, {}).done;
      expect(report.status).toBe('SUCCEEDED');
      const out = report.stdout.split('\n');
      const ids = `${user.uid}\t${user.uid}\t${user.uid}\t${user.uid}`;
      const gids = `${user.gid}\t${user.gid}\t${user.gid}\t${user.gid}`;
      expect(out.slice(1, 9)).toEqual([
        `Uid:\t${ids}`,
        `Gid:\t${gids}`,
        `Groups:\t${[user.gid, extraGid].sort((a, b) => a - b).join(' ')} `,
        'CapInh:\t0000000000000000',
        'CapPrm:\t0000000000000000',
        'CapEff:\t0000000000000000',
        'CapAmb:\t0000000000000000',
        'NoNewPrivs:\t1',
      ]);
      const envStart = out.indexOf('--- env');
      const cwdStart = out.indexOf('--- cwd');
      expect(out.slice(envStart + 1, cwdStart)).toEqual(
        [
          `CLOUDJOBS_JOB_ID=job-42`,
          `CLOUDJOBS_JOB_NAME=who am i`,
          `CLOUDJOBS_STEP=Who`,
          `HOME=/home/${USER}`,
          'LANG=C.UTF-8',
          `LOGNAME=${USER}`,
          `PATH=${STEP_PATH}`,
          'SHELL=/bin/sh',
          `USER=${USER}`,
        ].sort(),
      );
      const cwd = out[cwdStart + 1] ?? '';
      expect(cwd.startsWith(`${options.workDir}/job-42.${USER}.`)).toBe(true);
      expect(await readdir(options.workDir)).toEqual([]);
    } finally {
      delete process.env.DEVICE_API_KEY;
      await rm(options.workDir, { recursive: true, force: true });
    }
  });

  it('runs as nobody with every capability set empty', async () => {
    const options = await makeOptions();
    try {
      const report = await startJob(makeJob([scriptStep('Nobody', 'identity.sh', [], { user: 'nobody' })]), options, {}).done;
      expect(report.status).toBe('SUCCEEDED');
      expect(report.stdout).toContain('\nUid:\t65534\t65534\t65534\t65534\n');
      expect(report.stdout).toContain('\nCapEff:\t0000000000000000\n');
      expect(report.stdout).toContain('\nCapPrm:\t0000000000000000\n');
    } finally {
      await rm(options.workDir, { recursive: true, force: true });
    }
  });

  it('lets the spawn switch ids for a user with only its primary group when the agent holds no_new_privs', async () => {
    // this test process lacks no_new_privs, so the premise is given: the step then shows
    // NoNewPrivs 0 here; under the unit (NoNewPrivileges=yes) it inherits 1 (test/e2e/run-as.test.ts)
    const agentPrivileges = { uid: 0, noNewPrivs: true, noInheritableCaps: true, setprivPath: null };
    const options = await makeOptions({ agentPrivileges });
    try {
      const report = await startJob(makeJob([scriptStep('Direct', 'identity.sh', [], { user: 'nobody' })]), options, {}).done;
      expect(report.status).toBe('SUCCEEDED');
      const out = report.stdout.split('\n');
      expect(out.slice(1, 8)).toEqual([
        'Uid:\t65534\t65534\t65534\t65534',
        'Gid:\t65534\t65534\t65534\t65534',
        'Groups:\t ',
        'CapInh:\t0000000000000000',
        'CapPrm:\t0000000000000000',
        'CapEff:\t0000000000000000',
        'CapAmb:\t0000000000000000',
      ]);
      // the user's supplementary groups would be lost this way, so such a user goes through setpriv
      const withGroups = await startJob(makeJob([scriptStep('Groups', 'identity.sh', [], { user: USER })]), options, {}).done;
      expect(withGroups.status).toBe('FAILED');
      expect(withGroups.reason).toContain('setpriv (util-linux) was not found');
    } finally {
      await rm(options.workDir, { recursive: true, force: true });
    }
  });

  it('fails a step for another user when the agent is not root, never running it as the agent', async () => {
    const options = await makeOptions({ agentUid: user.uid });
    execFileSync('chown', [String(user.uid), options.workDir]);
    try {
      const report = await startJob(makeJob([scriptStep('Other', 'identity.sh', [], { user: 'nobody' })]), options, {}).done;
      expect(report.status).toBe('FAILED');
      expect(report.reason).toBe(
        `step 1 ("Other") failed: cannot run as "nobody": the agent is not root (uid ${user.uid}) and can only run steps as itself`,
      );
      expect(report.stdout).toBe('=== Step: Other ===\n');
    } finally {
      await rm(options.workDir, { recursive: true, force: true });
    }
  });
});
