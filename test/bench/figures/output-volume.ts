// Figure 5: one step writing 256 MiB to stdout through the agent vs the same
// command writing to /dev/null; wall time and the agent's RSS growth.
import { createBenchSetup, pause, preciseNow, runToEnd, startBenchAgent, waitUntil } from '../lib/agent-runner.js';
import type { BenchTarget } from '../lib/bench-target.js';
import { buildCommandJob, isJobFinal, readJobTiming } from '../lib/job-documents.js';
import { readRssBytes, startRssSampler } from '../lib/proc-stats.js';
import { formatBytes, formatMs, judgeAtMost, type ResultRow } from '../lib/results.js';

const BYTES = 256 * 1024 * 1024;
const PIPELINE = `yes 0123456789abcdef | head -c ${BYTES}`;
const TARGET_RATIO = 1.3;
const TARGET_GROWTH = 16 * 1024 * 1024;

/** Measures figure 5 (two rows: wall time and RSS growth) for the host target. */
export async function measureOutputVolume(target: BenchTarget): Promise<ResultRow[]> {
  const setup = await createBenchSetup({ polling: { interval: '1s', jitter: '0%' } });
  let jobMs: number;
  let rssBefore: number;
  let rssPeak: number;
  let reportedBytes: number;
  try {
    const agent = startBenchAgent(target, setup.dirs, { CLOUDJOBS_TEST_TIME_SCALE: '5' });
    try {
      await waitUntil(() => agent.assertAlive() === undefined && setup.polls() >= 3, 60_000, 'the agent to poll');
      await pause(300);
      rssBefore = readRssBytes(agent.pid);
      const sampler = startRssSampler(agent.pid, 10);
      const job = setup.cloud.queueJob(setup.device.uuid, {
        name: '256 MiB of stdout',
        document: buildCommandJob([`/bin/sh,-c,${PIPELINE}`]),
      });
      try {
        await waitUntil(() => agent.assertAlive() === undefined && isJobFinal(setup.cloud, job.job_id), 300_000, 'the 256 MiB job to finish', 10);
      } finally {
        rssPeak = sampler.stop();
      }
      const timing = readJobTiming(setup.cloud, job.job_id);
      if (timing.status !== 'SUCCEEDED') throw new Error(`the job ended ${timing.status}`);
      jobMs = timing.finishedAt - timing.handedOutAt;
      const final = setup.cloud.patches(job.job_id).at(-1)?.rawBody ?? '';
      reportedBytes = Buffer.byteLength(final);
    } finally {
      await agent.stop();
    }
  } finally {
    await setup.close();
  }
  const baselineMs = await medianWallMs(`${PIPELINE} > /dev/null`);
  // The least any reader of a pipe adds: the same bytes through one more pipe into cat.
  const floorMs = await medianWallMs(`${PIPELINE} | cat > /dev/null`);
  const ratio = jobMs / baselineMs;
  const growth = rssPeak - rssBefore;
  return [
    {
      row: '5 256 MiB stdout: wall (x64)',
      baseline: formatMs(baselineMs),
      figure: formatMs(jobMs),
      ratio,
      target: `<= ${TARGET_RATIO}x`,
      verdict: judgeAtMost(ratio, TARGET_RATIO),
      note:
        `one runCommand step \`sh -c '${PIPELINE}'\`, from hand-out to the final SUCCEEDED PATCH (final report ${formatBytes(reportedBytes)}: bounded output) ` +
        `vs the same pipeline with \`> /dev/null\` spawned by the harness (median of 3).`,
    },
    {
      row: '5 256 MiB stdout: floor, piped to cat (x64)',
      baseline: formatMs(baselineMs),
      figure: formatMs(floorMs),
      ratio: floorMs / baselineMs,
      target: 'report',
      verdict: 'report',
      note:
        `what any reader of the step's output costs on this machine: the same pipeline piped into \`cat > /dev/null\` (a C program doing nothing but read) ` +
        `vs \`> /dev/null\`, median of 3 each. The agent's wall-time ratio cannot go below this one.`,
    },
    {
      row: '5 256 MiB stdout: RSS growth (x64)',
      baseline: formatBytes(rssBefore),
      figure: `+${formatBytes(growth)}`,
      ratio: rssPeak / rssBefore,
      target: `< +${formatBytes(TARGET_GROWTH)}`,
      verdict: growth < TARGET_GROWTH ? 'met' : 'missed',
      note: `agent VmRSS sampled every 10 ms while the job ran: peak ${formatBytes(rssPeak)} vs ${formatBytes(rssBefore)} idle just before queueing (the baseline column); ratio = peak/idle.`,
    },
  ];
}

// Median wall time of 3 runs of a shell command.
async function medianWallMs(command: string): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < 3; i += 1) {
    const t0 = preciseNow();
    await runToEnd(['/bin/sh', '-c', command]);
    runs.push(preciseNow() - t0);
  }
  return runs.sort((a, b) => a - b)[1]!;
}
