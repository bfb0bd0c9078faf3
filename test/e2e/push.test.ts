// Push dispatch against a real broker (issue 13): Debian's mosquitto on
// 127.0.0.1, the reference cloud publishing the notifications exactly as the
// real servers of both generations do, the built executable subscribing.
// No timing is asserted: a poll interval of 30s (or 1d while connected) makes
// a dispatch within the wait impossible without the notification.
import { afterEach, describe, expect, it } from 'vitest';
import type { ApiGeneration } from '../../src/contract/types.js';
import { commandJob, runCommand } from './harness.js';
import { createScope, expectCleanStop, logLines } from './polling-helpers.js';
import { addMqttSection, countPolls, createPushScope } from './push-helpers.js';

const scope = createScope();
const push = createPushScope(scope);
afterEach(async () => {
  await scope.cleanup();
  await push.cleanup();
});

const SLOW = { interval: '30s', max_backoff: '2s' };

// The poll count once no poll came for 2 s (longer than the wake gate's 1 s spacing): the agent is in its long idle wait.
async function settledPolls(cloud: Parameters<typeof countPolls>[0]): Promise<number> {
  const deadline = Date.now() + 20_000;
  for (let seen = countPolls(cloud); ; ) {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const now = countPolls(cloud);
    if (now === seen) return now;
    if (Date.now() > deadline) throw new Error(`polls did not settle within 20 s (${now})`);
    seen = now;
  }
}
const CONNECTED = /INFO push notifications: connected to mqtt/;

// Whether, after the last line matching `anchor`, a poll found no job and the
// agent went back to its long idle wait (the next timed poll 27s to 33s away).
function idleAfter(output: string, anchor: RegExp): boolean {
  const lines = output.split('\n');
  let last = -1;
  lines.forEach((line, index) => {
    if (anchor.test(line)) last = index;
  });
  return last >= 0 && lines.slice(last + 1).some((line) => / DEBUG no pending job; polling again in \d+ms/.test(line));
}

describe('push notifications over MQTT', () => {
  it.each(['devices', 'agents'] as ApiGeneration[])('generation %s: a job is dispatched by its notification with a 30s poll interval', async (generation) => {
    const world = await push.world(generation);
    const dirs = await scope.dirs(world.cloud, world.device, { polling: SLOW, cloud: { api_generation: generation } });
    await addMqttSection(dirs, world);
    const agent = scope.agent(dirs);
    await agent.waitForOutput(CONNECTED);
    // the poll after connecting may be the first poll itself (connected before it started) or one more
    await world.cloud.waitFor((c) => countPolls(c) >= 1, 20_000, 'the first poll');
    const pollsBefore = await settledPolls(world.cloud);
    const job = world.cloud.queueJob(world.device.uuid, { name: 'pushed', document: commandJob(['echo', 'pushed']) });
    // the next timed poll is 27s to 33s away: only the notification can bring the job in this wait
    await world.cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 15_000);
    // the notification's poll took the job, the one after it found the queue empty; nothing else
    await world.cloud.waitFor((c) => countPolls(c) >= pollsBefore + 2, 10_000, 'the poll after the job');
    const status = await runCommand(['--config', dirs.configFile, 'status', '--json']);
    const parsed = JSON.parse(status.stdout) as { push: Record<string, unknown> };
    expect(parsed.push).toMatchObject({ state: 'connected', broker: world.broker.url, notifications: 1, lastError: null });
    expect(typeof parsed.push.lastNotificationAt).toBe('number');
    const text = await runCommand(['--config', dirs.configFile, 'status']);
    expect(text.stdout).toMatch(new RegExp(`push \\(MQTT\\): +connected to ${world.broker.url.replace(/[.]/g, '\\.')} since \\d+s ago, 1 notification, last \\d+s ago`));
    const output = await expectCleanStop(agent);
    expect(countPolls(world.cloud) - pollsBefore).toBe(2);
    expect(output).toContain(`push notification on ${generation === 'devices' ? `iot/device/${world.device.uuid}/jobs/notify-next` : 'i/tenant-7/a/'}`);
    expect(output).not.toContain(world.password);
  });

  // the poll after a job comes at once anyway: what shows the wake-up was kept is that it, not the timeout, ended the wait after the job
  it('a wake-up while a job runs is served right after it', async () => {
    const world = await push.world('devices');
    const dirs = await scope.dirs(world.cloud, world.device, { polling: SLOW });
    await addMqttSection(dirs, world);
    const agent = scope.agent(dirs);
    await agent.waitForOutput(CONNECTED);
    const first = world.cloud.queueJob(world.device.uuid, { name: 'long', document: commandJob(['sleep', '2']) });
    await world.cloud.waitForJobStatus(first.job_id, 'IN_PROGRESS', 15_000);
    const second = world.cloud.queueJob(world.device.uuid, { name: 'queued meanwhile', document: commandJob(['true']) });
    await world.cloud.waitForJobStatus(second.job_id, 'SUCCEEDED', 15_000);
    const patches = world.cloud.patches();
    const firstFinal = patches.findIndex((p) => p.jobId === first.job_id && p.body !== null && (p.body as { status: string }).status === 'SUCCEEDED');
    const secondFirst = patches.findIndex((p) => p.jobId === second.job_id);
    expect(firstFinal).toBeGreaterThanOrEqual(0);
    expect(secondFirst).toBeGreaterThan(firstFinal);
    const output = agent.output();
    const ended = output.indexOf('job long ended SUCCEEDED');
    const woken = output.indexOf('a push wake-up ended the wait; polling now', ended);
    expect(ended).toBeGreaterThanOrEqual(0);
    expect(woken).toBeGreaterThan(ended);
    expect(output.indexOf('received job queued meanwhile', ended)).toBeGreaterThan(woken);
    await expectCleanStop(agent);
  });

  it('a flood of 1,000 notifications is coalesced into one drain', async () => {
    const world = await push.world('devices');
    const dirs = await scope.dirs(world.cloud, world.device, { polling: SLOW });
    await addMqttSection(dirs, world);
    const agent = scope.agent(dirs);
    await agent.waitForOutput(CONNECTED);
    const job = world.cloud.queueJob(world.device.uuid, { name: 'flooded', document: commandJob(['true']) });
    await world.cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 15_000);
    // the poll right after the job found the queue empty: the agent waits for its next timed poll
    await world.cloud.waitFor(() => idleAfter(agent.output(), /INFO job flooded ended SUCCEEDED/), 15_000, 'the poll after the job');
    const pollsBefore = countPolls(world.cloud);
    for (let i = 0; i < 1000; i += 1) world.cloud.notify(job.job_id);
    // every notification arrived, and a poll after the last one found the queue empty
    await world.cloud.waitFor(
      () => logLines(agent.output(), 'DEBUG', /push notification on /).length >= 1001 && idleAfter(agent.output(), /DEBUG push notification on /),
      30_000,
      'the agent to receive all 1,001 notifications and poll after the last',
    );
    // and no wake-up is left: no poll comes for longer than the wake gate's spacing
    const polls = (await settledPolls(world.cloud)) - pollsBefore;
    // one wake-up poll per second at most: the flood ends inside two
    expect(polls).toBeGreaterThanOrEqual(1);
    expect(polls).toBeLessThanOrEqual(3);
    await expectCleanStop(agent);
  });
});
