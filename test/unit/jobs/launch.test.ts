import { describe, expect, it } from 'vitest';
import { parseProcStatus, planLaunch, type AgentPrivileges } from '../../../src/jobs/launch.js';
import type { UserInfo } from '../../../src/jobs/users.js';

const NOBODY: UserInfo = { name: 'nobody', uid: 65534, gid: 65534, home: '/nonexistent', shell: '/usr/sbin/nologin', groups: [65534] };
const PI: UserInfo = { name: 'pi', uid: 1000, gid: 1000, home: '/home/pi', shell: '/bin/bash', groups: [20, 997, 1000] };
const ROOT: UserInfo = { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/sh', groups: [0] };
const HARDENED: AgentPrivileges = { uid: 0, noNewPrivs: true, noInheritableCaps: true, setprivPath: '/usr/bin/setpriv' };
const DROP = ['--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all', '--no-new-privs'];

describe('parseProcStatus', () => {
  const status = (nnp: string, inh: string, amb: string): string =>
    `Name:\tcloudjobs\nUid:\t0\t0\t0\t0\nCapInh:\t${inh}\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\nCapAmb:\t${amb}\nNoNewPrivs:\t${nnp}\nSeccomp:\t0\n`;

  it('reads no_new_privs and empty inheritable and ambient sets', () => {
    expect(parseProcStatus(status('1', '0000000000000000', '0000000000000000'))).toEqual({ noNewPrivs: true, noInheritableCaps: true });
    expect(parseProcStatus(status('0', '0000000000000000', '0000000000000000'))).toEqual({ noNewPrivs: false, noInheritableCaps: true });
  });

  it('counts an inheritable or ambient capability as not empty', () => {
    expect(parseProcStatus(status('1', '0000000000000400', '0000000000000000')).noInheritableCaps).toBe(false);
    expect(parseProcStatus(status('1', '0000000000000000', '0000000000002000')).noInheritableCaps).toBe(false);
  });

  it('reads missing fields (no /proc, an old kernel) as unsafe', () => {
    expect(parseProcStatus('')).toEqual({ noNewPrivs: false, noInheritableCaps: false });
    expect(parseProcStatus('Name:\tx\nCapInh:\t0000000000000000\n')).toEqual({ noNewPrivs: false, noInheritableCaps: false });
  });
});

describe('planLaunch', () => {
  it('lets the spawn switch ids when no_new_privs is held, no capability is inheritable and the user has only its primary group', () => {
    expect(planLaunch('/bin/true', ['a'], NOBODY, HARDENED)).toEqual({ file: '/bin/true', args: ['a'], uid: 65534, gid: 65534, via: 'direct' });
  });

  it('uses setpriv for a user with supplementary groups (the spawn would drop them)', () => {
    expect(planLaunch('/bin/true', ['a'], PI, HARDENED)).toEqual({
      file: '/usr/bin/setpriv',
      args: ['--reuid=1000', '--regid=1000', '--groups=20,997,1000', ...DROP, '--', '/bin/true', 'a'],
      via: 'setpriv',
    });
  });

  it('uses setpriv when the agent lacks no_new_privs or holds inheritable capabilities', () => {
    for (const agent of [
      { ...HARDENED, noNewPrivs: false },
      { ...HARDENED, noInheritableCaps: false },
    ]) {
      expect(planLaunch('/bin/true', [], NOBODY, agent)).toEqual({
        file: '/usr/bin/setpriv',
        args: ['--reuid=65534', '--regid=65534', '--groups=65534', ...DROP, '--', '/bin/true'],
        via: 'setpriv',
      });
    }
  });

  it('runs root steps through setpriv with root groups and capabilities kept', () => {
    expect(planLaunch('/bin/id', [], ROOT, HARDENED)).toEqual({
      file: '/usr/bin/setpriv',
      args: ['--reuid=0', '--regid=0', '--groups=0', '--', '/bin/id'],
      via: 'setpriv',
    });
  });

  it('refuses when setpriv is needed and missing', () => {
    expect(planLaunch('/bin/true', [], PI, { ...HARDENED, setprivPath: null })).toEqual({
      problem: 'cannot switch user: setpriv (util-linux) was not found in /usr/bin or /bin',
    });
    expect(planLaunch('/bin/true', [], NOBODY, { ...HARDENED, setprivPath: null })).toMatchObject({ via: 'direct' });
  });

  it('without root runs steps as the agent itself or not at all', () => {
    const agent: AgentPrivileges = { uid: 1000, noNewPrivs: false, noInheritableCaps: true, setprivPath: null };
    expect(planLaunch('/bin/true', [], PI, agent)).toEqual({ file: '/bin/true', args: [], via: 'none' });
    expect(planLaunch('/bin/true', [], NOBODY, agent)).toEqual({
      problem: 'cannot run as "nobody": the agent is not root (uid 1000) and can only run steps as itself',
    });
  });
});
