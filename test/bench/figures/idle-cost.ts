// Figure 3: CPU time and bytes on the wire per idle poll over 1,000 polls
// against the reference cloud answering "no job", through a counting relay.
// Baselines: the same Node as a single executable waking on a setInterval at
// the same rate (CPU floor per wakeup), and the smallest keep-alive request a
// plain Node http client can make for the same route (bytes).
import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { createBenchSetup, pause, runToEnd, startBenchAgent, waitUntil } from '../lib/agent-runner.js';
import type { BenchTarget } from '../lib/bench-target.js';
import { startCountingProxy, type WireCounts } from '../lib/counting-proxy.js';
import { readCpuMs } from '../lib/proc-stats.js';
import { formatMs, judgeAtMost, type ResultRow } from '../lib/results.js';

const POLLS = 1000;
const WARMUP_POLLS = 20;
// polling.interval 1 s played 40x faster: a poll every 25 ms of wall time.
const SCALE = 40;
const WALL_INTERVAL_MS = 1000 / SCALE;
const TARGET_CPU_MS = 1;

/** Measures figure 3 (two rows: CPU and bytes) for the host target. */
export async function measureIdleCost(target: BenchTarget, benchDir: string): Promise<ResultRow[]> {
  const setup = await createBenchSetup({ polling: { interval: '1s', jitter: '0%' } });
  const proxy = await startCountingProxy(setup.cloud.port);
  let cpuMs: number;
  let polls: number;
  let wire: WireCounts;
  let wallMs: number;
  try {
    const url = new URL(setup.cloud.url);
    url.port = String(proxy.port);
    await rewriteApiUrl(setup.dirs.configFile, setup.cloud.url, url.href.replace(/\/$/, ''));
    const agent = startBenchAgent(target, setup.dirs, { CLOUDJOBS_TEST_TIME_SCALE: String(SCALE) });
    try {
      await waitUntil(() => agent.assertAlive() === undefined && setup.polls() >= WARMUP_POLLS, 60_000, `${WARMUP_POLLS} warm-up polls`);
      const cpu0 = readCpuMs(agent.pid);
      const polls0 = setup.polls();
      const wire0 = proxy.counts();
      const t0 = Date.now();
      await waitUntil(() => agent.assertAlive() === undefined && setup.polls() >= polls0 + POLLS, 600_000, `${POLLS} idle polls`, 20);
      cpuMs = readCpuMs(agent.pid) - cpu0;
      polls = setup.polls() - polls0;
      wallMs = Date.now() - t0;
      const wire1 = proxy.counts();
      wire = { toCloud: wire1.toCloud - wire0.toCloud, fromCloud: wire1.fromCloud - wire0.fromCloud, connections: wire1.connections - wire0.connections };
    } finally {
      await agent.stop();
    }
    const minimal = await measureMinimalExchange(proxy.port, url.pathname.replace(/\/$/, ''), setup.device.uuid, setup.device.apiKey, proxy.counts);
    const baselineCpu = await measureTickCpu(target, wallMs);
    // the floor: Node's own keep-alive http client, same route, same cadence, no node-fetch, no agent
    const floorArgs = [`${setup.cloud.url}/devices/${setup.device.uuid}/jobs/next`, 'x-device-api-key', setup.device.apiKey];
    const floorPerRequest = Number(
      await runToEnd([...target.node, path.join(benchDir, 'baseline/http-poll.js'), ...floorArgs, String(WALL_INTERVAL_MS), String(POLLS), String(WARMUP_POLLS)]),
    );
    const perPoll = cpuMs / polls;
    const perTick = baselineCpu / (wallMs / WALL_INTERVAL_MS);
    const bytesPerPoll = (wire.toCloud + wire.fromCloud) / polls;
    const minimalBytes = minimal.toCloud + minimal.fromCloud;
    return [
      {
        row: '3 idle CPU per poll (x64)',
        baseline: `${formatMs(perTick)}/wakeup`,
        figure: `${formatMs(perPoll)}/poll`,
        ratio: perPoll / perTick,
        target: `< ${TARGET_CPU_MS} ms/poll`,
        verdict: judgeAtMost(perPoll, TARGET_CPU_MS),
        note:
          `user+system CPU of the agent process (all threads, /proc/PID/stat) over ${polls} idle polls after ${WARMUP_POLLS} warm-up polls, ` +
          `polling.interval 1 s at CLOUDJOBS_TEST_TIME_SCALE=${SCALE} (a poll every ${WALL_INTERVAL_MS} ms; ${(wallMs / 1000).toFixed(1)} s of wall time, ${cpuMs.toFixed(0)} ms CPU, 10 ms tick resolution); ` +
          `the target is absolute; the baseline is the same Node as a single executable waking on setInterval(${WALL_INTERVAL_MS} ms) for the same wall time ` +
          `(${baselineCpu.toFixed(0)} ms CPU), so the ratio is the cost of a poll over a bare timer wakeup.`,
      },
      {
        row: '3 floor: plain http.request per poll (x64)',
        baseline: `${formatMs(perTick)}/wakeup`,
        figure: `${formatMs(floorPerRequest)}/request`,
        ratio: floorPerRequest / perTick,
        target: 'report',
        verdict: 'report',
        note:
          `what one keep-alive GET of the same route costs Node's own http client on this machine (the bare Node binary, test/bench/baseline/http-poll.js: ` +
          `${POLLS} requests every ${WALL_INTERVAL_MS} ms after ${WARMUP_POLLS} warm-up ones, process.cpuUsage): no node-fetch, no agent. ` +
          `An idle poll of the agent cannot cost less than this.`,
      },
      {
        row: '3 wire bytes per idle poll (x64)',
        baseline: `${minimalBytes} B`,
        figure: `${bytesPerPoll.toFixed(0)} B`,
        ratio: bytesPerPoll / minimalBytes,
        target: 'report; keep-alive on',
        verdict: wire.connections <= 1 ? 'report' : 'missed',
        note:
          `TCP payload both ways through a counting relay (${(wire.toCloud / polls).toFixed(0)} B up, ${(wire.fromCloud / polls).toFixed(0)} B down per poll), ` +
          `${wire.connections} new connection(s) during the ${polls} polls (keep-alive ${wire.connections <= 1 ? 'held' : 'NOT held'}); ` +
          `baseline: one keep-alive GET of the same route by a plain Node http client sending only the API key header ` +
          `(${minimal.toCloud} B up, ${minimal.fromCloud} B down). Headers dominate both; the answer is {"message":"No pending jobs"}.`,
      },
    ];
  } finally {
    await proxy.close();
    await setup.close();
  }
}

async function rewriteApiUrl(configFile: string, from: string, to: string): Promise<void> {
  const { readFile, writeFile } = await import('node:fs/promises');
  const text = await readFile(configFile, 'utf8');
  if (!text.includes(from)) throw new Error(`agent.ini does not hold ${from}`);
  await writeFile(configFile, text.replace(from, to), { mode: 0o600 });
}

// Bytes of the second of two keep-alive GETs (the first pays for nothing extra in HTTP/1.1, but skip it anyway).
async function measureMinimalExchange(
  port: number,
  basePath: string,
  uuid: string,
  apiKey: string,
  counts: () => WireCounts,
): Promise<{ toCloud: number; fromCloud: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = (): Promise<void> =>
    new Promise((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: `${basePath}/devices/${uuid}/jobs/next`, agent, headers: { 'x-device-api-key': apiKey } }, (res) => {
          res.resume();
          res.once('end', () => resolve());
        })
        .once('error', reject);
    });
  try {
    await get();
    await pause(50);
    const before = counts();
    await get();
    await pause(50);
    const after = counts();
    return { toCloud: after.toCloud - before.toCloud, fromCloud: after.fromCloud - before.fromCloud };
  } finally {
    agent.destroy();
  }
}

async function measureTickCpu(target: BenchTarget, wallMs: number): Promise<number> {
  const child = spawn(target.baselineSea[0]!, [...target.baselineSea.slice(1), 'tick', String(WALL_INTERVAL_MS)], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve, reject) => {
    child.once('exit', () => resolve());
    child.once('error', reject);
  });
  try {
    await pause(1000);
    const cpu0 = readCpuMs(child.pid!);
    await pause(wallMs);
    return readCpuMs(child.pid!) - cpu0;
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}
