// Every job status through the reference cloud, run by the built executable
// (issue 3, "Done when"): each job gets IN_PROGRESS first, then exactly one
// final PATCH, every PATCH with every test/cloud/CONTRACT.md field.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PatchRecord, ReferenceCloud } from '../cloud/reference-cloud.js';
import { loadJobFixture } from '../fixtures/jobs/load-job-fixture.js';
import { commandJob, RUN_USER, type AgentProcess, type TestDevice } from './harness.js';
import { createScope, expectCleanStop, expectFullBodies, expectOneFinal, logLines, type ReportBody } from './polling-helpers.js';

const scope = createScope();
let cloud: ReferenceCloud;
let device: TestDevice;
let agent: AgentProcess;

beforeAll(async () => {
  ({ cloud, device } = await scope.cloud({ generation: 'devices', cancelMode: '409' }));
  // a user that does not exist is allowed on purpose: the existence check must catch it
  const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: 'devices' }, jobs: { allowed_users: `${RUN_USER},no-such-user-e2e` } });
  agent = scope.agent(dirs);
  await agent.waitForOutput(/no pending job; polling again in/);
});

afterAll(async () => {
  try {
    await expectCleanStop(agent);
  } finally {
    await scope.cleanup();
  }
});

/** Queues a job, waits for its final status and checks the report sequence; returns the final body. */
async function runJob(name: string, document: unknown, status: string, timeoutSeconds?: number): Promise<{ final: ReportBody; patches: PatchRecord[] }> {
  const job = cloud.queueJob(device.uuid, { name, document, ...(timeoutSeconds === undefined ? {} : { timeoutSeconds }) });
  await cloud.waitForJobStatus(job.job_id, undefined, 30_000);
  // the agent's own word that the final report went out: every PATCH of the job is in by now
  await agent.waitForOutput(new RegExp(`final report ${status} delivered jobId=${job.job_id}`), 15_000);
  const patches = cloud.patches(job.job_id);
  const final = expectOneFinal(patches, status);
  expect(cloud.getJob(job.job_id)?.status).toBe(status);
  return { final, patches };
}

function expectStartedFirst(patches: PatchRecord[]): void {
  const bodies = expectFullBodies(patches);
  expect(bodies[0]?.status).toBe('IN_PROGRESS');
  expect(bodies[0]).toMatchObject({ exit_code: null, executed_steps: 0, failed_step: null });
}

describe('job statuses through the cloud', () => {
  it('SUCCEEDED: every step ran, output headed per step, details per step', async () => {
    const { final, patches } = await runJob('ok', commandJob(['echo', 'one'], ['printf', 'two']), 'SUCCEEDED');
    expectStartedFirst(patches);
    expect(final).toMatchObject({ status: 'SUCCEEDED', exit_code: 0, stderr: '', executed_steps: 2, failed_step: null });
    expect(final.stdout).toBe('=== Step: step 1 ===\none\n=== Step: step 2 ===\ntwo\n');
    expect(final.reason).toBe('2 of 2 steps succeeded');
    expect(final.status_details.steps).toHaveLength(2);
    expect(final.status_details.steps?.[0]).toMatchObject({ name: 'step 1', argv: ['echo', 'one'], user: RUN_USER, exit_code: 0, signal: null, timed_out: false });
    expect(final.status_details).toMatchObject({ agent_version: expect.any(String), duration_ms: expect.any(Number) });
  });

  it('FAILED: a non-zero exit stops the job at that step', async () => {
    const { final, patches } = await runJob('exit 3', commandJob(['sh', '-c', 'echo before; exit 3'], ['echo', 'never']), 'FAILED');
    expectStartedFirst(patches);
    expect(final).toMatchObject({ status: 'FAILED', exit_code: 3, executed_steps: 1, failed_step: 'step 1' });
    expect(final.reason).toBe('step 1 failed: exited with code 3');
    expect(final.stdout).toBe('=== Step: step 1 ===\nbefore\n');
  });

  it('FAILED: more stderr lines than allowStdErr', async () => {
    const document = {
      version: '1.0',
      includeStdOut: true,
      steps: [{ action: { name: 'Noisy', type: 'runCommand', allowStdErr: 2, input: { command: ['sh', '-c', 'echo a >&2; echo b >&2; echo c >&2'] } } }],
    };
    const { final, patches } = await runJob('noisy', document, 'FAILED');
    expectStartedFirst(patches);
    expect(final).toMatchObject({ status: 'FAILED', exit_code: 0, executed_steps: 1, failed_step: 'Noisy' });
    expect(final.reason).toBe('step 1 ("Noisy") failed: wrote 3 lines to stderr, allowStdErr is 2');
    expect(final.stderr).toBe('=== Step: Noisy ===\na\nb\nc\n');
  });

  it('TIMED_OUT: timeout_seconds 1 against sleep 30', async () => {
    const { final, patches } = await runJob('too slow', commandJob(['echo', 'started'], ['sleep', '30']), 'TIMED_OUT', 1);
    expectStartedFirst(patches);
    expect(final).toMatchObject({ status: 'TIMED_OUT', executed_steps: 2, failed_step: 'step 2' });
    expect(final.reason).toBe("step 2 was stopped: the job's time limit of 1s ran out");
    expect(final.stdout).toBe('=== Step: step 1 ===\nstarted\n=== Step: step 2 ===\n');
    expect(final.status_details.steps?.[1]).toMatchObject({ timed_out: true });
  });

  it('REJECTED: a malformed document names each problem and runs nothing', async () => {
    const document = {
      version: '1.0',
      steps: [
        { action: { name: 'Script', type: 'runScript', input: { script: 'x' } } },
        { name: 'No command', type: 'runCommand', input: {} },
      ],
    };
    const { final, patches } = await runJob('malformed', document, 'REJECTED');
    expect(patches.map((p) => (p.body as ReportBody).status)).toEqual(['REJECTED']);
    expect(final).toMatchObject({ status: 'REJECTED', exit_code: null, stdout: '', stderr: '', executed_steps: 0, failed_step: null });
    expect(final.status_details.problems).toEqual([
      'step 1 ("Script"): type "runScript" is not supported; supported types are runCommand and runHandler',
      'step 2 ("No command"): input.command is missing; it must be a non-empty string or array of strings',
    ]);
    expect(final.reason).toBe(`job document rejected: ${(final.status_details.problems as string[]).join('; ')}`);
  });

  it('REJECTED: a runAsUser that does not exist', async () => {
    const document = {
      version: '1.0',
      steps: [{ name: 'Who', type: 'runCommand', runAsUser: 'no-such-user-e2e', input: { command: 'id' } }],
    };
    const { final } = await runJob('unknown user', document, 'REJECTED');
    expect(final).toMatchObject({ status: 'REJECTED', executed_steps: 0 });
    expect(final.reason).toMatch(/^job document rejected: step 1 \("Who"\): .*no-such-user-e2e.*(does not exist|no such user|unknown)/i);
  });

  it('REJECTED: a step asking for root when root is not allowed (fixture root-step.json)', async () => {
    const { final, patches } = await runJob('as root', loadJobFixture('malformed/root-step.json'), 'REJECTED');
    expect(patches).toHaveLength(1);
    expect(final).toMatchObject({ status: 'REJECTED', executed_steps: 0, exit_code: null });
    expect(final.reason).toBe(`job document rejected: step 1 ("Who"): runAsUser "root" is not in jobs.allowed_users (${RUN_USER}, no-such-user-e2e)`);
  });

  it('CANCELED: the cloud cancels a running job (409), the agent stops it and says nothing more but CANCELED', async () => {
    const job = cloud.queueJob(device.uuid, { name: 'to cancel', document: commandJob(['sleep', '30']) });
    await cloud.waitFor((c) => c.patches(job.job_id).length >= 1, 15_000, 'the IN_PROGRESS report');
    cloud.cancelJob(job.job_id);
    // the next progress PATCH (progress_interval 1s) gets 409; the agent stops the step
    await agent.waitForOutput(/the cloud canceled this job; stopping it/, 15_000);
    await agent.waitForOutput(new RegExp(`job to cancel ended CANCELED`), 15_000);
    await agent.waitForOutput(new RegExp(`final report CANCELED delivered jobId=${job.job_id}`), 15_000);
    const patches = cloud.patches(job.job_id);
    const bodies = expectFullBodies(patches);
    const statuses = bodies.map((b) => b.status);
    const conflict = patches.findIndex((p) => p.answer === 409);
    expect(conflict, statuses.join(',')).toBeGreaterThan(0);
    expect(statuses.slice(0, conflict + 1).every((s) => s === 'IN_PROGRESS')).toBe(true);
    // after the cancel answer: nothing, or one final CANCELED (which the server accepts)
    const after = patches.slice(conflict + 1);
    expect(after.map((p) => (p.body as ReportBody).status)).toEqual(['CANCELED']);
    expect(after[0]?.answer).toBe(200);
    const final = after[0]?.body as ReportBody;
    expect(final).toMatchObject({ status: 'CANCELED', executed_steps: 1, failed_step: 'step 1' });
    expect(final.status_details.steps?.[0]).toMatchObject({ canceled: true });
    expect(cloud.getJob(job.job_id)?.status).toBe('CANCELED');
    // the step's process is gone: no sleep 30 of this job is left (its pid in the details)
    const ps = spawnSync('ps', ['-u', RUN_USER, '-o', 'args='], { encoding: 'utf8' });
    expect(ps.stdout.split('\n').filter((l) => l.trim() === 'sleep 30')).toEqual([]);
    // nothing more arrives for it
    const count = cloud.patches(job.job_id).length;
    const next = cloud.queueJob(device.uuid, { name: 'after cancel', document: commandJob(['true']) });
    await cloud.waitForJobStatus(next.job_id, 'SUCCEEDED', 15_000);
    expect(cloud.patches(job.job_id)).toHaveLength(count);
  });

  it('the Iotistic health-check template runs unchanged', async () => {
    const document = loadJobFixture('iotistic-health-check.template.json', { SERVICE_NAME: 'ssh' });
    // systemctl works only where systemd runs: the third step's outcome is whatever it is on this machine
    const local = spawnSync('systemctl', ['status', 'ssh'], { stdio: 'ignore' });
    const expected = local.status === 0 ? 'SUCCEEDED' : 'FAILED';
    const { final, patches } = await runJob('Test Health Check', document, expected);
    expectStartedFirst(patches);
    expect(final.executed_steps).toBe(3);
    const steps = final.status_details.steps ?? [];
    expect(steps.map((s) => s.name)).toEqual(['Check Disk Space', 'Check Memory', 'Check Services']);
    expect(steps.map((s) => s.argv)).toEqual([['df', '-h'], ['free', '-h'], ['systemctl', 'status', 'ssh']]);
    expect(steps.slice(0, 2).map((s) => s.exit_code)).toEqual([0, 0]);
    expect(final.stdout).toMatch(/^=== Step: Check Disk Space ===\nFilesystem/);
    expect(final.stdout).toMatch(/\n=== Step: Check Memory ===\n\s+total/);
    expect(final.stdout).toContain('\n=== Step: Check Services ===\n');
    if (expected === 'FAILED') {
      expect(final.failed_step).toBe('Check Services');
      expect(final.exit_code).toBe(steps[2]?.exit_code);
      expect(final.exit_code).not.toBe(0);
    } else {
      expect(final.failed_step).toBeNull();
    }
  });

  it('the seed guide\'s shape: a command without commas means words ("echo restart redis" is three)', async () => {
    const document = {
      version: '1.0',
      steps: [{ action: { type: 'runCommand', input: { command: 'echo restart redis' } } }],
      includeStdOut: true,
    };
    const { final, patches } = await runJob('Restart Redis Service', document, 'SUCCEEDED');
    expectStartedFirst(patches);
    expect(final).toMatchObject({ status: 'SUCCEEDED', exit_code: 0, executed_steps: 1, failed_step: null });
    expect(final.status_details.steps?.[0]).toMatchObject({ argv: ['echo', 'restart', 'redis'] });
    expect(final.stdout).toMatch(/^=== Step: .+ ===\nrestart redis\n$/);
    expect(logLines(agent.output(), 'INFO', /job Restart Redis Service ended SUCCEEDED/)).toHaveLength(1);
  });
});
