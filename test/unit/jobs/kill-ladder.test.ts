import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createManualClock, createSystemClock } from '../../../src/clock/clock.js';
import { createGroupTarget, createJobTarget, runKillLadder } from '../../../src/jobs/kill-ladder.js';
import { parseStat } from '../../../src/jobs/proc-scan.js';
import { SCRIPTS } from './engine-helpers.js';

// Spawns a fixture detached (its own group) and waits for its first output line.
async function spawnGroup(script: string, env: Record<string, string> = {}): Promise<{ pid: number; exited: Promise<string | null> }> {
  const child = spawn(path.join(SCRIPTS, script), ['300'], { detached: true, stdio: ['ignore', 'pipe', 'ignore'], env: { PATH: '/usr/bin:/bin', ...env } });
  const exited = new Promise<string | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  child.stdout.resume();
  return { pid: child.pid as number, exited };
}

describe('runKillLadder', () => {
  it('ends a group with SIGTERM when it obeys', async () => {
    const { pid, exited } = await spawnGroup('sleep-then.sh');
    expect(await runKillLadder(createGroupTarget(pid), 2000, createSystemClock())).toBe('terminated');
    expect(await exited).toBe('SIGTERM');
  });

  it('SIGKILLs a group that ignores SIGTERM after the grace', async () => {
    const { pid, exited } = await spawnGroup('ignore-term.sh');
    expect(await runKillLadder(createGroupTarget(pid), 200, createSystemClock())).toBe('killed');
    expect(await exited).toBe('SIGKILL');
  });

  it('gives the whole grace, measured by elapsed time, when the wall clock jumps forward or back during it', async () => {
    for (const jump of [3600_000, -3600_000]) {
      const clock = createManualClock(1_000_000);
      const sent: string[] = [];
      let alive = true;
      const target = { send: async (signal: NodeJS.Signals) => void sent.push(signal), alive: async () => alive };
      const ladder = runKillLadder(target, 1000, clock);
      await new Promise((resolve) => setImmediate(resolve));
      clock.stepWall(jump);
      await clock.advance(950);
      expect(sent).toEqual(['SIGTERM']);
      await clock.advance(100);
      await new Promise((resolve) => setImmediate(resolve));
      expect(sent.slice(0, 2)).toEqual(['SIGTERM', 'SIGKILL']);
      alive = false;
      await clock.advance(100);
      expect(await ladder).toBe('killed');
    }
  });

  it('reports gone for an empty group', async () => {
    expect(await runKillLadder(createGroupTarget(2 ** 22 + 12345), 200, createSystemClock())).toBe('gone');
  });

  it('finds and stops processes by CLOUDJOBS_JOB_ID in their environment', async () => {
    const { exited } = await spawnGroup('sleep-then.sh', { CLOUDJOBS_JOB_ID: `ladder-${process.pid}` });
    const target = createJobTarget(`ladder-${process.pid}`, process.pid);
    expect(await target.alive()).toBe(true);
    expect(await createJobTarget(`ladder-${process.pid}-other`, process.pid).alive()).toBe(false);
    expect(await runKillLadder(target, 2000, createSystemClock())).toBe('terminated');
    expect(await exited).toBe('SIGTERM');
  });
});

describe('parseStat', () => {
  it('reads state and pgid even when comm holds spaces and parens', () => {
    expect(parseStat('123 (a (b) c) S 1 456 456 0 -1')).toEqual({ state: 'S', pgid: 456 });
    expect(parseStat('garbage')).toBeNull();
  });
});
