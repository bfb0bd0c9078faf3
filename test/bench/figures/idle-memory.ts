// Figure 1: RSS of `cloudjobs run` after 60 idle polls vs the RSS of the same
// Node made into a single executable of an empty setInterval program.
import { spawn } from 'node:child_process';
import { createBenchSetup, pause, startBenchAgent, waitUntil } from '../lib/agent-runner.js';
import type { BenchTarget } from '../lib/bench-target.js';
import { readRssBytes } from '../lib/proc-stats.js';
import { formatBytes, judgeAtMost, type ResultRow } from '../lib/results.js';

const POLLS = 60;
// polling.interval 1 s played 20x faster: a poll every 50 ms of wall time.
const SCALE = 20;
const TARGET = 1.15;

/** Measures figure 1 for one target. */
export async function measureIdleMemory(target: BenchTarget): Promise<ResultRow> {
  const setup = await createBenchSetup({ polling: { interval: '1s', jitter: '0%' } });
  let agentRss: number;
  let elapsedMs: number;
  try {
    const agent = startBenchAgent(target, setup.dirs, { CLOUDJOBS_TEST_TIME_SCALE: String(SCALE) });
    const started = Date.now();
    try {
      await waitUntil(() => agent.assertAlive() === undefined && setup.polls() >= POLLS, target.emulated ? 300_000 : 60_000, `${POLLS} idle polls`);
      agentRss = readRssBytes(agent.pid);
      elapsedMs = Date.now() - started;
    } finally {
      await agent.stop();
    }
  } finally {
    await setup.close();
  }
  const baselineRss = await measureBaselineRss(target, elapsedMs);
  const ratio = agentRss / baselineRss;
  return {
    row: `1 idle RSS (${target.arch})`,
    baseline: formatBytes(baselineRss),
    figure: formatBytes(agentRss),
    ratio,
    target: `<= ${TARGET}x`,
    verdict: target.emulated ? 'indicative' : judgeAtMost(ratio, TARGET),
    note:
      `VmRSS of \`cloudjobs run\` right after its ${POLLS}th idle poll (polling.interval 1 s at CLOUDJOBS_TEST_TIME_SCALE=${SCALE}: a poll every 50 ms, ` +
      `${(elapsedMs / 1000).toFixed(1)} s after exec) vs VmRSS of a single executable made by src/build/sea.sh from the same Node running ` +
      `\`setInterval(() => {}, 60000)\`, read after the same wall time.` +
      (target.emulated ? ' Under qemu-user: the RSS includes the emulator and its translation cache.' : ''),
  };
}

async function measureBaselineRss(target: BenchTarget, afterMs: number): Promise<number> {
  const child = spawn(target.baselineSea[0]!, target.baselineSea.slice(1), { stdio: 'ignore' });
  const exited = new Promise<void>((resolve, reject) => {
    child.once('exit', () => resolve());
    child.once('error', reject);
  });
  try {
    await pause(afterMs);
    if (child.exitCode !== null) throw new Error(`the baseline executable exited with ${child.exitCode}`);
    return readRssBytes(child.pid!);
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}
