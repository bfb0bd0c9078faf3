// Push channel connection handling against a real mosquitto (issue 13): broker
// down at start, restarted mid-run, wrong password, TLS with a test CA and a
// wrong pin, credentials from registration, and no MQTT at all when none is
// configured. Polling never stops; no timing is asserted.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestPki, type TestPki } from '../cloud/test-pki.js';
import { waitFor } from '../cloud/wait-for.js';
import { commandJob, stopAgent } from './harness.js';
import { findHeapStrings } from './heap-snapshot.js';
import { createUnregisteredDirs } from './identity-helpers.js';
import { createScope, expectCleanStop, logLines } from './polling-helpers.js';
import { addMqttSection, countPolls, createPushScope } from './push-helpers.js';

const scope = createScope();
const push = createPushScope(scope);
afterEach(async () => {
  await scope.cleanup();
  await push.cleanup();
});

const CONNECTED = /INFO push notifications: connected to mqtt/;
// Fast polling before the connection, none to speak of while connected: a dispatch in the wait needs the notification.
const FAST_THEN_PUSH = { polling: { interval: '500ms', max_backoff: '2s' } };
const ONLY_PUSH = { poll_interval_when_connected: '1d' };
// Markers of MQTT.js's code: heap strings only once its modules were evaluated.
const MQTT_MARKERS = ['mqttjs:client', 'mqtt-packet:parser'];

describe('push channel connection', () => {
  it('broker down at start: polling runs, the channel connects once the broker is up and dispatches', async () => {
    const world = await push.world('devices');
    await world.broker.stop();
    const dirs = await scope.dirs(world.cloud, world.device, FAST_THEN_PUSH);
    await addMqttSection(dirs, world, ONLY_PUSH);
    const agent = scope.agent(dirs);
    await agent.waitForOutput(/WARN push notifications: the broker mqtt:\/\/127\.0\.0\.1:\d+ is unreachable \(ECONNREFUSED\); polling continues, reconnecting in \d+/);
    await world.cloud.waitFor((c) => countPolls(c) >= 3, 10_000, 'polls while the broker is down');
    await world.broker.start();
    await agent.waitForOutput(CONNECTED, 30_000);
    await dispatchByPush(world.cloud, world.device.uuid, 'after broker start');
    const output = await expectCleanStop(agent);
    expect(logLines(output, 'WARN', /push notifications: the broker .* is unreachable/)).toHaveLength(1);
  });

  it('broker restarted mid-run: the loss is logged once, the channel reconnects, subscribes again and dispatches', async () => {
    const world = await push.world('agents');
    const dirs = await scope.dirs(world.cloud, world.device, { ...FAST_THEN_PUSH, cloud: { api_generation: 'agents' } });
    await addMqttSection(dirs, world, ONLY_PUSH);
    const agent = scope.agent(dirs);
    await agent.waitForOutput(CONNECTED);
    await dispatchByPush(world.cloud, world.device.uuid, 'before restart');
    await world.broker.stop();
    await agent.waitForOutput(/WARN push notifications: the connection to the broker mqtt:\/\/127\.0\.0\.1:\d+ was lost/);
    const pollsWhileDown = countPolls(world.cloud);
    await world.cloud.waitFor((c) => countPolls(c) >= pollsWhileDown + 2, 10_000, 'polling to go on while the broker is away');
    await world.broker.start();
    await waitFor(() => logLines(agent.output(), 'INFO', /push notifications: connected to/).length >= 2, 30_000, 'the second connection');
    await dispatchByPush(world.cloud, world.device.uuid, 'after restart');
    const output = await expectCleanStop(agent);
    expect(logLines(output, 'INFO', /push notifications: connected to/).every((l) => l.includes('/jobs/notify, ') && l.endsWith('/jobs/notify-next pushState=connected broker=' + world.broker.url))).toBe(true);
  });

  it('a wrong password: one clear error naming the CONNACK code, polling goes on', async () => {
    const world = await push.world('devices');
    const dirs = await scope.dirs(world.cloud, world.device, { polling: { interval: '300ms', max_backoff: '1s' } });
    await addMqttSection(dirs, world, { password: 'not-the-password' });
    const agent = scope.agent(dirs);
    await agent.waitForOutput(/ERROR push notifications: the broker mqtt:\/\/127\.0\.0\.1:\d+ refused the connection: not authorized; check \[mqtt\] username and password_file \(the password is given once, at registration\) and the broker ACL \(CONNACK 5\); polling continues, reconnecting in \d+/);
    // refused again at the capped pace, said once
    await waitFor(() => logLines(agent.output(), 'DEBUG', /push notifications: the broker .* refused the connection/).length >= 2, 15_000, 'two more refusals');
    const job = world.cloud.queueJob(world.device.uuid, { name: 'polled', document: commandJob(['true']) });
    await world.cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 15_000);
    const output = await expectCleanStop(agent);
    expect(logLines(output, 'ERROR', /refused the connection/)).toHaveLength(1);
    expect(output).not.toContain(world.password);
  });

  it('a broker name that does not resolve: one warning naming DNS, polling goes on', async () => {
    const world = await push.world('devices');
    const dirs = await scope.dirs(world.cloud, world.device, { polling: { interval: '300ms', max_backoff: '1s' } });
    await addMqttSection(dirs, world, { broker: 'mqtt://no-such-broker.invalid:1883', allow_insecure: 'true' });
    const agent = scope.agent(dirs);
    await agent.waitForOutput(
      /WARN push notifications: the broker's host name in mqtt:\/\/no-such-broker\.invalid:1883 does not resolve \((ENOTFOUND|EAI_AGAIN)\); check mqtt\.broker and DNS; polling continues/,
    );
    const job = world.cloud.queueJob(world.device.uuid, { name: 'polled', document: commandJob(['true']) });
    await world.cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 15_000);
    const output = await expectCleanStop(agent);
    expect(logLines(output, 'WARN', /does not resolve/)).toHaveLength(1);
  });

  describe('TLS', () => {
    let pki: TestPki;
    it('mqtts:// with the test CA in mqtt.ca_file connects and dispatches; a wrong pin is refused with one error', async () => {
      pki = await createTestPki();
      const world = await push.world('devices', { tls: { certFile: pki.server.certFile, keyFile: pki.server.keyFile } });
      const tlsUrl = world.broker.tlsUrl as string;
      const dirs = await scope.dirs(world.cloud, world.device, FAST_THEN_PUSH);
      await addMqttSection(dirs, world, { ...ONLY_PUSH, broker: tlsUrl, ca_file: pki.caFile, pin_sha256: pki.server.pin });
      const agent = scope.agent(dirs);
      await agent.waitForOutput(/INFO push notifications: connected to mqtts:\/\/127\.0\.0\.1:\d+/);
      await dispatchByPush(world.cloud, world.device.uuid, 'over TLS');
      await expectCleanStop(agent);

      const pinned = await scope.dirs(world.cloud, world.device, FAST_THEN_PUSH);
      await addMqttSection(pinned, world, { broker: tlsUrl, ca_file: pki.caFile, pin_sha256: pki.alternate.pin });
      const refused = scope.agent(pinned);
      await refused.waitForOutput(
        new RegExp(`ERROR push notifications: TLS pin mismatch: the broker ${tlsUrl.replace(/[.]/g, '\\.')} presented public key sha256//${pki.server.pin.replace(/[+/]/g, '\\$&')}, which is not in mqtt\\.pin_sha256`),
      );
      const job = world.cloud.queueJob(world.device.uuid, { name: 'polled despite the pin', document: commandJob(['true']) });
      await world.cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 15_000);
      const output = await expectCleanStop(refused);
      expect(logLines(output, 'INFO', /push notifications: connected/)).toEqual([]);
    });
  });

  it('generation agents: the credentials come from registration, stored 0600 with the identity, and dispatch works', async () => {
    const world = await push.world('agents', { cloud: { provisioningKeys: [{ key: 'prov-key-for-push-0001' }] } });
    const dirs = await createUnregisteredDirs(world.cloud, 'prov-key-for-push-0001', { viaConfig: true, ini: { ...FAST_THEN_PUSH, cloud: { api_generation: 'agents' } } });
    const agent = scope.agent(dirs);
    await agent.waitForOutput(CONNECTED, 30_000);
    const identity = JSON.parse(await readFile(dirs.identityFile, 'utf8')) as { uuid: string; mqtt: Record<string, unknown> };
    expect(identity.mqtt).toMatchObject({ broker: world.broker.url, username: `agent_${identity.uuid}`, clientIdPrefix: 'cj-', tenantId: 'tenant-7' });
    expect(identity.mqtt.password).toMatch(/^[0-9a-f]{32}$/);
    await dispatchByPush(world.cloud, identity.uuid, 'registered', 30_000);
    const output = await expectCleanStop(agent);
    expect(output).not.toContain(identity.mqtt.password as string);
    expect(output).toMatch(/push notifications: connected to .* subscribed to i\/tenant-7\/a\/[A-Za-z0-9_-]{22}\/jobs\/notify, i\/tenant-7\/a\/[A-Za-z0-9_-]{22}\/jobs\/notify-next/);
    await removeDirsLater(dirs.root);
  });

  it('no MQTT configured: no connection attempt and MQTT.js never evaluated; with a broker it is', async () => {
    const world = await push.world('devices');
    const plain = await scope.dirs(world.cloud, world.device, FAST_THEN_PUSH);
    const without = await heapMarkers(plain, 'without [mqtt]');
    expect(without.found).toEqual([]);
    expect(without.output).not.toMatch(/push notifications/);
    expect(world.broker.output()).not.toContain(world.device.uuid);

    const configured = await scope.dirs(world.cloud, world.device, FAST_THEN_PUSH);
    await addMqttSection(configured, world);
    const withBroker = await heapMarkers(configured, 'with [mqtt]', CONNECTED);
    expect(withBroker.found.sort()).toEqual([...MQTT_MARKERS].sort());
  });
});

// Queues a job and waits for it: with poll_interval_when_connected = 1d only the notification brings it.
async function dispatchByPush(cloud: import('../cloud/reference-cloud.js').ReferenceCloud, uuid: string, name: string, timeoutMs = 15_000): Promise<void> {
  const job = cloud.queueJob(uuid, { name, document: commandJob(['true']) });
  await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', timeoutMs);
}

// Runs an agent with --heapsnapshot-signal, takes one snapshot once it is idle, and lists the MQTT markers in it.
async function heapMarkers(dirs: import('./harness.js').AgentDirs, what: string, ready?: RegExp): Promise<{ found: string[]; output: string }> {
  const agent = scope.agent(dirs, { NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${dirs.root}` });
  await agent.waitForOutput(ready ?? /DEBUG no pending job; polling again/);
  await agent.waitForOutput(/DEBUG no pending job; polling again/);
  agent.kill('SIGUSR2');
  const file = await waitFor(async () => {
    const { readdir } = await import('node:fs/promises');
    const name = (await readdir(dirs.root)).find((n) => n.endsWith('.heapsnapshot'));
    return name ? path.join(dirs.root, name) : undefined;
  }, 30_000, `a heap snapshot ${what}`);
  // the snapshot is written synchronously by the agent; wait until it answers again
  const polls = logLines(agent.output(), 'DEBUG', /no pending job/).length;
  await waitFor(() => logLines(agent.output(), 'DEBUG', /no pending job/).length > polls, 30_000, `the agent to go on after the snapshot ${what}`);
  const found = [...(await findHeapStrings(file, MQTT_MARKERS))];
  const result = await stopAgent(agent);
  expect(result).toEqual({ code: 0, signal: null });
  return { found, output: agent.output() };
}

async function removeDirsLater(_root: string): Promise<void> {
  // createUnregisteredDirs' directories are not owned by the scope
  const { rm } = await import('node:fs/promises');
  await rm(_root, { recursive: true, force: true });
}
