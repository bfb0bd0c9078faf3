// Issue 11: a job that restarts the agent itself, with the built executable
// against the reference cloud. `systemctl restart cloudjobs` is a test double
// (test/fixtures/restart-bin/systemctl) that sends the agent SIGTERM and waits,
// as systemd would; the test starts the agent again, as systemd would.
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReferenceCloud } from '../cloud/reference-cloud.js';
import { createSharedDir, expectCompleteReport, readLines, reapOrphanSteps, reportBodies } from './durability-helpers.js';
import { createAgentDirs, removeDirs, startAgent, startCloudWithDevice, stopAgent, type AgentDirs, type AgentProcess } from './harness.js';

const FAKE_SYSTEMCTL = path.resolve('test/fixtures/restart-bin/systemctl');

let cloud: ReferenceCloud | null = null;
let dirs: AgentDirs | null = null;
let agent: AgentProcess | null = null;
const jobIds: string[] = [];

afterEach(async () => {
  if (agent) await stopAgent(agent);
  await reapOrphanSteps(jobIds.splice(0));
  if (cloud) await cloud.close();
  if (dirs) await removeDirs(dirs);
  agent = null;
  cloud = null;
  dirs = null;
});

describe('a job that restarts the agent', () => {
  it('[mark, systemctl restart cloudjobs, check]: the old agent exits at once, the new one runs the check and sends the one final', async () => {
    const started = await startCloudWithDevice();
    cloud = started.cloud;
    dirs = await createAgentDirs(cloud, started.device, { jobs: { allowed_users: 'root' }, agent: { drain_timeout: '5m' } });
    const shared = await createSharedDir(dirs);
    const marks = path.join(shared, 'marks');
    const mark = (name: string, label: string) => ({
      action: { name, type: 'runCommand', input: { command: ['/bin/sh', '-c', `echo ${label} >> '${marks}'; echo ${label}`] } },
    });
    const restart = { action: { name: 'Restart', type: 'runCommand', runAsUser: 'root', input: { command: [FAKE_SYSTEMCTL, 'restart', 'cloudjobs'] } } };
    agent = startAgent(dirs);
    const job = cloud.queueJob(started.device.uuid, {
      name: 'restart the agent',
      document: { version: '1.0', includeStdOut: true, steps: [mark('Mark', 'before'), restart, mark('Check', 'after')] },
      jobId: 'restart-1',
    });
    jobIds.push(job.job_id);
    // drain_timeout is 5m: exiting now means the agent did not wait for the step that waits for it
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    expect(agent.output()).toContain('restarts the agent');
    expect(cloud.getJob(job.job_id)!.status).toBe('IN_PROGRESS');
    expect(await readLines(marks)).toEqual(['before']);

    agent = startAgent(dirs);
    const final = await cloud.waitForJobStatus(job.job_id, ['SUCCEEDED', 'FAILED', 'TIMED_OUT'], 30_000);
    expect(final.status).toBe('SUCCEEDED');
    expect(await readLines(marks)).toEqual(['before', 'after']);
    const bodies = reportBodies(cloud, job.job_id);
    for (const body of bodies) expectCompleteReport(body);
    expect(bodies.filter((b) => b.status !== 'IN_PROGRESS')).toHaveLength(1);
    expect(bodies.some((b) => b.status === 'IN_PROGRESS' && b.reason.startsWith('resumed after the agent restarted; 2 of 3 steps done'))).toBe(true);
    const last = bodies.at(-1)!;
    expect(last).toMatchObject({ status: 'SUCCEEDED', reason: '3 of 3 steps succeeded', executed_steps: 3 });
    expect(last.stdout).toContain('=== Step: Restart ===\nrestart requested by the step');
    expect(last.status_details).toMatchObject({ resumed_after_restart: true });
  });
});
