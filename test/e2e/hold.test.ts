// Holding jobs with the built executable against the reference cloud (issue 23):
// the operator's hold across restarts, its expiry, a running job finishing,
// application holds with a live and a stale lock, maintenance windows on the
// real clock, and `status --json` against its schema.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lockKey, readLockedFiles, splitDevice } from '../../src/state/proc-locks.js';
import type { ReferenceCloud } from '../cloud/reference-cloud.js';
import { checkStatusJson } from '../status-schema.js';
import { commandJob, runCommand, waitFor, type AgentDirs } from './harness.js';
import { createScope, expectCleanStop } from './polling-helpers.js';

const scope = createScope();
const holders: ChildProcess[] = [];
const made: string[] = [];
afterEach(async () => {
  for (const holder of holders.splice(0)) killGroup(holder);
  await scope.cleanup();
  await Promise.all(made.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const polls = (cloud: ReferenceCloud): number => cloud.requests().filter((r) => r.method === 'GET' && /\/jobs\/next$/.test(r.path)).length;
const cli = (dirs: AgentDirs, ...args: string[]) => runCommand(['--config', dirs.configFile, ...args]);

async function statusJson(dirs: AgentDirs): Promise<Record<string, unknown>> {
  const result = await cli(dirs, 'status', '--json');
  expect(result.code, result.stderr).toBe(0);
  const status = JSON.parse(result.stdout) as Record<string, unknown>;
  expect(checkStatusJson(status)).toEqual([]);
  return status;
}

async function waitForState(dirs: AgentDirs, state: string): Promise<Record<string, unknown>> {
  let last: Record<string, unknown> = {};
  await waitFor(async () => {
    const result = await cli(dirs, 'status', '--json');
    if (result.code !== 0) return false;
    last = JSON.parse(result.stdout) as Record<string, unknown>;
    return last.state === state;
  }, 15_000, `status state ${state}`);
  expect(checkStatusJson(last)).toEqual([]);
  return last;
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // gone already
  }
}

// Whether the kernel lists a lock on `file`.
async function isLocked(file: string): Promise<boolean> {
  const s = await stat(file, { bigint: true });
  const { major, minor } = splitDevice(s.dev);
  return (await readLockedFiles()).has(lockKey(major, minor, s.ino));
}

// An application holding jobs: `flock FILE sleep 300` in its own process group, once the kernel lists the lock.
async function holdAsApplication(file: string, reason: string): Promise<ChildProcess> {
  await writeFile(file, `${reason}\n`);
  const child = spawn('flock', [file, 'sleep', '300'], { stdio: 'ignore', detached: true });
  holders.push(child);
  await waitFor(() => isLocked(file), 10_000, `the kernel's lock on ${file}`);
  return child;
}

describe('operator hold', () => {
  it('survives an agent restart: no poll, the job stays QUEUED; release runs it', async () => {
    const { cloud, device } = await scope.cloud();
    const dirs = await scope.dirs(cloud, device, { jobs: { hold_dir: '' } });
    const held = await cli(dirs, 'hold', '--reason', 'kiosk in use');
    expect(held).toMatchObject({ code: 0, stderr: '' });
    expect(held.stdout).toMatch(/^jobs held: kiosk in use until released\n/);
    const job = cloud.queueJob(device.uuid, { name: 'after hold', document: commandJob(['true']) });

    let agent = scope.agent(dirs);
    await agent.waitForOutput(/INFO taking no new job: held by operator: kiosk in use/);
    const status = await waitForState(dirs, 'held');
    expect(status).toMatchObject({
      state: 'held',
      hold: { held: true, reason: 'held by operator: kiosk in use', operator: { reason: 'kiosk in use', expiry: 'none', expiresAt: null }, applications: [] },
    });
    expect(status.describe).toBe('held by operator: kiosk in use; taking no new job');
    const plain = await cli(dirs, 'status');
    expect(plain.stdout).toContain('jobs held:      held by operator: kiosk in use');
    await sleep(1200); // six poll intervals
    expect(polls(cloud)).toBe(0);
    await expectCleanStop(agent);

    agent = scope.agent(dirs);
    await agent.waitForOutput(/INFO taking no new job: held by operator: kiosk in use/);
    await sleep(1200);
    expect(polls(cloud)).toBe(0);
    expect(cloud.getJob(job.job_id)?.status).toBe('QUEUED');

    const { setAt } = JSON.parse(await readFile(path.join(dirs.stateDir, 'hold.json'), 'utf8')) as { setAt: string };
    const released = await cli(dirs, 'release');
    expect(released).toMatchObject({ code: 0, stdout: `released the hold set ${setAt} (kiosk in use)\n` });
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 15_000);
    const output = await expectCleanStop(agent);
    expect(output).toMatch(/INFO jobs are no longer held \(was: held by operator: kiosk in use\); polling for jobs again/);
  });

  it('a --for hold expires across a restart (counted on the boot clock), then the job runs', async () => {
    const { cloud, device } = await scope.cloud();
    const dirs = await scope.dirs(cloud, device, { jobs: { hold_dir: '' } });
    expect((await cli(dirs, 'hold', '--for', '4s')).code).toBe(0);
    const job = cloud.queueJob(device.uuid, { name: 'after expiry', document: commandJob(['true']) });
    let agent = scope.agent(dirs);
    await agent.waitForOutput(/INFO taking no new job: held by operator \(for 4s\)/);
    await sleep(1000);
    await expectCleanStop(agent);
    // the agent recorded the time left when it stopped
    const stored = JSON.parse(await readFile(path.join(dirs.stateDir, 'hold.json'), 'utf8')) as { expiry: { anchor: { remainingMs: number } } };
    expect(stored.expiry.anchor.remainingMs).toBeLessThan(4000);
    expect(stored.expiry.anchor.remainingMs).toBeGreaterThan(0);
    expect(polls(cloud)).toBe(0);

    agent = scope.agent(dirs);
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 20_000);
    const output = await expectCleanStop(agent);
    expect(output).toMatch(/INFO the operator's hold expired; removed it/);
    expect((await cli(dirs, 'release')).stdout).toBe('no operator hold was set\n');
  });

  it('a release is noticed at once (inotify), not at the next poll interval (30 s)', async () => {
    const { cloud, device } = await scope.cloud();
    const dirs = await scope.dirs(cloud, device, { polling: { interval: '30s' } });
    expect((await cli(dirs, 'hold')).code).toBe(0);
    const job = cloud.queueJob(device.uuid, { name: 'prompt', document: commandJob(['true']) });
    const agent = scope.agent(dirs);
    await agent.waitForOutput(/INFO taking no new job: held by operator/);
    expect((await cli(dirs, 'release')).code).toBe(0);
    // well inside one 30 s interval: only a file event can have ended the wait
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 15_000);
    await expectCleanStop(agent);
  });

  it('a hold taken while a job runs lets it finish and report; the next job waits', async () => {
    const { cloud, device } = await scope.cloud();
    const dirs = await scope.dirs(cloud, device, { jobs: { hold_dir: '' } });
    const agent = scope.agent(dirs);
    const first = cloud.queueJob(device.uuid, { name: 'long', document: commandJob(['sleep', '2']) });
    await cloud.waitForJobStatus(first.job_id, 'IN_PROGRESS', 15_000);
    expect((await cli(dirs, 'hold', '--reason', 'maintenance')).code).toBe(0);
    const second = cloud.queueJob(device.uuid, { name: 'next', document: commandJob(['true']) });
    await cloud.waitForJobStatus(first.job_id, 'SUCCEEDED', 15_000);
    await agent.waitForOutput(/taking no new job: held by operator: maintenance/);
    const before = polls(cloud);
    await sleep(1200);
    expect(polls(cloud)).toBe(before);
    expect(cloud.getJob(second.job_id)?.status).toBe('QUEUED');
    expect((await cli(dirs, 'release')).code).toBe(0);
    await cloud.waitForJobStatus(second.job_id, 'SUCCEEDED', 15_000);
    await expectCleanStop(agent);
  });
});

describe('application holds', () => {
  it('a file with a live lock holds, one whose holder was killed does not; killing the holder releases', async () => {
    const { cloud, device } = await scope.cloud();
    const holdDir = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-holds-'));
    made.push(holdDir);
    const dirs = await scope.dirs(cloud, device, { jobs: { hold_dir: holdDir } });
    const dead = await holdAsApplication(path.join(holdDir, 'dead-app'), 'crashed');
    killGroup(dead);
    await waitFor(async () => !(await isLocked(path.join(holdDir, 'dead-app'))), 10_000, 'the dead holder\'s lock gone');
    const kiosk = await holdAsApplication(path.join(holdDir, 'kiosk-app'), 'customer session');
    const job = cloud.queueJob(device.uuid, { name: 'after app hold', document: commandJob(['true']) });

    const agent = scope.agent(dirs);
    await agent.waitForOutput(/INFO taking no new job: held by kiosk-app: customer session/);
    await agent.waitForOutput(/INFO ignoring hold files whose holder ended \(no lock on them\): dead-app/);
    const status = await waitForState(dirs, 'held');
    expect(status.hold).toMatchObject({ applications: [{ name: 'kiosk-app', reason: 'customer session' }], staleApplicationFiles: ['dead-app'], operator: null });
    await sleep(1000);
    expect(polls(cloud)).toBe(0);

    killGroup(kiosk);
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 15_000);
    const output = await expectCleanStop(agent);
    expect(output).toMatch(/INFO jobs are no longer held \(was: held by kiosk-app: customer session\)/);
  });
});

describe('maintenance windows (real clock)', () => {
  const hhmm = (at: number): string => {
    const d = new Date(at);
    return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  };

  it('a window that excludes now takes no job and names the next start', async () => {
    const { cloud, device } = await scope.cloud();
    const start = new Date(Date.now() + 3 * 3_600_000);
    start.setSeconds(0, 0);
    const windows = `${hhmm(start.getTime())}-${hhmm(start.getTime() + 3_600_000)}`;
    const dirs = await scope.dirs(cloud, device, { jobs: { maintenance_windows: windows } });
    const job = cloud.queueJob(device.uuid, { name: 'outside', document: commandJob(['true']) });
    const agent = scope.agent(dirs);
    await agent.waitForOutput(new RegExp(`INFO taking no new job: outside maintenance window, next at ${hhmm(start.getTime())}`));
    const status = await waitForState(dirs, 'held');
    expect(status.hold).toMatchObject({ held: true, inMaintenanceWindow: false, nextWindowAt: start.getTime(), maintenanceWindows: [windows] });
    await sleep(1000);
    expect(polls(cloud)).toBe(0);
    expect(cloud.getJob(job.job_id)?.status).toBe('QUEUED');
    await expectCleanStop(agent);
  });

  it('a window that includes now takes the job', async () => {
    const { cloud, device } = await scope.cloud();
    const now = Date.now();
    const windows = `${hhmm(now - 3_600_000)}-${hhmm(now + 3_600_000)}`;
    const dirs = await scope.dirs(cloud, device, { jobs: { maintenance_windows: windows } });
    const job = cloud.queueJob(device.uuid, { name: 'inside', document: commandJob(['true']) });
    const agent = scope.agent(dirs);
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 15_000);
    const status = await statusJson(dirs);
    expect(status.hold).toMatchObject({ held: false, reason: null, inMaintenanceWindow: true, nextWindowAt: null });
    const output = await expectCleanStop(agent);
    expect(output).not.toMatch(/taking no new job/);
  });
});
