// Figure 11 (issue 16.7): the agent's RSS after one parallel step of 99
// members, each writing ~64 MiB (half to stdout, half to stderr), vs its RSS
// idle just before: memory must return near the idle level once the job is
// reported (a review saw 126 -> 283 MB, kept for good).
import { createBenchSetup, pause, startBenchAgent, waitUntil } from '../lib/agent-runner.js';
import type { BenchTarget } from '../lib/bench-target.js';
import { buildCommandJob, isJobFinal } from '../lib/job-documents.js';
import { readRssBytes, startRssSampler } from '../lib/proc-stats.js';
import { formatBytes, type ResultRow } from '../lib/results.js';

/** The job; BENCH_PARALLEL_BYTES scales a member's output down for a quick manual run. */
const MEMBERS = 99;
const MEMBER_BYTES = Number(process.env.BENCH_PARALLEL_BYTES ?? 64 * 1024 * 1024);
// How long the agent idles (polling) after the final report before RSS is read.
const SETTLE_MS = 10_000;
const TARGET_GROWTH = 16 * 1024 * 1024;

function floodJob(): Record<string, unknown> {
  const half = Math.floor(MEMBER_BYTES / 2);
  const flood = `yes 0123456789abcdef | head -c ${half}`;
  return {
    version: '1.0',
    includeStdOut: true,
    steps: [
      {
        name: 'flood',
        parallel: Array.from({ length: MEMBERS }, (_, i) => ({
          name: `member ${i + 1}`,
          type: 'runCommand',
          ignoreStepFailure: true,
          input: { command: ['/bin/sh', '-c', `${flood}; ${flood} >&2`] },
        })),
      },
    ],
  };
}

/** Measures figure 15 for the host target. */
export async function measureParallelMemory(target: BenchTarget): Promise<ResultRow> {
  const setup = await createBenchSetup({ polling: { interval: '1s', jitter: '0%' } });
  let rssIdle: number;
  let rssPeak: number;
  let rssAfter: number;
  let jobMs: number;
  try {
    const agent = startBenchAgent(target, setup.dirs, { CLOUDJOBS_TEST_TIME_SCALE: '5' });
    try {
      await waitUntil(() => agent.assertAlive() === undefined && setup.polls() >= 20, 60_000, 'the agent to poll');
      // a small job first: the job engine's code loads with the first job and stays, which is not what is measured
      const warm = setup.cloud.queueJob(setup.device.uuid, { name: 'warm-up', document: buildCommandJob(['echo,warm']) });
      await waitUntil(() => agent.assertAlive() === undefined && isJobFinal(setup.cloud, warm.job_id), 60_000, 'the warm-up job');
      await pause(SETTLE_MS);
      rssIdle = readRssBytes(agent.pid);
      const sampler = startRssSampler(agent.pid, 20);
      const started = Date.now();
      const job = setup.cloud.queueJob(setup.device.uuid, { name: '99-member flood', document: floodJob() });
      try {
        await waitUntil(() => agent.assertAlive() === undefined && isJobFinal(setup.cloud, job.job_id), 900_000, 'the 99-member job to finish', 20);
      } finally {
        rssPeak = sampler.stop();
      }
      jobMs = Date.now() - started;
      const status = setup.cloud.getJob(job.job_id)?.status;
      if (status !== 'SUCCEEDED') throw new Error(`the job ended ${status}`);
      await pause(SETTLE_MS);
      agent.assertAlive();
      rssAfter = readRssBytes(agent.pid);
    } finally {
      await agent.stop();
    }
  } finally {
    await setup.close();
  }
  const growth = rssAfter - rssIdle;
  return {
    row: `11 RSS after a ${MEMBERS}-member parallel job (${target.arch})`,
    baseline: formatBytes(rssIdle),
    figure: `${growth >= 0 ? '+' : ''}${formatBytes(growth)}`,
    ratio: rssAfter / rssIdle,
    target: `< +${formatBytes(TARGET_GROWTH)}`,
    verdict: growth < TARGET_GROWTH ? 'met' : 'missed',
    note:
      `one parallel step of ${MEMBERS} members (jobs.max_parallel default), each writing ${formatBytes(MEMBER_BYTES)} ` +
      `(half stdout, half stderr), ${(jobMs / 1000).toFixed(1)} s from queueing to the final report; agent VmRSS ${SETTLE_MS / 1000} s after the final report ` +
      `vs idle ${SETTLE_MS / 1000} s after a one-step warm-up job, just before queueing (the baseline column); peak ${formatBytes(rssPeak)} while it ran. ratio = after/idle.`,
  };
}
