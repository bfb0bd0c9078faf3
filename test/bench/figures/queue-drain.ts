// Figure 6: 50 one-step jobs queued at once, polling.interval 30 s (real
// time): time until all 50 are SUCCEEDED. Baseline: the same 50 commands
// spawned back to back by the bare Node binary (the work itself).
import path from 'node:path';
import { createBenchSetup, preciseNow, runToEnd, startBenchAgent, waitUntil } from '../lib/agent-runner.js';
import type { BenchTarget } from '../lib/bench-target.js';
import { buildCommandJob, isJobFinal, readJobTiming } from '../lib/job-documents.js';
import { formatMs, type ResultRow } from '../lib/results.js';

const JOBS = 50;
const TARGET_MS = 5000;
// What the seed adapter needs: one job per interval.
const SEED_MS = JOBS * 30_000;

/** Measures figure 6 for the host target. */
export async function measureQueueDrain(target: BenchTarget, benchDir: string): Promise<ResultRow> {
  const setup = await createBenchSetup({ polling: { interval: '30s' } });
  let drainMs: number;
  let fromFirstMs: number;
  try {
    const queuedAt = preciseNow();
    const jobs = setup.cloud.queueJobs(setup.device.uuid, JOBS, { name: 'drain', document: buildCommandJob(['/bin/true']) });
    const agent = startBenchAgent(target, setup.dirs);
    try {
      await waitUntil(() => agent.assertAlive() === undefined && jobs.every((job) => isJobFinal(setup.cloud, job.job_id)), 120_000, `${JOBS} jobs to finish`, 10);
    } finally {
      await agent.stop();
    }
    const timings = jobs.map((job) => readJobTiming(setup.cloud, job.job_id));
    const failed = timings.filter((t) => t.status !== 'SUCCEEDED');
    if (failed.length > 0) throw new Error(`${failed.length} jobs did not succeed (first: ${failed[0]!.status})`);
    const lastAt = Math.max(...timings.map((t) => t.finishedAt));
    drainMs = lastAt - queuedAt;
    fromFirstMs = lastAt - Math.min(...timings.map((t) => t.handedOutAt));
  } finally {
    await setup.close();
  }
  const baselineMs = Number(await runToEnd([...target.node, path.join(benchDir, 'baseline/spawn-sequence.js'), String(JOBS), '/bin/true']));
  return {
    row: `6 drain ${JOBS} queued jobs (x64)`,
    baseline: formatMs(baselineMs),
    figure: formatMs(drainMs),
    ratio: drainMs / baselineMs,
    target: `< ${formatMs(TARGET_MS)}`,
    verdict: drainMs < TARGET_MS ? 'met' : 'missed',
    note:
      `${JOBS} one-step /bin/true jobs queued, then \`cloudjobs run\` started with polling.interval 30 s, real time (no scaling): from queueing to the last SUCCEEDED PATCH, ` +
      `agent start included (${formatMs(fromFirstMs)} from the first hand-out). The target is absolute; baseline: the same ${JOBS} commands spawned back to back ` +
      `by the bare Node binary. The seed adapter takes one job per interval: ${formatMs(SEED_MS)} (${(SEED_MS / drainMs).toFixed(0)}x slower).`,
  };
}
