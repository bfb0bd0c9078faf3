// Figure 4: a job of 200 /bin/true steps vs a plain Node script spawning
// /bin/true 200 times in a row (same Node binary), wall time.
import path from 'node:path';
import { createBenchSetup, runToEnd, startBenchAgent, waitUntil } from '../lib/agent-runner.js';
import type { BenchTarget } from '../lib/bench-target.js';
import { buildCommandJob, isJobFinal, readJobTiming } from '../lib/job-documents.js';
import { formatMs, judgeAtMost, type ResultRow } from '../lib/results.js';
import { DOCUMENT_LIMITS } from '../../../src/jobs/document.js';

const STEPS = 200;
const TARGET = 1.3;

/** Measures figure 4 for one target. */
export async function measureStepOverhead(target: BenchTarget, benchDir: string): Promise<ResultRow> {
  const first = await runStepJob(target, STEPS);
  let steps = STEPS;
  let jobMs = first.jobMs;
  let rejection = '';
  if (first.status === 'REJECTED') {
    // The agent caps steps per job; measure at its cap and say so.
    steps = Math.min(STEPS, DOCUMENT_LIMITS.maxSteps);
    rejection = `The agent REJECTED the ${STEPS}-step job (${first.reason}); measured at its limit of ${steps} steps instead. `;
    const second = await runStepJob(target, steps);
    if (second.status !== 'SUCCEEDED') throw new Error(`the ${steps}-step job ended ${second.status}: ${second.reason}`);
    jobMs = second.jobMs;
  } else if (first.status !== 'SUCCEEDED') {
    throw new Error(`the job ended ${first.status}: ${first.reason}`);
  }
  const baselineMs = Number(await runToEnd([...target.node, path.join(benchDir, 'baseline/spawn-sequence.js'), String(steps), '/bin/true']));
  const ratio = jobMs / baselineMs;
  return {
    row: `4 ${steps} steps of /bin/true (${target.arch})`,
    baseline: formatMs(baselineMs),
    figure: formatMs(jobMs),
    ratio,
    target: `<= ${TARGET}x`,
    verdict: target.emulated ? 'indicative' : judgeAtMost(ratio, TARGET),
    note:
      rejection +
      `the job's wall time as the cloud saw it: from handing the job out to its final SUCCEEDED PATCH (steps run as the unprivileged run_as_user through setpriv, ` +
      `journal and report included) vs the bare Node binary spawning /bin/true ${steps} times in a row as root (no user switch).` +
      (target.emulated ? ' Under qemu-user: the Node side is emulated, /bin/true and setpriv run natively.' : ''),
  };
}

async function runStepJob(target: BenchTarget, steps: number): Promise<{ status: string; reason: string; jobMs: number }> {
  const setup = await createBenchSetup({ polling: { interval: '30s' } });
  try {
    const job = setup.cloud.queueJob(setup.device.uuid, {
      name: `${steps} x /bin/true`,
      document: buildCommandJob(Array.from({ length: steps }, () => '/bin/true')),
    });
    const agent = startBenchAgent(target, setup.dirs);
    try {
      await waitUntil(() => agent.assertAlive() === undefined && isJobFinal(setup.cloud, job.job_id), target.emulated ? 600_000 : 120_000, `the ${steps}-step job to finish`, 20);
    } finally {
      await agent.stop();
    }
    const timing = readJobTiming(setup.cloud, job.job_id);
    const reason = String(setup.cloud.getJob(job.job_id)?.reason ?? '');
    if (timing.status === 'SUCCEEDED' && timing.executedSteps !== steps) throw new Error(`the job ran ${String(timing.executedSteps)} of ${steps} steps`);
    return { status: timing.status, reason: reason.split('\n')[0]!.slice(0, 200), jobMs: timing.finishedAt - timing.handedOutAt };
  } finally {
    await setup.close();
  }
}
