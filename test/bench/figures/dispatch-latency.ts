// Figure 7: median time from queueing a job on an idle agent to its first
// step starting, polling.interval 30 s. Time is scaled (the wait for the next
// poll runs 10x faster); the part after the poll answer is real time.
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createBenchSetup, pause, preciseNow, startBenchAgent, waitUntil } from '../lib/agent-runner.js';
import type { BenchTarget } from '../lib/bench-target.js';
import { buildCommandJob, isJobFinal, readJobTiming } from '../lib/job-documents.js';
import { formatMs, median, type ResultRow } from '../lib/results.js';

const INTERVAL_MS = 30_000;
const SCALE = 10;

/** Measures figure 7 for the host target with `samples` jobs. */
export async function measureDispatchLatency(target: BenchTarget, samples: number): Promise<ResultRow> {
  const setup = await createBenchSetup({ polling: { interval: '30s' } });
  // The step (run as the unprivileged user) writes the moment it started here.
  const marks = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-bench-marks-'));
  await chmod(marks, 0o1777);
  const latencies: number[] = [];
  const afterPoll: number[] = [];
  try {
    const agent = startBenchAgent(target, setup.dirs, { CLOUDJOBS_TEST_TIME_SCALE: String(SCALE) });
    try {
      await waitUntil(() => agent.assertAlive() === undefined && setup.polls() >= 1, 60_000, 'the first poll');
      for (let i = 0; i < samples; i += 1) {
        // Queue at a uniformly random moment of the agent's idle interval.
        await pause(Math.random() * (INTERVAL_MS / SCALE));
        const mark = path.join(marks, `start-${i}`);
        const queuedAt = preciseNow();
        const job = setup.cloud.queueJob(setup.device.uuid, { name: `latency ${i}`, document: buildCommandJob([`/bin/sh,-c,date +%s%N > ${mark}`]) });
        await waitUntil(() => agent.assertAlive() === undefined && isJobFinal(setup.cloud, job.job_id), 120_000, `latency job ${i}`, 10);
        const timing = readJobTiming(setup.cloud, job.job_id);
        if (timing.status !== 'SUCCEEDED') throw new Error(`latency job ${i} ended ${timing.status}`);
        const startedAt = Number(BigInt((await readFile(mark, 'utf8')).trim()) / 1000n) / 1000;
        // The wait for the poll ran SCALE times faster; the dispatch after it is real.
        latencies.push((timing.handedOutAt - queuedAt) * SCALE + (startedAt - timing.handedOutAt));
        afterPoll.push(startedAt - timing.handedOutAt);
      }
    } finally {
      await agent.stop();
    }
  } finally {
    await rm(marks, { recursive: true, force: true });
    await setup.close();
  }
  const expected = INTERVAL_MS / 2;
  const figure = median(latencies);
  return {
    row: '7 dispatch latency (x64)',
    baseline: `${formatMs(expected)} (interval/2)`,
    figure: formatMs(figure),
    ratio: figure / expected,
    target: 'about interval/2; report',
    verdict: 'report',
    note:
      `median of ${samples} jobs queued at random moments of an idle agent's 30 s interval (jitter 10%), played at CLOUDJOBS_TEST_TIME_SCALE=${SCALE}: ` +
      `latency = (hand-out - queue) x ${SCALE} + (first step start - hand-out), the step stamping its own start with \`date +%s%N\`. ` +
      `Range ${formatMs(Math.min(...latencies))}..${formatMs(Math.max(...latencies))}; from the poll answer to the step running: median ${formatMs(median(afterPoll))} (real time). ` +
      `Polling cannot do better than interval/2 on average; only a push channel could.`,
  };
}
