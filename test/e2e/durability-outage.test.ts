// Issue 4, "Done when" 1: the cloud goes down before a job finishes and comes
// back 2 (agent) minutes later; the final report arrives exactly once, after
// the IN_PROGRESS ones, with every field, and nothing follows it.
import { afterEach, describe, expect, it } from 'vitest';
import { expectOneFinalLast, outputLines, readLines, reportBodies, stepName, appendJob, createSharedDir } from './durability-helpers.js';
import { stopAgent } from './harness.js';
import { createScope } from './polling-helpers.js';

// 40x: 2 agent-minutes take 3 s.
const SCALE = 40;
const env = { CLOUDJOBS_TEST_TIME_SCALE: String(SCALE) };

const scope = createScope();
afterEach(() => scope.cleanup());

describe('cloud outage while a job runs', () => {
  it('delivers the final report exactly once, complete, after the IN_PROGRESS ones, when the cloud is back 2 minutes later', async () => {
    const started = await scope.cloud();
    const { cloud } = started;
    // Scaled 40x: poll every 0.75 s, back off up to 1.5 s, progress every 0.375 s (real time).
    const dirs = await scope.dirs(cloud, started.device, {
      polling: { interval: '30s', max_backoff: '1m' },
      jobs: { progress_interval: '15s' },
    });
    const shared = await createSharedDir(dirs);
    const file = `${shared}/outage.log`;
    const job = cloud.queueJob(started.device.uuid, { name: 'outage job', document: appendJob(file, 3, 0.3) });
    const agent = scope.agent(dirs, env);

    await cloud.waitFor((c) => c.patches(job.job_id).some((p) => (p.body as { status?: string }).status === 'IN_PROGRESS'), 20_000, 'a first IN_PROGRESS report');
    await cloud.down();
    const downAt = Date.now();
    await agent.waitForOutput(/job outage job ended SUCCEEDED: 3 of 3 steps succeeded/);
    await agent.waitForOutput(/sending the (IN_PROGRESS|SUCCEEDED) report failed: connection refused by .*; it stays queued, retrying in/);
    expect(cloud.patches(job.job_id).filter((p) => (p.body as { status?: string }).status === 'SUCCEEDED')).toHaveLength(0);
    // Up again 2 agent-minutes after it went down.
    // (a loaded machine may make it longer; never shorter)
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 120_000 / SCALE - (Date.now() - downAt))));
    await cloud.up();
    const upAt = Date.now();
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 20_000);
    // another agent-minute: nothing more may arrive for the job
    await new Promise((resolve) => setTimeout(resolve, 60_000 / SCALE));
    await agent.waitForOutput(/final report SUCCEEDED delivered/);

    const final = expectOneFinalLast(cloud, job.job_id);
    expect(cloud.patches(job.job_id).at(-1)!.at).toBeGreaterThanOrEqual(upAt);
    expect(final).toMatchObject({
      status: 'SUCCEEDED',
      exit_code: 0,
      stdout: `=== Step: ${stepName(1)} ===\ndid 1\n=== Step: ${stepName(2)} ===\ndid 2\n=== Step: ${stepName(3)} ===\ndid 3\n`,
      stderr: '',
      reason: '3 of 3 steps succeeded',
      executed_steps: 3,
      failed_step: null,
    });
    expect(final.status_details.steps.map((s) => s.name)).toEqual([stepName(1), stepName(2), stepName(3)]);
    expect(final.status_details.steps.map((s) => s.exit_code)).toEqual([0, 0, 0]);
    expect(reportBodies(cloud, job.job_id).slice(0, -1).every((b) => b.status === 'IN_PROGRESS')).toBe(true);
    expect(await readLines(file)).toEqual(['step 1', 'step 2', 'step 3']);
    // the outage was said once, not once per retry
    expect(outputLines(agent, /sending the \w+ report failed/)).toHaveLength(1);
    expect(outputLines(agent, /reports are delivered again/)).toHaveLength(1);

    const exit = await stopAgent(agent);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(reportBodies(cloud, job.job_id).filter((b) => b.status === 'SUCCEEDED')).toHaveLength(1);
  });
});
