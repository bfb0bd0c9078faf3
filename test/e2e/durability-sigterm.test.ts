// Issue 4, "Done when" 5: SIGTERM during a long step. A step that ends within
// drain_timeout finishes, its report is sent, exit 0. A step longer than
// drain_timeout is stopped through the kill ladder and reported FAILED
// "stopped by agent shutdown" (at the next start if the flush could not send
// it). A second SIGTERM skips the wait.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReferenceCloud } from '../cloud/reference-cloud.js';
import { expectOneFinalLast, findJobProcesses, outputLines, reapOrphanSteps } from './durability-helpers.js';
import {
  createAgentDirs,
  removeDirs,
  startAgent,
  startCloudWithDevice,
  stopAgent,
  type AgentDirs,
  type AgentProcess,
  type IniSections,
  type TestDevice,
} from './harness.js';

let cloud: ReferenceCloud | null = null;
let dirs: AgentDirs | null = null;
const agents: AgentProcess[] = [];
const jobIds: string[] = [];

afterEach(async () => {
  for (const agent of agents.splice(0)) await stopAgent(agent);
  await reapOrphanSteps(jobIds.splice(0), 0);
  if (cloud) await cloud.close();
  if (dirs) await removeDirs(dirs);
  cloud = null;
  dirs = null;
});

// One step running `script` under /bin/sh.
function shellJob(name: string, script: string): Record<string, unknown> {
  return { version: '1.0', includeStdOut: true, steps: [{ name, type: 'runCommand', input: { command: ['/bin/sh', '-c', script] } }] };
}

async function setUp(ini: IniSections): Promise<{ cloud: ReferenceCloud; device: TestDevice; dirs: AgentDirs }> {
  const started = await startCloudWithDevice();
  cloud = started.cloud;
  dirs = await createAgentDirs(cloud, started.device, ini);
  return { cloud, device: started.device, dirs };
}

function launch(agentDirs: AgentDirs, env: Record<string, string> = {}): AgentProcess {
  const agent = startAgent(agentDirs, { env });
  agents.push(agent);
  return agent;
}

// The jobs/next polls the cloud received after `since` (ms since the epoch).
function pollsSince(c: ReferenceCloud, since: number): number {
  return c.requests().filter((r) => r.at > since && r.route.endsWith('/jobs/next')).length;
}

describe('SIGTERM while a job runs', () => {
  it('lets a step that ends within drain_timeout finish, sends its report and exits 0', async () => {
    const { cloud: c, device, dirs: d } = await setUp({ agent: { drain_timeout: '30s' } });
    const job = c.queueJob(device.uuid, { name: 'short drain', document: shellJob('wait a bit', 'sleep 1.5; echo finished') });
    jobIds.push(job.job_id);
    const agent = launch(d);
    await agent.waitForOutput(/starting step 1 jobId=\S+ jobName="short drain"/);
    const signaledAt = Date.now();
    agent.kill('SIGTERM');
    const exit = await agent.exited;

    expect(exit).toEqual({ code: 0, signal: null });
    expect(agent.output()).toContain('stopping: waiting up to 30s for job short drain to finish (send the signal again to stop it now)');
    const final = expectOneFinalLast(c, job.job_id);
    expect(final).toMatchObject({ status: 'SUCCEEDED', exit_code: 0, stdout: '=== Step: wait a bit ===\nfinished\n', stderr: '', reason: '1 of 1 steps succeeded', executed_steps: 1, failed_step: null });
    expect(agent.output()).toMatch(/final report SUCCEEDED delivered/);
    expect(agent.output()).not.toMatch(/did not finish within the drain timeout/);
    // polling stopped at once: nothing asked for another job after the signal
    expect(pollsSince(c, signaledAt + 50)).toBe(0);
    expect(agent.output()).toMatch(/cloudjobs stopped\n?$/);
  });

  it('stops a step longer than drain_timeout through the kill ladder and reports FAILED "stopped by agent shutdown"', async () => {
    const { cloud: c, device, dirs: d } = await setUp({ agent: { drain_timeout: '1s' }, jobs: { kill_grace: '500ms' } });
    // ignores SIGTERM (so does its sleep: ignored signals survive exec), so only the ladder's SIGKILL ends it
    const job = c.queueJob(device.uuid, { name: 'long drain', document: shellJob('stubborn', "trap '' TERM; echo begun; sleep 60") });
    jobIds.push(job.job_id);
    const agent = launch(d);
    await agent.waitForOutput(/starting step 1 jobId=\S+ jobName="long drain"/);
    agent.kill('SIGTERM');
    const exit = await agent.exited;

    expect(exit).toEqual({ code: 0, signal: null });
    expect(outputLines(agent, /job long drain did not finish within the drain timeout; stopping it/)).toHaveLength(1);
    const final = expectOneFinalLast(c, job.job_id);
    expect(final).toMatchObject({ status: 'FAILED', reason: 'stopped by agent shutdown', executed_steps: 1, failed_step: 'stubborn', exit_code: null });
    expect(final.stdout).toBe('=== Step: stubborn ===\nbegun\n');
    expect(final.status_details.steps[0]).toMatchObject({ name: 'stubborn', signal: 'SIGKILL', failure_reason: 'stopped by agent shutdown' });
    expect(await findJobProcesses([job.job_id])).toEqual([]);
  });

  it('delivers the shutdown report at the next start when the flush could not send it', async () => {
    // 10x: drain 1 s, flush 0.5 s, kill grace 50 ms of real time
    const env = { CLOUDJOBS_TEST_TIME_SCALE: '10' };
    const { cloud: c, device, dirs: d } = await setUp({ agent: { drain_timeout: '10s' }, polling: { interval: '2s', max_backoff: '10s' } });
    const job = c.queueJob(device.uuid, { name: 'cut off', document: shellJob('long', 'echo begun; sleep 60') });
    jobIds.push(job.job_id);
    const first = launch(d, env);
    await first.waitForOutput(/starting step 1 jobId=\S+ jobName="cut off"/);
    await c.waitFor((cl) => cl.patches(job.job_id).length > 0, 10_000, 'the first progress report');
    await c.down();
    first.kill('SIGTERM');
    expect(await first.exited).toEqual({ code: 0, signal: null });
    expect(first.output()).toMatch(/job cut off ended FAILED: stopped by agent shutdown/);
    expect(first.output()).toMatch(/stopping with \d+ reports? still queued; they are sent at the next start/);
    expect(c.patches(job.job_id).every((p) => (p.body as { status: string }).status === 'IN_PROGRESS')).toBe(true);
    expect(await findJobProcesses([job.job_id])).toEqual([]);

    await c.up();
    const second = launch(d, env);
    await c.waitForJobStatus(job.job_id, 'FAILED', 20_000);
    await sleep(300);
    const final = expectOneFinalLast(c, job.job_id);
    expect(final).toMatchObject({ status: 'FAILED', reason: 'stopped by agent shutdown', executed_steps: 1, failed_step: 'long' });
    expect(final.status_details.steps[0]).toMatchObject({ name: 'long', failure_reason: 'stopped by agent shutdown' });
    expect(second.output()).toMatch(/outbox holds \d+ report\(s\) from before the restart; delivering them in order/);
    expect(second.output()).not.toMatch(/received job cut off/);
    expect(await stopAgent(second)).toEqual({ code: 0, signal: null });
  });

  it('skips the wait on a second SIGTERM', async () => {
    const { cloud: c, device, dirs: d } = await setUp({ agent: { drain_timeout: '5m' } });
    const job = c.queueJob(device.uuid, { name: 'impatient', document: shellJob('long', 'echo begun; sleep 60') });
    jobIds.push(job.job_id);
    const agent = launch(d);
    await agent.waitForOutput(/starting step 1 jobId=\S+ jobName=impatient /);
    agent.kill('SIGTERM');
    await agent.waitForOutput(/stopping: waiting up to 300s for job impatient to finish \(send the signal again to stop it now\)/);
    agent.kill('SIGTERM');
    const exit = await agent.exited;

    expect(exit).toEqual({ code: 0, signal: null });
    expect(outputLines(agent, /WARN stopping now: the running job is stopped/)).toHaveLength(1);
    expect(agent.output()).not.toMatch(/did not finish within the drain timeout/);
    const final = expectOneFinalLast(c, job.job_id);
    expect(final).toMatchObject({ status: 'FAILED', reason: 'stopped by agent shutdown', executed_steps: 1, failed_step: 'long' });
    expect(final.status_details.steps[0]).toMatchObject({ name: 'long', failure_reason: 'stopped by agent shutdown' });
    expect(await findJobProcesses([job.job_id])).toEqual([]);
  });
});
