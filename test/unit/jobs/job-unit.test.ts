import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildSliceCall,
  decideStepPlacement,
  detectLimitSupport,
  findLeftoverSlices,
  openJobUnit,
  parseAgentUnit,
  parseUnitList,
  sliceCgroupPath,
  wrapInScope,
  wrapOutsideScope,
  type LimitSupport,
} from '../../../src/jobs/job-unit.js';
import { applyLimitRequest } from '../../../src/jobs/limits.js';

const MiB = 1024 * 1024;
const NONE = { memoryMax: null, tasksMax: null, cpuQuota: null };
const LIMITS = applyLimitRequest({ memoryMax: 256 * MiB, tasksMax: 512, cpuQuota: 80 }, NONE);
const TOOLS = { systemdRun: '/usr/bin/systemd-run', systemctl: '/usr/bin/systemctl', busctl: '/usr/bin/busctl', choom: '/usr/bin/choom' };
const SUPPORT: Extract<LimitSupport, { enforced: true }> = {
  enforced: true,
  tools: TOOLS,
  layout: { unified: '/sys/fs/cgroup', legacy: null, controllers: new Set(['memory', 'pids', 'cpu']) },
  agentUnit: 'cloudjobs.service',
  gaps: [],
};

describe('the job slice', () => {
  it('is started with its limits, ordered before and part of the agent unit', () => {
    expect(buildSliceCall('cloudjobs-jobs-x.slice', 'job-42', LIMITS, 'cloudjobs.service')).toEqual([
      'call', '--quiet', 'org.freedesktop.systemd1', '/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager',
      'StartTransientUnit', 'ssa(sv)a(sa(sv))', 'cloudjobs-jobs-x.slice', 'fail', '10',
      'Description', 's', 'cloudjobs job job-42',
      'MemoryAccounting', 'b', 'true',
      'TasksAccounting', 'b', 'true',
      'CPUAccounting', 'b', 'true',
      'MemoryMax', 't', String(256 * MiB),
      'MemorySwapMax', 't', '0',
      'TasksMax', 't', '512',
      'CPUQuotaPerSecUSec', 't', '800000',
      'Before', 'as', '1', 'cloudjobs.service',
      'PartOf', 'as', '1', 'cloudjobs.service',
      '0',
    ]);
  });

  it('leaves out the limits that are off and keeps server text out of the description', () => {
    const args = buildSliceCall('s.slice', 'a b;$(reboot)', applyLimitRequest(NONE, NONE), null);
    expect(args.slice(9)).toEqual(['4', 'Description', 's', expect.stringMatching(/^cloudjobs job \(id sha256 [0-9a-f]{16}\)$/),
      'MemoryAccounting', 'b', 'true', 'TasksAccounting', 'b', 'true', 'CPUAccounting', 'b', 'true', '0']);
  });

  it('lives where systemd puts a slice: one level per dash', () => {
    expect(sliceCgroupPath('cloudjobs-jobs-0a1b.slice')).toBe('/cloudjobs.slice/cloudjobs-jobs.slice/cloudjobs-jobs-0a1b.slice');
  });

  it('is made through busctl, and its failure says what systemd said', async () => {
    const calls: string[][] = [];
    const unit = await openJobUnit('job-1', LIMITS, SUPPORT, async (file, args) => {
      calls.push([file, ...args]);
      return { exitCode: 0, stdout: 'o "/org/freedesktop/systemd1/job/77"\n', stderr: '' };
    });
    expect(unit.slice).toMatch(/^cloudjobs-jobs-[0-9a-f]{18}\.slice$/);
    expect(unit.cgroupDir).toBe(`/sys/fs/cgroup${sliceCgroupPath(unit.slice)}`);
    await unit.release();
    expect(calls.map((c) => c.slice(0, 2))).toEqual([['/usr/bin/busctl', 'call'], ['/usr/bin/systemctl', 'stop']]);
    expect(calls[1]).toEqual(['/usr/bin/systemctl', 'stop', '--no-block', unit.slice]);
    const failing = openJobUnit('job-1', LIMITS, SUPPORT, async () => ({ exitCode: 1, stdout: '', stderr: 'Call failed: Access denied\nmore' }));
    await expect(failing).rejects.toThrow(/^could not create the job's slice cloudjobs-jobs-[0-9a-f]{18}\.slice: Call failed: Access denied$/);
  });
});

describe('a step in a scope', () => {
  it('runs systemd-run --scope in the job slice, then choom, then the planned launch', () => {
    const unit = { slice: 'cloudjobs-jobs-x.slice', unit: 'cloudjobs-step-x-1', tools: TOOLS, agentUnit: 'cloudjobs.service' };
    expect(wrapInScope({ file: '/usr/bin/setpriv', args: ['--reuid=1000', '--', '/bin/true'], via: 'setpriv' }, unit)).toEqual({
      file: '/usr/bin/systemd-run',
      args: ['--scope', '--quiet', '--collect', '--slice=cloudjobs-jobs-x.slice', '--unit=cloudjobs-step-x-1', '-p', 'Before=cloudjobs.service',
        '--', '/usr/bin/choom', '-n', '500', '--', '/usr/bin/setpriv', '--reuid=1000', '--', '/bin/true'],
      via: 'setpriv',
    });
  });

  it('refuses a launch whose spawn would switch the user (systemd-run must start as root)', () => {
    const unit = { slice: 's.slice', unit: 'u', tools: TOOLS, agentUnit: null };
    expect(() => wrapInScope({ file: '/bin/true', args: [], uid: 1000, gid: 1000, via: 'direct' }, unit)).toThrow(/setpriv/);
  });
});

describe('a step that starts while the agent stops', () => {
  it('runs outside a scope only when the agent is a unit that is stopping', () => {
    expect(decideStepPlacement('cloudjobs.service', true)).toBe('agent-cgroup');
    expect(decideStepPlacement('cloudjobs.service', false)).toBe('scope');
    // outside a unit nothing is PartOf= the agent: the slice still takes scopes
    expect(decideStepPlacement(null, true)).toBe('scope');
    expect(decideStepPlacement(null, false)).toBe('scope');
  });

  it('keeps choom and the setpriv switch, without systemd-run', () => {
    const planned = { file: '/usr/bin/setpriv', args: ['--reuid=1000', '--regid=1000', '--groups=1000', '--no-new-privs', '--', '/bin/sh', '-c', 'x'], via: 'setpriv' as const };
    expect(wrapOutsideScope(planned, TOOLS)).toEqual({
      file: '/usr/bin/choom',
      args: ['-n', '500', '--', '/usr/bin/setpriv', '--reuid=1000', '--regid=1000', '--groups=1000', '--no-new-privs', '--', '/bin/sh', '-c', 'x'],
      via: 'setpriv',
    });
    expect(wrapOutsideScope(planned, { ...TOOLS, choom: null })).toEqual(planned);
    expect(() => wrapOutsideScope({ file: '/bin/true', args: [], uid: 1000, gid: 1000, via: 'direct' }, TOOLS)).toThrow(/setpriv/);
  });

  it('is placed by the job unit: a scope before the stop, the agent\'s cgroup after it', async () => {
    const unit = await openJobUnit('job-1', LIMITS, SUPPORT, async () => ({ exitCode: 0, stdout: '', stderr: '' }));
    const planned = { file: '/usr/bin/setpriv', args: ['--reuid=1000', '--', '/bin/true'], via: 'setpriv' as const };
    const before = unit.wrap(planned, false);
    expect(before.placement).toBe('scope');
    expect(before.launch.file).toBe('/usr/bin/systemd-run');
    expect(before.launch.args).toContain(`--slice=${unit.slice}`);
    expect(unit.wrap(planned, true)).toEqual({ placement: 'agent-cgroup', launch: wrapOutsideScope(planned, TOOLS) });
    const outsideUnit = await openJobUnit('job-1', LIMITS, { ...SUPPORT, agentUnit: null }, async () => ({ exitCode: 0, stdout: '', stderr: '' }));
    expect(outsideUnit.wrap(planned, true).placement).toBe('scope');
  });
});

describe('detectLimitSupport', () => {
  it('says why limits are not enforced: not root, no systemd', async () => {
    expect(await detectLimitSupport(1000, NONE)).toEqual({ enforced: false, why: 'the agent is not root (uid 1000) and cannot create systemd units for jobs' });
    const empty = await mkdtemp(path.join(os.tmpdir(), 'nosd-'));
    expect(await detectLimitSupport(0, NONE, { systemdRunDir: path.join(empty, 'system') })).toEqual({
      enforced: false,
      why: 'systemd is not running (no /run/systemd/system): a container or a system without it',
    });
  });

  it('names each limit cgroup v1 cannot enforce, and finds the agent unit', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'sd-'));
    await mkdir(path.join(root, 'run/systemd/system'), { recursive: true });
    await mkdir(path.join(root, 'cg/unified'), { recursive: true });
    await mkdir(path.join(root, 'cg/pids'), { recursive: true });
    await mkdir(path.join(root, 'cg/cpu'), { recursive: true });
    await writeFile(path.join(root, 'cg/unified/cgroup.controllers'), '');
    await writeFile(path.join(root, 'self-cgroup'), '12:pids:/system.slice/cloudjobs.service\n1:name=systemd:/system.slice/cloudjobs.service\n0::/system.slice/cloudjobs.service\n');
    const support = await detectLimitSupport(0, LIMITS, {
      systemdRunDir: path.join(root, 'run/systemd/system'),
      cgroupRoot: path.join(root, 'cg'),
      procSelfCgroup: path.join(root, 'self-cgroup'),
    });
    if (!support.enforced) throw new Error(`expected support here (systemd-run, busctl present?): ${support.why}`);
    expect(support.agentUnit).toBe('cloudjobs.service');
    expect(support.gaps).toEqual([
      'jobs.memory_max is not enforced: this system mounts cgroup v1 (hybrid), where systemd applies MemoryMax= only on cgroup v2; boot with systemd.unified_cgroup_hierarchy=1',
    ]);
  });
});

describe('parsers', () => {
  it('finds the agent unit in /proc/self/cgroup, not outside a service', () => {
    expect(parseAgentUnit('0::/system.slice/cloudjobs.service\n')).toBe('cloudjobs.service');
    expect(parseAgentUnit('0::/user.slice/user-0.slice/session-3.scope\n')).toBeNull();
    expect(parseAgentUnit('0::/system.slice/evil service\n')).toBeNull();
  });

  it('reads unit names from list-units and keeps only slices of the agent\'s own naming', async () => {
    expect(parseUnitList('cloudjobs-jobs-0123456789abcdef01.slice loaded active active cloudjobs job 1\n\n')).toEqual([
      'cloudjobs-jobs-0123456789abcdef01.slice',
    ]);
    const found = await findLeftoverSlices(SUPPORT, async () => ({
      exitCode: 0,
      stdout: 'cloudjobs-jobs-0123456789abcdef01.slice loaded active active x\ncloudjobs-jobs-other.slice loaded active active y\n',
      stderr: '',
    }));
    expect(found).toEqual([
      { slice: 'cloudjobs-jobs-0123456789abcdef01.slice', cgroupDir: '/sys/fs/cgroup/cloudjobs.slice/cloudjobs-jobs.slice/cloudjobs-jobs-0123456789abcdef01.slice' },
    ]);
  });
});
