import { describe, expect, it } from 'vitest';
import { parseOwnUnit, parseUnitJob } from '../../../src/service/unit-job.js';

describe('parseOwnUnit', () => {
  it('reads the service from cgroup v2, and from the v1 systemd hierarchy of a hybrid', () => {
    expect(parseOwnUnit('0::/system.slice/cloudjobs.service\n')).toBe('cloudjobs.service');
    expect(parseOwnUnit('12:memory:/system.slice/x.service\n1:name=systemd:/system.slice/cloudjobs.service\n0::/system.slice/cloudjobs.service\n')).toBe('cloudjobs.service');
    expect(parseOwnUnit('1:name=systemd:/system.slice/cloudjobs.service\n')).toBe('cloudjobs.service');
  });

  it('is null outside a service (a session scope, the root cgroup, a container without systemd)', () => {
    expect(parseOwnUnit('0::/user.slice/user-0.slice/session-3.scope\n')).toBeNull();
    expect(parseOwnUnit('0::/\n')).toBeNull();
    expect(parseOwnUnit('')).toBeNull();
  });
});

describe('parseUnitJob', () => {
  it('finds the job of the unit in list-jobs output', () => {
    const text = '812 cloudjobs.service restart running\n813 other.service start waiting\n';
    expect(parseUnitJob(text, 'cloudjobs.service')).toEqual({ id: 812, type: 'restart' });
    expect(parseUnitJob(text, 'other.service')).toEqual({ id: 813, type: 'start' });
    expect(parseUnitJob(text, 'x.service')).toBeNull();
    expect(parseUnitJob('', 'cloudjobs.service')).toBeNull();
    expect(parseUnitJob('No jobs running.\n', 'cloudjobs.service')).toBeNull();
  });
});
