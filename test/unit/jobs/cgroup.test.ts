import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSystemClock } from '../../../src/clock/clock.js';
import { hasController, isPopulated, listCgroupPids, readCgroupLayout, readCounters, treeDir } from '../../../src/jobs/cgroup.js';
import { createCgroupTarget, runKillLadder } from '../../../src/jobs/kill-ladder.js';

async function files(root: string, entries: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(entries)) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await writeFile(path.join(root, name), text);
  }
}

const SLICE = '/cloudjobs.slice/cloudjobs-jobs.slice/cloudjobs-jobs-abc.slice';

describe('readCgroupLayout', () => {
  it('tells unified, hybrid and legacy apart', async () => {
    const unified = await mkdtemp(path.join(os.tmpdir(), 'cg-'));
    await files(unified, { 'cgroup.controllers': 'cpuset cpu io memory pids\n' });
    const layout = await readCgroupLayout(unified);
    expect(layout).toEqual({ unified, legacy: null, controllers: new Set(['cpuset', 'cpu', 'io', 'memory', 'pids']) });
    expect(treeDir(layout, SLICE)).toBe(path.join(unified, SLICE));

    const hybrid = await mkdtemp(path.join(os.tmpdir(), 'cg-'));
    await files(hybrid, { 'unified/cgroup.controllers': '', 'pids/tasks': '', 'memory/tasks': '' });
    const mixed = await readCgroupLayout(hybrid);
    expect(mixed).toEqual({ unified: path.join(hybrid, 'unified'), legacy: hybrid, controllers: new Set() });
    expect([await hasController(mixed, 'pids'), await hasController(mixed, 'memory'), await hasController(mixed, 'cpu')]).toEqual([true, true, false]);

    const legacy = await mkdtemp(path.join(os.tmpdir(), 'cg-'));
    const old = await readCgroupLayout(legacy);
    expect(old.unified).toBeNull();
    expect(treeDir(old, SLICE)).toBe(path.join(legacy, 'systemd', SLICE));
  });

  it('never lets a unit path climb out of the mount', async () => {
    expect(treeDir({ unified: '/sys/fs/cgroup', legacy: null, controllers: new Set() }, '/../../etc')).toBe('/sys/fs/cgroup/etc');
  });
});

describe('readCounters', () => {
  it('reads the v2 files of the slice', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'cg-'));
    await files(root, {
      'cgroup.controllers': 'memory pids cpu',
      [`${SLICE}/memory.events`]: 'low 0\nhigh 0\nmax 12\noom 1\noom_kill 2\noom_group_kill 0\n',
      [`${SLICE}/pids.events`]: 'max 7\n',
      [`${SLICE}/memory.peak`]: '268435456\n',
      [`${SLICE}/cpu.stat`]: 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n',
    });
    expect(await readCounters(await readCgroupLayout(root), SLICE)).toEqual({
      oomKills: 2,
      pidsMaxHits: 7,
      memoryPeak: 268_435_456,
      cpuUsageUsec: 2_500_000,
    });
  });

  it('finds a refused fork counted in a step\'s scope only (Linux before 6.10 counts it where the fork failed)', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'cg-'));
    await files(root, {
      'cgroup.controllers': 'memory pids cpu',
      [`${SLICE}/pids.events`]: 'max 0\n',
      [`${SLICE}/cloudjobs-step-1.scope/pids.events`]: 'max 0\n',
      [`${SLICE}/cloudjobs-step-2.scope/pids.events`]: 'max 4\n',
    });
    expect((await readCounters(await readCgroupLayout(root), SLICE)).pidsMaxHits).toBe(4);
  });

  it('falls back to the v1 controllers, and says null where nothing counts', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'cg-'));
    await files(root, {
      'unified/cgroup.controllers': '',
      [`pids${SLICE}/pids.events`]: 'max 3\n',
      [`cpuacct${SLICE}/cpuacct.usage`]: '1500000000\n',
    });
    expect(await readCounters(await readCgroupLayout(root), SLICE)).toEqual({
      oomKills: null,
      pidsMaxHits: 3,
      memoryPeak: null,
      cpuUsageUsec: 1_500_000,
    });
  });
});

describe('the cgroup as a kill target', () => {
  it('lists the pids of the whole tree and stops them all, whatever group they are in', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'cg-'));
    // two processes in their own sessions: no process group or environment ties them to us
    const a = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
    const b = spawn('sh', ['-c', 'trap "" TERM; echo ready; sleep 60'], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
    const exits = [a, b].map((child) => new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal))));
    // the TERM must come after the trap is set, or sh dies of it (seen under load)
    await new Promise((resolve) => b.stdout!.once('data', resolve));
    await files(root, {
      'cgroup.procs': '',
      'cloudjobs-step-1.scope/cgroup.procs': `${a.pid}\n`,
      'cloudjobs-step-2.scope/cgroup.procs': `${b.pid}\n`,
    });
    expect((await listCgroupPids(root)).sort()).toEqual([a.pid, b.pid].sort());
    expect(await isPopulated(root)).toBe(true);
    // as the kernel does, a process leaves the tree when it dies (a dead pid listed on could be reused by another process)
    a.once('exit', () => void writeFile(path.join(root, 'cloudjobs-step-1.scope/cgroup.procs'), ''));
    b.once('exit', () => void writeFile(path.join(root, 'cloudjobs-step-2.scope/cgroup.procs'), ''));
    expect(await runKillLadder(createCgroupTarget(root), 300, createSystemClock())).toBe('killed');
    expect(await Promise.all(exits)).toEqual(['SIGTERM', 'SIGKILL']);
    expect(await isPopulated(root)).toBe(false);
  });

  it('reads populated from cgroup.events when the kernel has it', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'cg-'));
    await files(root, { 'cgroup.events': 'populated 0\nfrozen 0\n', 'cgroup.procs': '1\n' });
    expect(await isPopulated(root)).toBe(false);
    await files(root, { 'cgroup.events': 'populated 1\nfrozen 0\n' });
    expect(await isPopulated(root)).toBe(true);
  });
});
