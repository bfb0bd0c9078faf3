// Issue 21: what a process says about itself never changes what the cloud is
// told. The built executable against the reference cloud, outside systemd: no
// root word for a restart exists here, so every stop drains, whatever
// processes named `systemctl` or carrying CLOUDJOBS_JOB_ID say. (Hand-overs on
// root's word run under a real systemd: test/integration/self-update.sh.)
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReferenceCloud } from '../cloud/reference-cloud.js';
import { waitFor } from '../cloud/wait-for.js';
import { expectCompleteReport, reapOrphanSteps, reportBodies } from './durability-helpers.js';
import { createAgentDirs, removeDirs, startAgent, startCloudWithDevice, stopAgent, type AgentDirs, type AgentProcess } from './harness.js';

const FAKE_SYSTEMCTL = path.resolve('test/fixtures/restart-bin/systemctl');

let cloud: ReferenceCloud | null = null;
let dirs: AgentDirs | null = null;
let agent: AgentProcess | null = null;
let forged: ChildProcess | null = null;
const jobIds: string[] = [];

afterEach(async () => {
  try {
    if (forged?.pid) process.kill(-forged.pid, 'SIGKILL');
  } catch {
    // the job's last sweep ended it already (it carries the job's id)
  }
  forged = null;
  if (agent) await stopAgent(agent);
  await reapOrphanSteps(jobIds.splice(0));
  if (cloud) await cloud.close();
  if (dirs) await removeDirs(dirs);
  agent = null;
  cloud = null;
  dirs = null;
});

// The repro of issue 21: user `daemon` starts `systemctl ... restart cloudjobs` (argv[0] only) with the job's id in its environment.
function startForgedProcess(jobId: string): ChildProcess {
  const asDaemon = process.getuid?.() === 0 ? ['setpriv', '--reuid=daemon', '--regid=daemon', '--clear-groups'] : [];
  const argv = [...asDaemon, 'env', '-i', `CLOUDJOBS_JOB_ID=${jobId}`, 'bash', '-c', 'exec -a systemctl bash -c "sleep 60; :" restart cloudjobs'];
  return spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', detached: true });
}

describe('the stop cause is never taken from processes', () => {
  it('a forged `systemctl restart cloudjobs` of another user carrying the job id: the stop drains, the failing step is reported FAILED, the next step never runs', async () => {
    const started = await startCloudWithDevice();
    cloud = started.cloud;
    dirs = await createAgentDirs(cloud, started.device, { agent: { drain_timeout: '60s' } });
    agent = startAgent(dirs);
    const job = cloud.queueJob(started.device.uuid, {
      name: 'flash',
      document: {
        version: '1.0',
        includeStdOut: true,
        steps: [
          { action: { name: 'Flash', type: 'runCommand', input: { command: ['/bin/sh', '-c', 'sleep 3; echo bad >&2; exit 3'] } } },
          { action: { name: 'Report', type: 'runCommand', input: { command: ['echo', 'FLASHED'] } } },
        ],
      },
      jobId: 'forged-1',
    });
    jobIds.push(job.job_id);
    await agent.waitForOutput(/starting step 1/);
    forged = startForgedProcess(job.job_id);
    const pid = forged.pid!;
    await waitFor(async () => (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).startsWith('systemctl\0'), 5000, 'the forged process');
    agent.kill('SIGTERM');
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    expect(agent.output()).not.toContain('restarts the agent');
    const bodies = reportBodies(cloud, job.job_id);
    for (const body of bodies) expectCompleteReport(body);
    const finals = bodies.filter((b) => b.status !== 'IN_PROGRESS');
    expect(finals).toHaveLength(1);
    expect(finals[0]).toMatchObject({ status: 'FAILED', exit_code: 3, executed_steps: 1, failed_step: 'Flash' });
    expect(finals[0]!.stdout).not.toContain('FLASHED');
  });

  it('a step running a `systemctl restart cloudjobs` that is only a process (no systemd job): not believed; the drain cuts it and reports it cut', async () => {
    const started = await startCloudWithDevice();
    cloud = started.cloud;
    dirs = await createAgentDirs(cloud, started.device, { jobs: { allowed_users: 'root' }, agent: { drain_timeout: '2s' } });
    const restart = { action: { name: 'Restart', type: 'runCommand', runAsUser: 'root', input: { command: [FAKE_SYSTEMCTL, 'restart', 'cloudjobs'] } } };
    const after = { action: { name: 'After', type: 'runCommand', input: { command: ['echo', 'after'] } } };
    agent = startAgent(dirs);
    const job = cloud.queueJob(started.device.uuid, {
      name: 'restart the agent',
      document: { version: '1.0', includeStdOut: true, steps: [restart, after] },
      jobId: 'restart-1',
    });
    jobIds.push(job.job_id);
    // the test double sends the agent SIGTERM itself and waits, as `systemctl restart` would
    expect(await agent.exited).toEqual({ code: 0, signal: null });
    expect(agent.output()).toContain('did not finish within the drain timeout');
    const finals = reportBodies(cloud, job.job_id).filter((b) => b.status !== 'IN_PROGRESS');
    expect(finals).toHaveLength(1);
    expect(finals[0]).toMatchObject({ status: 'FAILED', reason: 'stopped by agent shutdown', executed_steps: 1 });
    expect(finals[0]!.stdout).not.toContain('after');
  });
});
