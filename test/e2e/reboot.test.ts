// Issue 12: jobs that reboot the device and go on after the boot, with the
// built executable against the reference cloud. The reboot is faked
// (test/fixtures/scripts/fake-reboot.sh as jobs.reboot_command): it changes
// the boot identity (agent.boot_id_file, or the marker in runtime_dir) and
// stops the agent as systemd would; the test then starts the agent again, as
// the next boot would. The step after the reboot records the boot id it sees.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReferenceCloud } from '../cloud/reference-cloud.js';
import { locateHandlerDir } from '../fixtures/jobs/load-job-fixture.js';
import { createSharedDir, expectCompleteReport, killHard, readLines, reapOrphanSteps, reportBodies } from './durability-helpers.js';
import { createAgentDirs, removeDirs, RUN_USER, startAgent, startCloudWithDevice, stopAgent, waitFor, type AgentDirs, type AgentProcess } from './harness.js';

const FAKE_REBOOT = path.resolve('test/fixtures/scripts/fake-reboot.sh');
// the shipped handlers, copied under /run when the clone lies below /tmp (handler checks walk to /)
const SHIPPED_HANDLERS = locateHandlerDir(path.resolve('debian/handlers'));
const JOB_FIXTURES = path.resolve('test/fixtures/jobs');

let cloud: ReferenceCloud | null = null;
let dirs: AgentDirs | null = null;
let agent: AgentProcess | null = null;
let machineDir: string | null = null;
const jobIds: string[] = [];

afterEach(async () => {
  if (agent) await stopAgent(agent);
  await reapOrphanSteps(jobIds.splice(0));
  if (cloud) await cloud.close();
  if (dirs) await removeDirs(dirs);
  if (machineDir) await rm(machineDir, { recursive: true, force: true });
  machineDir = null;
  agent = null;
  cloud = null;
  dirs = null;
});

type Mode = 'boot-id' | 'marker' | 'power-cut' | 'none';

interface Machine {
  uuid: string;
  bootIdFile: string;
  /** Where steps write what they saw, and fake-reboot.sh each reboot it was asked for. */
  shared: string;
  marks: string;
  rebootLog: string;
}

async function setUp(mode: Mode, jobs: Record<string, string> = {}): Promise<Machine> {
  const started = await startCloudWithDevice();
  cloud = started.cloud;
  // the "machine": its boot id and its /run, outside the agent's own dirs so agent.ini can name them
  machineDir = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-machine-'));
  await chmod(machineDir, 0o755);
  const bootIdFile = path.join(machineDir, 'boot_id');
  const runtimeDir = path.join(machineDir, 'run');
  const rebootLog = path.join(machineDir, 'reboots.log');
  await writeFile(bootIdFile, 'boot-first\n', { mode: 0o644 });
  dirs = await createAgentDirs(cloud, started.device, {
    jobs: {
      handler_dirs: SHIPPED_HANDLERS,
      reboot_command: `${FAKE_REBOOT} ${mode} ${bootIdFile} ${runtimeDir} ${rebootLog}`,
      allowed_users: 'root',
      // the steps that ask run as the default user: let it (by default only root may)
      reboot_users: RUN_USER,
      ...jobs,
    },
    agent: { boot_id_file: bootIdFile, runtime_dir: runtimeDir },
  });
  const shared = await createSharedDir(dirs);
  return { uuid: started.device.uuid, bootIdFile, shared, marks: path.join(shared, 'marks'), rebootLog };
}

// A step that appends "<label> <boot id it sees>" to the marks file.
function markStep(name: string, m: Machine, label: string): unknown {
  return {
    action: { name, type: 'runCommand', input: { command: ['/bin/sh', '-c', `echo "${label} $(cat '${m.bootIdFile}')" >> '${m.marks}'; echo ${label}`] } },
  };
}

const rebootStep = { action: { name: 'Reboot', type: 'runHandler', input: { handler: 'reboot' } } };

function threeStepJob(m: Machine): unknown {
  return { version: '1.0', includeStdOut: true, steps: [markStep('Mark', m, 'before'), rebootStep, markStep('Check', m, 'after')] };
}

async function bootIdOf(m: Machine): Promise<string> {
  return (await readFile(m.bootIdFile, 'utf8')).trim();
}

function statuses(jobId: string): string[] {
  return reportBodies(cloud!, jobId).map((b) => b.status);
}

describe('a job that reboots', () => {
  it('[mark, reboot handler, check] ends SUCCEEDED only after the check ran in the new boot', async () => {
    const m = await setUp('boot-id');
    agent = startAgent(dirs!);
    const job = cloud!.queueJob(m.uuid, { name: 'update and reboot', document: threeStepJob(m), jobId: 'reboot-1' });
    jobIds.push(job.job_id);
    // the fake reboot stops the agent like systemd does on the way down
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    expect(await readLines(m.rebootLog)).toEqual(['boot-id']);
    expect(cloud!.getJob(job.job_id)!.status).toBe('IN_PROGRESS');
    const rebooting = reportBodies(cloud!, job.job_id).at(-1)!;
    expectCompleteReport(rebooting);
    expect(rebooting).toMatchObject({
      status: 'IN_PROGRESS',
      executed_steps: 2,
      reason: 'rebooting: step 2 ("Reboot") asked for a reboot; 2 of 3 steps done, the rest run after the boot',
    });
    expect(rebooting.status_details).toMatchObject({ rebooting: true });
    expect(agent.output()).toContain('rebooting for job update and reboot: step 2 ("Reboot") asked for reboot 1 of at most 3');
    expect(await readLines(m.marks)).toEqual(['before boot-first']);

    // the next boot
    const newBoot = await bootIdOf(m);
    agent = startAgent(dirs!);
    const final = await cloud!.waitForJobStatus(job.job_id, ['SUCCEEDED', 'FAILED', 'TIMED_OUT'], 30_000);
    expect(final.status).toBe('SUCCEEDED');
    expect(await readLines(m.marks)).toEqual(['before boot-first', `after ${newBoot}`]);
    const bodies = reportBodies(cloud!, job.job_id);
    for (const body of bodies) expectCompleteReport(body);
    expect(bodies.some((b) => b.status === 'IN_PROGRESS' && b.reason.startsWith('resumed after reboot; 2 of 3 steps done'))).toBe(true);
    const last = bodies.at(-1)!;
    expect(last).toMatchObject({ status: 'SUCCEEDED', reason: '3 of 3 steps succeeded', executed_steps: 3, exit_code: 0, failed_step: null });
    expect(last.stdout).toBe(
      '=== Step: Mark ===\nbefore\n' +
        '=== Step: Reboot ===\nasking the cloudjobs agent to reboot the device (requested for nobody); the job goes on after the boot\n' +
        '=== Step: Check ===\nafter\n',
    );
    const steps = (last.status_details as { steps: { name: string; exit_code: number; reboot_requested?: boolean }[] }).steps;
    expect(steps.map((s) => [s.name, s.exit_code, s.reboot_requested ?? false])).toEqual([
      ['Mark', 0, false],
      ['Reboot', 194, true],
      ['Check', 0, false],
    ]);
    await agent.waitForOutput(/resumed job update and reboot after reboot 1: going on after step 2 \("Reboot"\)/);
    expect(await readLines(m.rebootLog)).toEqual(['boot-id']);
  });

  it("AWS IoT Device Client's reboot sample (runHandler reboot.sh as root) resumes in a container whose boot_id never changes", async () => {
    const m = await setUp('marker');
    agent = startAgent(dirs!);
    const document = JSON.parse(await readFile(path.join(JOB_FIXTURES, 'aws-reboot.json'), 'utf8')) as unknown;
    const job = cloud!.queueJob(m.uuid, { name: 'dc reboot', document, jobId: 'reboot-dc' });
    jobIds.push(job.job_id);
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    expect(await bootIdOf(m)).toBe('boot-first');
    agent = startAgent(dirs!);
    const final = await cloud!.waitForJobStatus(job.job_id, ['SUCCEEDED', 'FAILED', 'TIMED_OUT'], 30_000);
    expect(final.status).toBe('SUCCEEDED');
    expect(reportBodies(cloud!, job.job_id).at(-1)).toMatchObject({ reason: '1 of 1 steps succeeded', executed_steps: 1, exit_code: 194 });
    expect(await readLines(m.rebootLog)).toEqual(['marker']);
  });

  it('FAILED "reboot did not happen" when the reboot never comes; the agent then takes the next job', async () => {
    const m = await setUp('none', { reboot_timeout: '2s' });
    agent = startAgent(dirs!);
    const job = cloud!.queueJob(m.uuid, { name: 'no reboot', document: threeStepJob(m), jobId: 'reboot-none' });
    jobIds.push(job.job_id);
    const final = await cloud!.waitForJobStatus(job.job_id, ['SUCCEEDED', 'FAILED', 'TIMED_OUT'], 30_000);
    expect(final.status).toBe('FAILED');
    expect(reportBodies(cloud!, job.job_id).at(-1)).toMatchObject({
      status: 'FAILED',
      reason: 'reboot did not happen: the device was still in the same boot 2s after the reboot was requested (jobs.reboot_timeout)',
      executed_steps: 2,
      exit_code: 194,
      failed_step: 'Reboot',
    });
    expect(await readLines(m.marks)).toEqual(['before boot-first']);
    expect(await readLines(m.rebootLog)).toEqual(['none']);
    const next = cloud!.queueJob(m.uuid, { name: 'next', document: { version: '1.0', steps: [markStep('Next', m, 'next')] }, jobId: 'after-none' });
    jobIds.push(next.job_id);
    expect((await cloud!.waitForJobStatus(next.job_id, ['SUCCEEDED', 'FAILED'], 30_000)).status).toBe('SUCCEEDED');
  });

  it('FAILED without another reboot when the job asks for more than max_reboots', async () => {
    const m = await setUp('boot-id', { max_reboots: '1' });
    agent = startAgent(dirs!);
    const document = { version: '1.0', steps: [rebootStep, { action: { ...rebootStep.action, name: 'Again' } }, markStep('Check', m, 'after')] };
    const job = cloud!.queueJob(m.uuid, { name: 'twice', document, jobId: 'reboot-twice' });
    jobIds.push(job.job_id);
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    agent = startAgent(dirs!);
    const final = await cloud!.waitForJobStatus(job.job_id, ['SUCCEEDED', 'FAILED', 'TIMED_OUT'], 30_000);
    expect(final.status).toBe('FAILED');
    expect(reportBodies(cloud!, job.job_id).at(-1)).toMatchObject({
      reason: 'step 2 ("Again") asked for reboot 2 of this job, but jobs.max_reboots is 1',
      executed_steps: 2,
      failed_step: 'Again',
    });
    expect(await readLines(m.rebootLog)).toEqual(['boot-id']);
    expect(await readLines(m.marks)).toEqual([]);
  });

  it('a power cut while REBOOTING resumes; kill -9 in a normal step after that is still "interrupted", even across a boot', async () => {
    const m = await setUp('power-cut');
    agent = startAgent(dirs!);
    const sleeper = { action: { name: 'Long', type: 'runCommand', input: { command: ['/bin/sh', '-c', `echo "long $(cat '${m.bootIdFile}')" >> '${m.marks}'; exec sleep 30`] } } };
    const job = cloud!.queueJob(m.uuid, { name: 'cut', document: { version: '1.0', steps: [rebootStep, sleeper] }, jobId: 'reboot-cut' });
    jobIds.push(job.job_id);
    expect(await agent.exited).toEqual({ code: null, signal: 'SIGKILL' });
    const secondBoot = await bootIdOf(m);
    agent = startAgent(dirs!);
    await waitFor(async () => (await readLines(m.marks)).length === 1, 30_000, 'the step after the reboot to start');
    expect(await readLines(m.marks)).toEqual([`long ${secondBoot}`]);
    await killHard(agent);
    await reapOrphanSteps(jobIds);
    // even a new boot does not resume a job that was killed in a normal step
    await writeFile(m.bootIdFile, 'boot-third\n');
    agent = startAgent(dirs!);
    const final = await cloud!.waitForJobStatus(job.job_id, ['SUCCEEDED', 'FAILED', 'TIMED_OUT'], 30_000);
    expect(final.status).toBe('FAILED');
    expect(reportBodies(cloud!, job.job_id).at(-1)).toMatchObject({
      // a new boot: the step log (not synced step by step) is a lower bound
      reason:
        'interrupted: the agent stopped while step 2 of 2 (Long) was running as far as its journal shows; the device restarted since (power loss or reboot), ' +
        'and steps are not synced to disk one by one, so later steps may have started; the job was not resumed',
      executed_steps: 1,
    });
    expect(statuses(job.job_id).filter((s) => s !== 'IN_PROGRESS')).toEqual(['FAILED']);
    expect(await readLines(m.marks)).toEqual([`long ${secondBoot}`]);
    expect(await readLines(m.rebootLog)).toEqual(['power-cut']);
  });
});
