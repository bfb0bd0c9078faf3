// Issue 14: the SD card fills up or goes read-only. The built agent runs in its
// own mount namespace (unshare -m) with state_dir on a small tmpfs; the test
// fills it, remounts it read-only and writable again from outside (nsenter).
// No job is lost or run twice, every final report arrives once the disk
// recovers (or directly, when the outbox cannot take it), the agent never exits
// and says "degraded: <path>: <errno>" in its log and in `cloudjobs status`.
// Root only (mount namespaces, tmpfs).
import { writeFile } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { appendJob, createSharedDir, expectOneFinalLast, readLines } from './durability-helpers.js';
import { AGENT_BIN, runCommand, startAgent, stopAgent, type AgentDirs, type AgentProcess } from './harness.js';
import { createScope, expectCleanStop } from './polling-helpers.js';
import { waitFor } from '../cloud/wait-for.js';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;

const scope = createScope();
const agents: AgentProcess[] = [];
afterEach(async () => {
  await Promise.all(agents.splice(0).map((a) => stopAgent(a, 10_000)));
  await scope.cleanup();
});

// Starts the agent in a new mount namespace whose state_dir is a tmpfs of `size`.
async function startOnTmpfs(dirs: AgentDirs, size: string): Promise<AgentProcess> {
  await mkdir(dirs.stateDir, { recursive: true, mode: 0o700 });
  const mountThenExec = `mount -t tmpfs -o size=${size},mode=0700 cloudjobs-state "$0" && exec "$@"`;
  const agent = startAgent(dirs, {
    prefix: ['unshare', '-m', '--propagation', 'private', 'sh', '-c', mountThenExec, dirs.stateDir],
  });
  agents.push(agent);
  await agent.waitForOutput(/cloudjobs \S+ started: polling/);
  return agent;
}

// Runs a command inside the agent's mount namespace (where its tmpfs is).
async function inAgentNs(agent: AgentProcess, ...argv: string[]): Promise<void> {
  await run('nsenter', ['-t', String(agent.child.pid), '-m', ...argv]);
}

async function fill(agent: AgentProcess, dir: string): Promise<void> {
  // head fails with ENOSPC once the tmpfs is full: that is the point
  await inAgentNs(agent, 'sh', '-c', `head -c 64M /dev/zero > '${dir}/filler' 2>/dev/null || true`);
}

function statuses(cloud: { patches(jobId?: string): { body: unknown }[] }, jobId: string): string[] {
  return cloud.patches(jobId).map((p) => (p.body as { status: string }).status);
}

async function statusText(dirs: AgentDirs): Promise<string> {
  const result = await runCommand(['--config', dirs.configFile, 'status']);
  expect(result.code).toBe(0);
  return result.stdout;
}

// A few poll intervals in which a degraded agent must not take a queued job.
const settle = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// appendJob whose step 1 holds until `goFile` exists (at most 60 s): a fault set meanwhile lands
// after step 1's start and before its end are journaled.
function gatedAppendJob(logFile: string, steps: number, goFile: string): Record<string, unknown> {
  const document = appendJob(logFile, steps, 0) as { steps: { action: { input: { command: string[] } } }[] };
  document.steps[0]!.action.input.command = ['/bin/sh', '-c', `echo "step 1" >> '${logFile}'; i=0; while [ ! -e '${goFile}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`];
  return document;
}

describe.runIf(isRoot)('state_dir on a real file system that fails (root only)', () => {
  it('fills up during a job: the job starts no further step and its FAILED report is sent directly; after space returns the next job runs', async () => {
    const { cloud, device } = await scope.cloud();
    const dirs = await scope.dirs(cloud, device, { jobs: { progress_interval: '300ms' } });
    const shared = await createSharedDir(dirs);
    const agent = await startOnTmpfs(dirs, '2m');

    // step 1 holds until the disk is full (a go file, at most 60 s), so the fill always lands before its end is journaled
    const first = cloud.queueJob(device.uuid, { name: 'filler', document: gatedAppendJob(`${shared}/first.log`, 3, `${shared}/go`) });
    await agent.waitForOutput(/starting step 1/);
    await cloud.waitFor((c) => c.patches(first.job_id).length > 0, 20_000, 'a first IN_PROGRESS');
    await fill(agent, dirs.stateDir);
    await writeFile(`${shared}/go`, '');

    await cloud.waitForJobStatus(first.job_id, 'FAILED', 30_000);
    const final = expectOneFinalLast(cloud, first.job_id);
    expect(final.reason).toMatch(
      new RegExp(`^the agent cannot write its state \\(${dirs.stateDir}(/\\S+)?: ENOSPC: [^)]+\\), so it started no further step; 1 of 3 steps ran, the rest were not started`),
    );
    expect(final.status_details).toMatchObject({ local_fault: expect.stringMatching(/ENOSPC/) });
    await agent.waitForOutput(/degraded: \S+: ENOSPC: /);
    await agent.waitForOutput(/final report FAILED sent directly \(the state directory could not queue it\)/);

    // degraded: a queued job is not taken
    const second = cloud.queueJob(device.uuid, { name: 'after', document: appendJob(`${shared}/second.log`, 1, 0) });
    await settle(1500);
    expect(cloud.getJob(second.job_id)?.status).toBe('QUEUED');
    expect(await statusText(dirs)).toMatch(/^degraded: +\S+: ENOSPC: .*\(no new job until it can be written/m);

    await inAgentNs(agent, 'rm', '-f', `${dirs.stateDir}/filler`);
    await cloud.waitForJobStatus(second.job_id, 'SUCCEEDED', 30_000);
    await agent.waitForOutput(/state directory writable again/);
    expect(agent.child.exitCode).toBeNull();

    expect(await readLines(`${shared}/first.log`)).toEqual(['step 1']);
    expect(await readLines(`${shared}/second.log`)).toEqual(['step 1']);
    expect(statuses(cloud, first.job_id).filter((s) => s !== 'IN_PROGRESS')).toEqual(['FAILED']);
    expect(expectOneFinalLast(cloud, second.job_id).status).toBe('SUCCEEDED');
    // the FAILED job went to history once the disk took writes again (the tmpfs is only in the agent's namespace)
    const history = await run('nsenter', ['-t', String(agent.child.pid), '-m', AGENT_BIN, '--config', dirs.configFile, 'history']);
    expect(history.stdout).toMatch(new RegExp(`FAILED +filler \\(${first.job_id}\\)`));
    expect(history.stdout).toMatch(new RegExp(`SUCCEEDED +after \\(${second.job_id}\\)`));
    const output = await expectCleanStop(agent);
    expect(output).not.toMatch(/polling for jobs failed/);
  });

  it('read-only while idle and during a job: no poll while read-only, nothing lost or run twice, every final delivered after it is writable again', async () => {
    const { cloud, device } = await scope.cloud();
    const dirs = await scope.dirs(cloud, device, { jobs: { progress_interval: '300ms' } });
    const shared = await createSharedDir(dirs);
    const agent = await startOnTmpfs(dirs, '16m');

    // idle
    await inAgentNs(agent, 'mount', '-o', 'remount,ro', dirs.stateDir);
    await agent.waitForOutput(/degraded: \S+: EROFS: /);
    const idleJob = cloud.queueJob(device.uuid, { name: 'idle', document: appendJob(`${shared}/idle.log`, 1, 0) });
    await settle(1500);
    expect(cloud.getJob(idleJob.job_id)?.status).toBe('QUEUED');
    expect(await statusText(dirs)).toMatch(/^degraded: +\S+: EROFS: /m);
    await inAgentNs(agent, 'mount', '-o', 'remount,rw', dirs.stateDir);
    await cloud.waitForJobStatus(idleJob.job_id, 'SUCCEEDED', 30_000);

    // during a job
    // step 1 (its start journaled) holds until the flip: the first IN_PROGRESS goes out before step 1
    // starts, and a flip then would halt the job before it (0 of 3 steps ran: right, but not this check)
    const busy = cloud.queueJob(device.uuid, { name: 'busy', document: gatedAppendJob(`${shared}/busy.log`, 3, `${shared}/busy-go`) });
    await waitFor(async () => (await readLines(`${shared}/busy.log`)).includes('step 1'), 20_000, 'step 1 of busy to start');
    await inAgentNs(agent, 'mount', '-o', 'remount,ro', dirs.stateDir);
    await writeFile(`${shared}/busy-go`, '');
    const next = cloud.queueJob(device.uuid, { name: 'next', document: appendJob(`${shared}/next.log`, 1, 0) });
    await agent.waitForOutput(/job busy ended FAILED: the agent cannot write its state \(\S+: EROFS: /, 30_000);
    await settle(1500);
    expect(cloud.getJob(next.job_id)?.status).toBe('QUEUED');
    expect(agent.child.exitCode).toBeNull();

    await inAgentNs(agent, 'mount', '-o', 'remount,rw', dirs.stateDir);
    await cloud.waitForJobStatus(busy.job_id, 'FAILED', 30_000);
    await cloud.waitForJobStatus(next.job_id, 'SUCCEEDED', 30_000);
    const busyFinal = expectOneFinalLast(cloud, busy.job_id);
    expect(busyFinal.reason).toMatch(/^the agent cannot write its state \(\S+: EROFS: [^)]+\), so it started no further step; 1 of 3 steps ran/);
    expect(await readLines(`${shared}/idle.log`)).toEqual(['step 1']);
    expect(await readLines(`${shared}/busy.log`)).toEqual(['step 1']);
    expect(await readLines(`${shared}/next.log`)).toEqual(['step 1']);
    for (const id of [idleJob.job_id, busy.job_id, next.job_id]) {
      expect(statuses(cloud, id).filter((s) => s !== 'IN_PROGRESS')).toHaveLength(1);
    }
    await expectCleanStop(agent);
  });
});
