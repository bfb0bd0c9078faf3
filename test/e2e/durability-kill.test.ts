// Issue 4, "Done when" 2: kill -9 of the agent at 20 random points of a 5-step
// job, then restart: every job ends with exactly one final report, no step
// runs twice, none stays IN_PROGRESS; a re-offered finished job is not run
// again and its stored final report is sent again.
//
// The kill points are seeded (printed; replay with CLOUDJOBS_TEST_SEED=<seed>)
// and stratified over the time a job takes from the agent's start to its final
// report on this machine (measured first), so they fall before the job starts,
// inside steps, between steps and after the final.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import type { PatchRecord, ReferenceCloud } from '../cloud/reference-cloud.js';
import { createSeededRandom } from '../seeded-random.js';
import {
  appendJob,
  chooseSeed,
  createSharedDir,
  expectCompleteReport,
  findJobProcesses,
  isFinal,
  killHard,
  readLines,
  reapOrphanSteps,
  stepName,
} from './durability-helpers.js';
import type { ReportBody } from './polling-helpers.js';
import { createAgentDirs, removeDirs, startAgent, startCloudWithDevice, stopAgent, waitFor, type AgentDirs, type AgentProcess } from './harness.js';

const STEPS = 5;
const STEP_SLEEP_SECONDS = 0.1;
const KILLS = 20;
// A final re-sent because the kill fell between the cloud's answer and the
// outbox forgetting the report (at-least-once delivery) must follow the first
// copy by no more than this.
const RESEND_WINDOW_MS = 1000;
// The agent journals a job as soon as it has read the offer. A kill this soon
// after the cloud answered may fall before that: the job is then known only to
// the server, which never re-delivers it (test/cloud/CONTRACT.md "Next job") -- the one window no
// agent can close. Only a job with no PATCH, no step run and a kill this close
// to its hand-out may stay IN_PROGRESS.
const LOST_OFFER_WINDOW_MS = 150;

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

interface KillRecord {
  job: number;
  delayMs: number;
  killedAt: number;
}

const INTERRUPTED = /^interrupted: the agent stopped (?:while step (\d) of 5 \(append (\d)\) was running|after (\d) of 5 steps had finished|before the first step started); the job was not resumed$/;

describe('kill -9 at random points of a 5-step job', () => {
  it('ends every job with exactly one final report, runs no step twice, leaves none IN_PROGRESS', async () => {
    const seed = chooseSeed();
    console.log(`durability kill -9 test: seed ${seed} (replay with CLOUDJOBS_TEST_SEED=${seed})`);
    const random = createSeededRandom(seed);
    const started = await startCloudWithDevice();
    cloud = started.cloud;
    const { uuid } = started.device;
    dirs = await createAgentDirs(cloud, started.device, { polling: { interval: '100ms' } });
    const shared = await createSharedDir(dirs);
    const fileOf = (n: number): string => `${shared}/job-${n}.log`;

    // A control job, not killed: how long start-up plus a whole job takes here.
    const t0 = Date.now();
    agent = startAgent(dirs);
    const control = cloud.queueJob(uuid, { name: 'control', document: appendJob(fileOf(0), STEPS, STEP_SLEEP_SECONDS), jobId: 'job-0' });
    jobIds.push(control.job_id);
    await cloud.waitForJobStatus(control.job_id, 'SUCCEEDED', 30_000);
    const span = Math.round((Date.now() - t0) * 1.3);
    await killHard(agent);

    const kills: KillRecord[] = [];
    const outputs: string[] = [];
    for (let n = 1; n <= KILLS; n += 1) {
      agent = startAgent(dirs);
      const job = cloud.queueJob(uuid, { name: `job ${n}`, document: appendJob(fileOf(n), STEPS, STEP_SLEEP_SECONDS), jobId: `job-${n}` });
      jobIds.push(job.job_id);
      const delayMs = Math.round(((n - 1 + random()) / KILLS) * span);
      await sleep(delayMs);
      await killHard(agent);
      kills.push({ job: n, delayMs, killedAt: Date.now() });
      outputs.push(`--- agent killed ${delayMs} ms after it started with job-${n} queued ---\n${agent.output()}`);
      // steps of the killed agent run on; let them end (they only sleep) before the next start
      await reapOrphanSteps(jobIds);
    }

    agent = startAgent(dirs);
    const lost = lostOffers(cloud, jobIds, kills);
    const settled = jobIds.filter((id) => !lost.has(id));
    await waitFor(
      () => settled.every((id) => isFinal(cloud!.getJob(id)!.status)),
      60_000,
      () =>
        `every job final on the cloud: ${jobIds.map((id) => `${id}=${cloud!.getJob(id)!.status}`).join(' ')}\n` +
        `${outputs.join('\n')}\n--- last agent ---\n${agent!.output()}`,
    );
    // the delivery loop is idle once the outbox is empty; give stragglers a chance to show
    await sleep(500);

    const outcomes: string[] = [];
    for (const [n, jobId] of jobIds.entries()) {
      const patches = cloud.patches(jobId);
      if (lost.has(jobId) && patches.length === 0) {
        // test/cloud/CONTRACT.md "Next job": a job handed out to an agent that dies before it could journal it is known only to the server
        expect(cloud.getJob(jobId)!.status).toBe('IN_PROGRESS');
        expect(await readLines(fileOf(n))).toEqual([]);
        outcomes.push(`${jobId}: lost with the answer that handed it out (killed ${lost.get(jobId)} ms after the cloud answered)`);
        continue;
      }
      const bodies = patches.map((p) => p.body as ReportBody);
      for (const body of bodies) expectCompleteReport(body);
      const firstFinal = bodies.findIndex((b) => isFinal(b.status));
      expect(firstFinal, `${jobId}: a final report`).toBeGreaterThanOrEqual(0);
      // only IN_PROGRESS before the final, only copies of the final after it
      expect(bodies.slice(0, firstFinal).every((b) => b.status === 'IN_PROGRESS'), `${jobId}: ${bodies.map((b) => b.status)}`).toBe(true);
      const final = bodies[firstFinal]!;
      const after = patches.slice(firstFinal + 1);
      for (const copy of after) {
        expect(copy.body, `${jobId}: a PATCH after its final`).toEqual(final);
        expectResentAfterKill(jobId, patches[firstFinal]!, copy, kills);
      }
      expect(cloud.getJob(jobId)!.status).toBe(final.status);

      const lines = await readLines(fileOf(n));
      expect(new Set(lines).size, `${jobId}: a step ran twice: ${lines.join(', ')}`).toBe(lines.length);
      const ran = lines.length;
      expect(lines).toEqual(Array.from({ length: ran }, (_, i) => `step ${i + 1}`));

      if (final.status === 'SUCCEEDED') {
        expect(final).toMatchObject({ exit_code: 0, reason: '5 of 5 steps succeeded', executed_steps: 5, failed_step: null });
        expect(ran).toBe(STEPS);
        outcomes.push(`${jobId}: SUCCEEDED`);
        continue;
      }
      expect(final.status, `${jobId}: ${final.reason}`).toBe('FAILED');
      const match = INTERRUPTED.exec(final.reason);
      expect(match, `${jobId}: reason ${JSON.stringify(final.reason)}`).not.toBeNull();
      expect(final.status_details.interrupted).toBe(true);
      const [, runningStep, runningName, finishedSteps] = match!;
      if (runningStep !== undefined) {
        const k = Number(runningStep);
        expect(runningName).toBe(String(k));
        expect(final.executed_steps).toBe(k - 1);
        // the journal names step k before its process starts: the kill may land in between
        expect([k - 1, k]).toContain(ran);
        expect(final.status_details.running_steps).toEqual([{ index: k, name: stepName(k) }]);
        outcomes.push(`${jobId}: interrupted in step ${k} (${ran} line(s))`);
      } else if (finishedSteps !== undefined) {
        expect(final.executed_steps).toBe(Number(finishedSteps));
        expect(ran).toBe(Number(finishedSteps));
        outcomes.push(`${jobId}: interrupted after ${finishedSteps} step(s)`);
      } else {
        expect(final.executed_steps).toBe(0);
        expect(ran).toBe(0);
        outcomes.push(`${jobId}: interrupted before its first step`);
      }
      expect(final.status_details.steps.map((s) => s.name)).toEqual(Array.from({ length: final.executed_steps }, (_, i) => stepName(i + 1)));
    }
    console.log(`kill points (ms after start, span ${span} ms): ${kills.map((k) => `job-${k.job}@${k.delayMs}`).join(' ')}\n${outcomes.join('\n')}`);


    // The cloud hands out finished jobs again (same job_id): not run again, the stored final is sent again.
    const failedId = jobIds.find((id) => cloud!.getJob(id)!.status === 'FAILED');
    for (const jobId of [control.job_id, ...(failedId ? [failedId] : [])]) {
      const n = jobIds.indexOf(jobId);
      const before = cloud.patches(jobId);
      const stored = before.at(-1)!.body as ReportBody;
      const linesBefore = await readLines(fileOf(n));
      cloud.queueJob(uuid, { name: `job ${n}`, document: appendJob(fileOf(n), STEPS, STEP_SLEEP_SECONDS), jobId });
      const row = await cloud.waitForJobStatus(jobId, stored.status, 20_000);
      await agent.waitForOutput(new RegExp(`the cloud handed out job job ${n} again, which this agent already finished \\(${stored.status}\\); not running it again, sending its final report again`));
      await sleep(300);
      const resent = cloud.patches(jobId).slice(before.length);
      expect(resent.map((p) => p.body)).toEqual([stored]);
      expect(row.patch_count).toBe(1);
      expect(await readLines(fileOf(n))).toEqual(linesBefore);
      expect(await findJobProcesses([jobId])).toEqual([]);
    }
    expect(agent.output()).not.toMatch(/received job job 0\b/);

    const exit = await stopAgent(agent);
    expect(exit).toEqual({ code: 0, signal: null });
  });
});

// A second copy of a final is fine only when a kill fell between the cloud receiving the first and the agent forgetting it.
function expectResentAfterKill(jobId: string, first: PatchRecord, copy: PatchRecord, kills: readonly KillRecord[]): void {
  const kill = kills.find((k) => k.killedAt >= first.at && k.killedAt - first.at <= RESEND_WINDOW_MS && k.killedAt <= copy.at);
  expect(kill, `${jobId}: its final was sent again at ${copy.at} without a kill right after the first copy (${first.at})`).toBeDefined();
}

// Jobs whose offer a kill may have cut off before the agent journaled them, with the ms from hand-out to kill.
function lostOffers(cloud: ReferenceCloud, jobIds: readonly string[], kills: readonly KillRecord[]): Map<string, number> {
  const lost = new Map<string, number>();
  for (const id of jobIds) {
    const job = cloud.getJob(id)!;
    if (job.status !== 'IN_PROGRESS' || job.patch_count > 0 || job.started_at === null) continue;
    const handedOut = Date.parse(job.started_at);
    const kill = kills.find((k) => k.killedAt >= handedOut && k.killedAt - handedOut <= LOST_OFFER_WINDOW_MS);
    if (kill) lost.set(id, kill.killedAt - handedOut);
  }
  return lost;
}
