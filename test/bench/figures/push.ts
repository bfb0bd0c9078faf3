// Figures 11 to 14 (issue 13): push dispatch over MQTT against Debian's
// mosquitto on loopback. 11: dispatch latency with push at a 30 s poll
// interval; 12: idle RSS with the channel connected vs without MQTT; 13: bytes
// on the wire per idle hour, push vs polling only; 14: 1,000 push channels
// (the agent's own startPushChannel and reconnect policy) reconnecting after a
// broker restart, peak connects per second vs the fleet's steady poll rate.
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createScaledClock } from '../../../src/clock/clock.js';
import { startPushChannel, type PushChannel } from '../../../src/cloud/push-channel.js';
import { createNullLog } from '../../../src/log/log.js';
import { startMosquitto, type Mosquitto } from '../../cloud/mosquitto.js';
import { connectPushPublisher, type PushPublisher } from '../../cloud/push-notify.js';
import { createBenchSetup, pause, preciseNow, startBenchAgent, waitUntil, type BenchSetup } from '../lib/agent-runner.js';
import type { BenchTarget } from '../lib/bench-target.js';
import { startCountingProxy } from '../lib/counting-proxy.js';
import { buildCommandJob, isJobFinal, readJobTiming } from '../lib/job-documents.js';
import { readRssBytes } from '../lib/proc-stats.js';
import { formatBytes, formatMs, judgeAtMost, median, type ResultRow } from '../lib/results.js';

/** A broker and a reference cloud publishing through it, with one device's agent dirs. */
async function createPushSetup(ini: Record<string, Record<string, string>>, brokerUrl?: (broker: Mosquitto) => string): Promise<{
  broker: Mosquitto;
  publisher: PushPublisher;
  setup: BenchSetup;
}> {
  const broker = await startMosquitto();
  const publisher = await connectPushPublisher({ url: broker.url });
  const setup = await createBenchSetup({ ...ini, mqtt: { broker: brokerUrl ? brokerUrl(broker) : broker.url, ...ini.mqtt } });
  // the bench setup's cloud was started without push: publish its jobs' notifications here
  const queue = setup.cloud.queueJob.bind(setup.cloud);
  setup.cloud.queueJob = (uuid, input) => {
    const row = queue(uuid, input);
    publisher.publish(
      `iot/device/${uuid}/jobs/notify-next`,
      JSON.stringify({ execution: { jobId: row.job_id, jobDocument: row.job_document, queuedAt: Date.now(), lastUpdatedAt: Date.now(), versionNumber: 1, executionNumber: 1, status: 'QUEUED' }, timestamp: Date.now() }),
    );
    return row;
  };
  return { broker, publisher, setup };
}

async function closePushSetup(parts: { broker: Mosquitto; publisher: PushPublisher; setup: BenchSetup }): Promise<void> {
  await parts.setup.close();
  await parts.publisher.close();
  await parts.broker.close();
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** Figure 11: queue-to-first-step latency with push, polling.interval 30 s, real time. */
export async function measurePushLatency(target: BenchTarget, samples: number): Promise<ResultRow> {
  const parts = await createPushSetup({ polling: { interval: '30s' } });
  const marks = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-bench-marks-'));
  await chmod(marks, 0o1777);
  const latencies: number[] = [];
  try {
    const agent = startBenchAgent(target, parts.setup.dirs);
    try {
      await waitUntil(() => agent.assertAlive() === undefined && /push notifications: connected/.test(agent.log()), 60_000, 'the push channel');
      for (let i = 0; i < samples; i += 1) {
        // at a random moment of the idle agent's life, never long enough for a 27..33 s poll to explain it
        await pause(200 + Math.random() * 1000);
        const mark = path.join(marks, `start-${i}`);
        const queuedAt = preciseNow();
        const job = parts.setup.cloud.queueJob(parts.setup.device.uuid, { name: `push ${i}`, document: buildCommandJob([`/bin/sh,-c,date +%s%N > ${mark}`]) });
        await waitUntil(() => agent.assertAlive() === undefined && isJobFinal(parts.setup.cloud, job.job_id), 60_000, `push job ${i}`, 5);
        if (readJobTiming(parts.setup.cloud, job.job_id).status !== 'SUCCEEDED') throw new Error(`push job ${i} did not succeed`);
        const startedAt = Number(BigInt((await readFile(mark, 'utf8')).trim()) / 1000n) / 1000;
        latencies.push(startedAt - queuedAt);
      }
    } finally {
      await agent.stop();
    }
  } finally {
    await rm(marks, { recursive: true, force: true });
    await closePushSetup(parts);
  }
  const p50 = median(latencies);
  const p99 = percentile(latencies, 99);
  const met = p50 < 1000 && p99 < 2000;
  return {
    row: '11 dispatch latency, push (x64)',
    baseline: '15.0 s (interval/2, figure 7)',
    figure: `p50 ${formatMs(p50)}, p99 ${formatMs(p99)}`,
    ratio: p50 / 15_000,
    target: 'median < 1 s, p99 < 2 s',
    verdict: met ? 'met' : 'missed',
    note:
      `${samples} jobs queued on an idle agent (polling.interval 30 s, [mqtt] broker = Debian's mosquitto on loopback, real time, no scaling), ` +
      `each 0.2..1.2 s after the previous one ended; latency = first step start (the step stamps \`date +%s%N\`) - queue time. ` +
      `Range ${formatMs(Math.min(...latencies))}..${formatMs(Math.max(...latencies))}. Wake-ups closer than 1 s to the previous poll wait for the rest of that second (the flood guard).`,
  };
}

/** Figure 12: RSS after 60 idle polls with the push channel connected vs the same agent without [mqtt], side by side. */
export async function measurePushMemory(target: BenchTarget): Promise<ResultRow> {
  const polling = { interval: '1s', jitter: '0%' };
  const scale = { CLOUDJOBS_TEST_TIME_SCALE: '20' };
  const withPush = await createPushSetup({ polling });
  const without = await createBenchSetup({ polling });
  let rssWith = 0;
  let rssWithout = 0;
  try {
    const a = startBenchAgent(target, withPush.setup.dirs, scale);
    const b = startBenchAgent(target, without.dirs, scale);
    try {
      await waitUntil(
        () => a.assertAlive() === undefined && b.assertAlive() === undefined && withPush.setup.polls() >= 60 && without.polls() >= 60 && /push notifications: connected/.test(a.log()),
        120_000,
        '60 idle polls of both agents',
      );
      rssWith = readRssBytes(a.pid);
      rssWithout = readRssBytes(b.pid);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  } finally {
    await closePushSetup(withPush);
    await without.close();
  }
  const delta = rssWith - rssWithout;
  return {
    row: '12 idle RSS with push (x64)',
    baseline: `${formatBytes(rssWithout)} (no [mqtt])`,
    figure: `${formatBytes(rssWith)} (${delta >= 0 ? '+' : ''}${formatBytes(delta)})`,
    ratio: rssWith / rssWithout,
    target: '<= +4 MiB',
    verdict: judgeAtMost(delta, 4 * 1024 * 1024),
    note:
      'VmRSS of two agents started together, polled 60 times each (polling.interval 1 s at CLOUDJOBS_TEST_TIME_SCALE=20): one with [mqtt] broker connected and subscribed, ' +
      'one without [mqtt] (MQTT.js is then never evaluated). The difference is MQTT.js, its packet code and one TCP connection; ' +
      "the client runs with writeCache off: mqtt-packet's default cache of 65,536 two-byte Buffers made it +8.2 MiB.",
  };
}

/** Figure 13: bytes on the wire per idle hour: HTTP polls (+ MQTT keepalive) with push vs polling only. */
export async function measurePushWire(target: BenchTarget): Promise<ResultRow> {
  // HTTP bytes per idle poll, through a counting relay
  const polling = await createBenchSetup({ polling: { interval: '1s', jitter: '0%' } });
  const httpProxy = await startCountingProxy(polling.cloud.port);
  let bytesPerPoll: number;
  try {
    const url = polling.cloud.url.replace(`:${polling.cloud.port}/`, `:${httpProxy.port}/`);
    const { writeFile } = await import('node:fs/promises');
    const text = await readFile(polling.dirs.configFile, 'utf8');
    await writeFile(polling.dirs.configFile, text.replace(`api_url = ${polling.cloud.url}`, `api_url = ${url}`));
    const agent = startBenchAgent(target, polling.dirs, { CLOUDJOBS_TEST_TIME_SCALE: '20' });
    try {
      await waitUntil(() => agent.assertAlive() === undefined && polling.polls() >= 5, 60_000, '5 polls');
      const [c0, p0] = [httpProxy.counts(), polling.polls()];
      await waitUntil(() => polling.polls() >= p0 + 100, 60_000, '100 more polls');
      const [c1, p1] = [httpProxy.counts(), polling.polls()];
      bytesPerPoll = (c1.toCloud + c1.fromCloud - c0.toCloud - c0.fromCloud) / (p1 - p0);
    } finally {
      await agent.stop();
    }
  } finally {
    await httpProxy.close();
    await polling.close();
  }
  // MQTT bytes per keepalive and of one connect, through a counting relay (keepalive 5 s, real time)
  const broker = await startMosquitto();
  const mqttProxy = await startCountingProxy(broker.port);
  const pushed = await createBenchSetup({ polling: { interval: '1h' }, mqtt: { broker: `mqtt://127.0.0.1:${mqttProxy.port}`, keepalive: '5s' } });
  let connectBytes: number;
  let bytesPerPing: number;
  try {
    const agent = startBenchAgent(target, pushed.dirs);
    try {
      await waitUntil(() => agent.assertAlive() === undefined && /push notifications: connected/.test(agent.log()), 60_000, 'the push channel');
      await pause(500);
      const c0 = mqttProxy.counts();
      connectBytes = c0.toCloud + c0.fromCloud;
      await pause(15_500);
      const c1 = mqttProxy.counts();
      bytesPerPing = (c1.toCloud + c1.fromCloud - connectBytes) / 3;
    } finally {
      await agent.stop();
    }
  } finally {
    await pushed.close();
    await mqttProxy.close();
    await broker.close();
  }
  const hour = 3_600_000;
  const pollingOnly = (hour / 30_000) * bytesPerPoll;
  const pushSameInterval = pollingOnly + (hour / 60_000) * bytesPerPing + connectBytes;
  const pushLongInterval = (hour / 300_000) * bytesPerPoll + (hour / 60_000) * bytesPerPing + connectBytes;
  return {
    row: '13 idle bytes/hour, push (x64)',
    baseline: `${formatBytes(pollingOnly)} (polling only, 30 s)`,
    figure: `${formatBytes(pushSameInterval)} (30 s), ${formatBytes(pushLongInterval)} (poll_interval_when_connected 5m)`,
    ratio: pushLongInterval / pollingOnly,
    target: 'report',
    verdict: 'report',
    note:
      `TCP payload bytes both ways, counted by a relay: an idle poll (request and "no job" answer on a kept-alive connection) is ${Math.round(bytesPerPoll)} B; ` +
      `the MQTT connect and subscribe ${connectBytes} B once; a keepalive (PINGREQ + PINGRESP) ${bytesPerPing.toFixed(1)} B, every 60 s by default (measured at keepalive 5 s). ` +
      'Per hour: 120 polls; with push also 60 keepalives, or with poll_interval_when_connected = 5m only 12 polls. Plain HTTP and MQTT: TLS adds its record overhead to both.',
  };
}

/** Figure 14: 1,000 push channels through a broker restart; peak connects/s vs the steady poll rate of the fleet. */
export async function measurePushHerd(channels: number, scale: number): Promise<ResultRow> {
  const INTERVAL_MS = 30_000;
  const broker = await startMosquitto();
  const clock = createScaledClock(scale);
  const connectsAt: number[] = [];
  const list: PushChannel[] = [];
  const start = clock.now();
  let restartAt = 0;
  try {
    for (let i = 0; i < channels; i += 1) {
      let wasConnected = false;
      const channel = startPushChannel({
        settings: {
          broker: new URL(broker.url),
          brokerText: broker.url,
          username: `device_${i}`,
          password: '',
          clientId: `herd-${i}`,
          keepaliveSeconds: 60,
          topics: [`iot/device/herd-${i}/jobs/notify-next`],
          storedCaPems: [],
        },
        tls: null,
        clock,
        log: createNullLog(),
        random: Math.random,
        intervalMs: INTERVAL_MS,
        maxBackoffMs: 300_000,
        connectTimeoutMs: 30_000,
        wakeAfterLoss: false,
        wake: () => undefined,
        onChange: () => {
          const connected = list[i]?.isConnected() ?? false;
          if (connected && !wasConnected) connectsAt.push(clock.now() - start);
          wasConnected = connected;
        },
      });
      list.push(channel);
      // the fleet starts over one interval, as agents boot at different times
      if (i % 50 === 49) await pause(INTERVAL_MS / scale / (channels / 50));
    }
    await waitUntil(() => list.every((c) => c.isConnected()), 120_000, 'every channel connected', 50);
    // the broker restarts: down for 5 s of agent time
    restartAt = clock.now() - start;
    await broker.stop();
    await pause(5_000 / scale);
    await broker.start();
    await waitUntil(() => list.every((c) => c.isConnected()), 600_000, 'every channel back', 50);
  } finally {
    await Promise.all(list.map((c) => c.close()));
    await broker.close();
  }
  const after = connectsAt.filter((t) => t >= restartAt).map((t) => t - restartAt);
  const perSecond = new Map<number, number>();
  for (const t of after) perSecond.set(Math.floor(t / 1000), (perSecond.get(Math.floor(t / 1000)) ?? 0) + 1);
  const peak = Math.max(...perSecond.values());
  const steady = channels / (INTERVAL_MS / 1000);
  const lastBack = Math.max(...after);
  return {
    row: `14 herd: ${channels} push channels`,
    baseline: `${steady.toFixed(1)}/s (steady polls of the fleet)`,
    figure: `${peak}/s peak connects`,
    ratio: peak / steady,
    target: 'report (herd rule: about the steady poll rate)',
    verdict: 'report',
    note:
      `${channels} real push channels (startPushChannel: MQTT.js, TCP, CONNECT, SUBSCRIBE) in one process against one mosquitto, clock scaled ${scale}x; ` +
      `the broker is stopped for 5 s (agent time) and started again; reconnects follow computeReconnectDelay (full jitter over a step that starts at polling.interval 30 s). ` +
      `Peak = most reconnects in one agent-time second after the restart; all ${after.length} were back ${formatMs(lastBack)} after it. ` +
      'Each reconnect also causes one poll, so the cloud sees the same peak in polls.',
  };
}
