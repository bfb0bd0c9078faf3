// Figure 4: a job of 200 /bin/true steps vs a plain Node script spawning
// /bin/true 200 times in a row (same Node binary), wall time. Judged for the
// default run_as_user (nobody: the spawn switches ids); reported for a user
// with a supplementary group, whom setpriv switches (one more exec per step).
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { createBenchSetup, runToEnd, startBenchAgent, waitUntil } from '../lib/agent-runner.js';
import type { BenchTarget } from '../lib/bench-target.js';
import { buildCommandJob, isJobFinal, readJobTiming } from '../lib/job-documents.js';
import { formatMs, judgeAtMost, type ResultRow } from '../lib/results.js';
import { DOCUMENT_LIMITS } from '../../../src/jobs/document.js';

const STEPS = 200;
const TARGET = 1.3;

/** Measures figure 4 for one target: the judged row, and the setpriv row when running as root. */
export async function measureStepOverhead(target: BenchTarget, benchDir: string): Promise<ResultRow[]> {
  const first = await runStepJob(target, STEPS, {});
  let steps = STEPS;
  let jobMs = first.jobMs;
  let rejection = '';
  if (first.status === 'REJECTED') {
    // The agent caps steps per job; measure at its cap and say so.
    steps = Math.min(STEPS, DOCUMENT_LIMITS.maxSteps);
    rejection = `The agent REJECTED the ${STEPS}-step job (${first.reason}); measured at its limit of ${steps} steps instead. `;
    const second = await runStepJob(target, steps, {});
    if (second.status !== 'SUCCEEDED') throw new Error(`the ${steps}-step job ended ${second.status}: ${second.reason}`);
    jobMs = second.jobMs;
  } else if (first.status !== 'SUCCEEDED') {
    throw new Error(`the job ended ${first.status}: ${first.reason}`);
  }
  const baselineMs = Number(await runToEnd([...target.node, path.join(benchDir, 'baseline/spawn-sequence.js'), String(steps), '/bin/true']));
  const ratio = jobMs / baselineMs;
  const emulation = target.emulated ? ' Under qemu-user: the Node side is emulated, /bin/true and setpriv run natively.' : '';
  const rows: ResultRow[] = [
    {
      row: `4 ${steps} steps of /bin/true (${target.arch})`,
      baseline: formatMs(baselineMs),
      figure: formatMs(jobMs),
      ratio,
      target: `<= ${TARGET}x`,
      verdict: target.emulated ? 'indicative' : judgeAtMost(ratio, TARGET),
      note:
        rejection +
        `the job's wall time as the cloud saw it: from handing the job out to its final SUCCEEDED PATCH (steps run as the unprivileged run_as_user nobody, ` +
        `the spawn switching uid and gid under the agent's no_new_privs; journal and report included) vs the bare Node binary spawning /bin/true ${steps} times in a row as root (no user switch).` +
        emulation,
    },
  ];
  if (process.getuid?.() === 0 && !target.emulated) {
    const grouped = await withGroupedUser((user) => runStepJob(target, steps, { run_as_user: user, allowed_users: user }));
    if (grouped.status !== 'SUCCEEDED') throw new Error(`the ${steps}-step job as a user with groups ended ${grouped.status}: ${grouped.reason}`);
    rows.push({
      row: `4 ${steps} steps, user with a supplementary group (${target.arch})`,
      baseline: formatMs(baselineMs),
      figure: formatMs(grouped.jobMs),
      ratio: grouped.jobMs / baselineMs,
      target: 'report',
      verdict: 'report',
      note:
        `the same job run as a user with a supplementary group (made for the run), which the spawn cannot set: each step goes through setpriv ` +
        `(uid, gid, initgroups list, capability sets emptied, no_new_privs), one more exec per step. Same baseline.`,
    });
  }
  return rows;
}

// A throw-away account with one supplementary group, removed afterwards.
async function withGroupedUser<T>(use: (user: string) => Promise<T>): Promise<T> {
  const user = `cjbench${process.pid}`;
  execFileSync('groupadd', [`${user}g`]);
  try {
    execFileSync('useradd', ['--no-create-home', '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', '--groups', `${user}g`, user]);
    try {
      return await use(user);
    } finally {
      execFileSync('userdel', [user]);
    }
  } finally {
    execFileSync('groupdel', [`${user}g`]);
  }
}

async function runStepJob(target: BenchTarget, steps: number, jobs: Record<string, string>): Promise<{ status: string; reason: string; jobMs: number }> {
  const setup = await createBenchSetup({ polling: { interval: '30s' }, jobs });
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
