import { describe, expect, it } from 'vitest';
import { decideAfterReboot, decideRebootRequest, decideRebootUser, formatMs, type AfterRebootInput } from '../../../src/agent/reboot-decision.js';

const MIN = 60_000;
const BOOT_A = { bootId: 'boot-a', marker: 'marker-a' };

function input(extra: Partial<AfterRebootInput> = {}): AfterRebootInput {
  return {
    pending: { requestedAt: 100 * MIN, boot: BOOT_A },
    currentBoot: BOOT_A,
    now: 101 * MIN,
    rebootTimeoutMs: 10 * MIN,
    receivedAt: 95 * MIN,
    jobTimeoutMs: 60 * MIN,
    ...extra,
  };
}

describe('decideRebootRequest', () => {
  it('allows reboots up to jobs.max_reboots and counts them', () => {
    expect(decideRebootRequest(0, 3, 'step 2')).toEqual({ kind: 'reboot', count: 1 });
    expect(decideRebootRequest(2, 3, 'step 2')).toEqual({ kind: 'reboot', count: 3 });
  });

  it('fails the job that asks for one reboot more than max_reboots', () => {
    expect(decideRebootRequest(3, 3, 'step 5 ("again")')).toEqual({
      kind: 'fail',
      reason: 'step 5 ("again") asked for reboot 4 of this job, but jobs.max_reboots is 3',
    });
  });

  it('max_reboots 0 turns reboots by jobs off', () => {
    expect(decideRebootRequest(0, 0, 'step 1')).toEqual({
      kind: 'fail',
      reason: 'step 1 asked for reboot 1 of this job, but jobs.max_reboots is 0 (reboots by jobs are off)',
    });
  });
});

describe('decideAfterReboot', () => {
  it('resumes after a new boot_id, with what is left of the job time limit', () => {
    expect(decideAfterReboot(input({ currentBoot: { bootId: 'boot-b', marker: 'marker-b' } }))).toEqual({
      kind: 'resume',
      remainingMs: 54 * MIN,
    });
  });

  it('resumes when only the runtime marker is new (a container whose boot_id never changes)', () => {
    expect(decideAfterReboot(input({ currentBoot: { bootId: 'boot-a', marker: 'marker-b' } }))).toEqual({
      kind: 'resume',
      remainingMs: 54 * MIN,
    });
  });

  it('resumes without a boot_id at all when the marker is new', () => {
    const pending = { requestedAt: 100 * MIN, boot: { bootId: null, marker: 'marker-a' } };
    expect(decideAfterReboot(input({ pending, currentBoot: { bootId: null, marker: 'marker-b' } })).kind).toBe('resume');
  });

  it('a power cut while REBOOTING is a new boot like any other: resumes, even long after the request', () => {
    const later = input({ currentBoot: { bootId: 'boot-c', marker: 'marker-c' }, now: 130 * MIN });
    expect(decideAfterReboot(later)).toEqual({ kind: 'resume', remainingMs: 25 * MIN });
  });

  it('waits in the same boot while reboot_timeout is not over', () => {
    expect(decideAfterReboot(input({ now: 103 * MIN }))).toEqual({ kind: 'wait', waitMs: 7 * MIN });
  });

  it('fails "reboot did not happen" once reboot_timeout is over in the same boot', () => {
    expect(decideAfterReboot(input({ now: 110 * MIN }))).toEqual({
      kind: 'fail',
      reason:
        'reboot did not happen: the device was still in the same boot 10m after the reboot was requested (jobs.reboot_timeout)',
    });
  });

  it("the job's own time limit spans the reboot: TIMED_OUT when it ran out meanwhile", () => {
    const late = input({ currentBoot: { bootId: 'boot-b', marker: 'marker-b' }, now: 155 * MIN });
    expect(decideAfterReboot(late)).toEqual({
      kind: 'timed-out',
      reason: "the job's time limit of 1h ran out while the device rebooted; the remaining steps did not run",
    });
  });

  it('a clock set back counts as no time passed', () => {
    expect(decideAfterReboot(input({ now: 50 * MIN }))).toEqual({ kind: 'wait', waitMs: 10 * MIN });
    expect(decideAfterReboot(input({ now: 50 * MIN, currentBoot: { bootId: 'b', marker: 'm' } }))).toEqual({
      kind: 'resume',
      remainingMs: 60 * MIN,
    });
  });
});

describe('formatMs', () => {
  it.each([
    [250, '250ms'],
    [90_000, '1m30s'],
    [600_000, '10m'],
    [3_600_000, '1h'],
    [5_400_000, '1h30m'],
  ])('%d -> %s', (ms, text) => {
    expect(formatMs(ms)).toBe(text);
  });
});

describe('decideRebootUser', () => {
  it('lets root and the users of jobs.reboot_users reboot, and no one else', () => {
    expect(decideRebootUser('root', [], 'step 2 ("Reboot")')).toBeNull();
    expect(decideRebootUser('pi', ['pi'], 'step 2 ("Reboot")')).toBeNull();
    expect(decideRebootUser('cloudjobs', [], 'step 2 ("Reboot")')).toEqual({
      kind: 'fail',
      reason: 'step 2 ("Reboot") asked for a reboot as user "cloudjobs", but only root may (jobs.reboot_users is empty); not rebooting',
    });
    expect(decideRebootUser('nobody', ['pi', 'ops'], 'step 1')?.reason).toBe(
      'step 1 asked for a reboot as user "nobody", but only root and jobs.reboot_users (pi, ops) may; not rebooting',
    );
  });
});
