// Figure 2: exec to READY=1 of `cloudjobs run` (a fake NOTIFY_SOCKET listener
// times it) vs exec to exit of the bare Node binary running an empty program.
import path from 'node:path';
import { createBenchSetup, runToEnd } from '../lib/agent-runner.js';
import type { BenchTarget } from '../lib/bench-target.js';
import { formatMs, judgeAtMost, median, type ResultRow } from '../lib/results.js';

const TARGET = 2;

/** Measures figure 2 for one target, `runs` times each (median). */
export async function measureStartTime(target: BenchTarget, benchDir: string, runs: number): Promise<ResultRow> {
  const timer = path.join(benchDir, 'notify-timer.py');
  const timeout = target.emulated ? '120' : '30';
  const setup = await createBenchSetup({ polling: { interval: '30s' } });
  let agentMs: number[];
  let messages: string[];
  try {
    const out = JSON.parse(
      await runToEnd(['python3', timer, 'ready', String(runs), timeout, '--', ...target.agent, '--config', setup.dirs.configFile, 'run']),
    ) as { ms: number[]; messages: string[] };
    agentMs = out.ms;
    messages = out.messages;
  } finally {
    await setup.close();
  }
  const baseline = JSON.parse(
    await runToEnd(['python3', timer, 'exit', String(runs), timeout, '--', ...target.node, path.join(benchDir, 'baseline/empty.js')]),
  ) as { ms: number[] };
  const figure = median(agentMs);
  const base = median(baseline.ms);
  const ratio = figure / base;
  return {
    row: `2 start to READY (${target.arch})`,
    baseline: formatMs(base),
    figure: formatMs(figure),
    ratio,
    target: `<= ${TARGET}x`,
    verdict: target.emulated ? 'indicative' : judgeAtMost(ratio, TARGET),
    note:
      `median of ${runs} runs after one unrecorded warm-up: exec of \`cloudjobs run\` (state dir already created, device configured) ` +
      `to the READY=1 datagram on an abstract NOTIFY_SOCKET (datagrams seen: ${messages.map((m) => JSON.stringify(m.split('\n')[0])).join(', ')}) ` +
      `vs exec to exit of the bare Node binary (stripped, the one the executable is made from) running an empty file. ` +
      `Runs: agent ${agentMs.map((ms) => ms.toFixed(0)).join('/')} ms, baseline ${baseline.ms.map((ms) => ms.toFixed(0)).join('/')} ms.` +
      (target.emulated ? ' Under qemu-user.' : ''),
  };
}
