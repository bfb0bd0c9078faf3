// Issue 6 "Done when" (registration): a fresh device with only a provisioning
// key registers, stores its identity privately, polls with its new key and
// runs a job, for both server generations; register is idempotent, adopts a
// pre-registered uuid, explains 401 and 409, and respects 429.
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { startReferenceCloud, type ReferenceCloud, type ReferenceCloudOptions, type RequestRecord } from '../cloud/reference-cloud.js';
import type { ApiGeneration } from '../../src/contract/types.js';
import { commandJob, removeDirs, runCommand, startAgent, stopAgent, type AgentProcess } from './harness.js';
import {
  createUnregisteredDirs,
  deviceJobRequests,
  exists,
  modeOf,
  readIdentityFile,
  registrationRequests,
  sha256Hex,
  type UnregisteredDirs,
} from './identity-helpers.js';

const PROVISIONING_KEY = 'prov-0123456789abcdef0123456789abcdef';
const GENERATIONS: ApiGeneration[] = ['devices', 'agents'];

const clouds: ReferenceCloud[] = [];
const agents: AgentProcess[] = [];
const allDirs: UnregisteredDirs[] = [];

afterEach(async () => {
  for (const agent of agents.splice(0)) await stopAgent(agent);
  for (const cloud of clouds.splice(0)) await cloud.close();
  for (const dirs of allDirs.splice(0)) await removeDirs(dirs);
});

async function startCloud(options: ReferenceCloudOptions): Promise<ReferenceCloud> {
  const cloud = await startReferenceCloud({ provisioningKeys: [{ key: PROVISIONING_KEY }], ...options });
  clouds.push(cloud);
  return cloud;
}

async function unregistered(cloud: ReferenceCloud, options: { viaConfig?: boolean; key?: string } = {}): Promise<UnregisteredDirs> {
  const dirs = await createUnregisteredDirs(cloud, options.key ?? PROVISIONING_KEY, options);
  allDirs.push(dirs);
  return dirs;
}

function register(dirs: UnregisteredDirs, extra: string[] = []) {
  return runCommand(['--config', dirs.configFile, 'register', '--provisioning-key-file', dirs.provisioningKeyFile, ...extra]);
}

function run(dirs: UnregisteredDirs, env: Record<string, string> = {}): AgentProcess {
  const agent = startAgent(dirs, { env });
  agents.push(agent);
  return agent;
}

// Queues a one-step job for `uuid`, waits for it to succeed and checks the final report.
async function expectJobRuns(cloud: ReferenceCloud, uuid: string): Promise<void> {
  const job = cloud.queueJob(uuid, { name: 'hello', document: commandJob(['echo', 'registered and running']) });
  const row = await cloud.waitForJobStatus(job.job_id, undefined, 30_000);
  expect(row.status).toBe('SUCCEEDED');
  const finals = cloud.patches(job.job_id).filter((p) => (p.body as { status: string }).status !== 'IN_PROGRESS');
  expect(finals).toHaveLength(1);
  expect(finals[0]!.body).toMatchObject({ status: 'SUCCEEDED', exit_code: 0, executed_steps: 1, failed_step: null, stderr: '' });
  expect((finals[0]!.body as { stdout: string }).stdout).toContain('registered and running');
}

describe.each(GENERATIONS)('registration against generation %s', (generation) => {
  it('registers with a provisioning key file, stores the identity privately, then run polls with the new key and runs a job', async () => {
    const cloud = await startCloud({ generation });
    const dirs = await unregistered(cloud);
    expect(await exists(dirs.stateDir)).toBe(false);

    const result = await register(dirs, ['--device-name', 'pi-e2e', '--device-type', 'raspberrypi4']);
    expect(result.stderr).not.toMatch(/ (ERROR|WARN) (?!polling\.interval)/);
    expect(result.code).toBe(0);
    const identity = await readIdentityFile(dirs.identityFile);
    expect(result.stdout).toContain(`registered as ${identity.uuid} (generation ${generation}); identity stored in ${dirs.identityFile}`);
    expect(identity.generation).toBe(generation);
    expect(identity.apiKey).toMatch(/^[0-9a-f]{64}$/);
    expect(identity.deviceName).toBe('pi-e2e');
    expect(await modeOf(dirs.identityFile)).toBe(0o600);
    expect(await modeOf(dirs.stateDir)).toBe(0o700);
    if (generation === 'agents') {
      expect(identity.publicKeyPem).toContain('-----BEGIN PUBLIC KEY-----');
      expect(identity.privateKeyPem).toContain('-----BEGIN PRIVATE KEY-----');
    } else {
      expect(identity.privateKeyPem).toBeUndefined();
    }

    // The cloud holds the device with exactly this key, registration complete.
    const device = cloud.getDevice(identity.uuid);
    expect(device).toMatchObject({ registrationComplete: true, active: true, apiKeySha256: sha256Hex(identity.apiKey), deviceName: 'pi-e2e', deviceType: 'raspberrypi4' });
    expect(device!.hasPublicKey).toBe(generation === 'agents');
    expect(cloud.requestCounts()['POST /device/:uuid/key-exchange']).toBe(1);

    const agent = run(dirs);
    await expectJobRuns(cloud, identity.uuid);
    const polls = deviceJobRequests(cloud, identity.uuid);
    expect(polls.length).toBeGreaterThanOrEqual(2);
    for (const request of polls) {
      expect(request.auth).toBe('x-device-api-key');
      expect([200, 404]).toContain(request.status);
    }
    // run did not register again
    expect(registrationRequests(cloud)).toHaveLength(1);
    expect((await stopAgent(agent)).code).toBe(0);
  });

  it('registers with the key on standard input (--provisioning-key-stdin), never on the command line', async () => {
    const cloud = await startCloud({ generation });
    const dirs = await unregistered(cloud);
    const result = await runCommand(['--config', dirs.configFile, 'register', '--provisioning-key-stdin'], { input: `${PROVISIONING_KEY}\n` });
    expect(result.code).toBe(0);
    const identity = await readIdentityFile(dirs.identityFile);
    expect(result.stdout).toContain(`registered as ${identity.uuid} (generation ${generation})`);
    expect(`${result.stdout}${result.stderr}`).not.toContain(PROVISIONING_KEY);
    expect(registrationRequests(cloud)).toHaveLength(1);
  });

  it('run with [device] provisioning_key_file and no identity registers by itself first', async () => {
    const cloud = await startCloud({ generation });
    const dirs = await unregistered(cloud, { viaConfig: true });
    const agent = run(dirs);
    await agent.waitForOutput(/registered as \S+ \(generation \w+\); identity stored in/);
    const identity = await readIdentityFile(dirs.identityFile);
    expect(identity.generation).toBe(generation);
    expect(await modeOf(dirs.identityFile)).toBe(0o600);
    expect(await modeOf(dirs.stateDir)).toBe(0o700);
    expect(cloud.getDevice(identity.uuid)).toMatchObject({ registrationComplete: true, apiKeySha256: sha256Hex(identity.apiKey) });
    await expectJobRuns(cloud, identity.uuid);
    expect(deviceJobRequests(cloud, identity.uuid).every((r) => r.auth === 'x-device-api-key')).toBe(true);
    expect(registrationRequests(cloud)).toHaveLength(1);
    expect((await stopAgent(agent)).code).toBe(0);
  });
});

describe('register', () => {
  it('run twice: the second run says already registered and changes nothing', async () => {
    const cloud = await startCloud({ generation: 'agents' });
    const dirs = await unregistered(cloud);
    expect((await register(dirs)).code).toBe(0);
    const before = await readFile(dirs.identityFile);
    const identity = JSON.parse(before.toString('utf8')) as { uuid: string };

    const again = await register(dirs);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`this device is already registered as ${identity.uuid} (generation agents`);
    expect(again.stdout).toContain('nothing changed');
    expect(Buffer.compare(await readFile(dirs.identityFile), before)).toBe(0);
    expect(await modeOf(dirs.identityFile)).toBe(0o600);
    // The second run never asked the server.
    expect(registrationRequests(cloud)).toHaveLength(1);
    expect(cloud.listDevices()).toHaveLength(1);
  });

  it.each(GENERATIONS)('adopts the uuid of a device pre-registered on the dashboard (generation %s)', async (generation) => {
    const cloud = await startCloud({ generation });
    const preRegistered = randomUUID();
    cloud.preRegisterUuid(preRegistered);
    const dirs = await unregistered(cloud);
    const result = await register(dirs);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain(`the server assigned uuid ${preRegistered} (pre-registered device); adopting it`);
    const identity = await readIdentityFile(dirs.identityFile);
    expect(identity.uuid).toBe(preRegistered);
    expect(result.stdout).toContain(`registered as ${preRegistered}`);
    // The uuid the agent sent is not a device on the server; the pre-registered one holds the key.
    expect(registrationRequests(cloud)).toHaveLength(1);
    expect(cloud.listDevices().map((d) => d.uuid)).toEqual([preRegistered]);
    expect(cloud.getDevice(preRegistered)).toMatchObject({ registrationComplete: true, apiKeySha256: sha256Hex(identity.apiKey) });

    const agent = run(dirs);
    await expectJobRuns(cloud, preRegistered);
    expect((await stopAgent(agent)).code).toBe(0);
  });

  it.each([
    { what: 'wrong', key: 'not-a-key-the-fleet-knows', said: 'Invalid provisioning key' },
    { what: 'expired', key: 'prov-expired-key-000000', said: 'Provisioning key has expired' },
  ])('a $what provisioning key (401) gives a clear message and no identity file', async ({ key, said }) => {
    const cloud = await startCloud({ generation: 'devices', provisioningKeys: [{ key: PROVISIONING_KEY }, { key: 'prov-expired-key-000000', expired: true }] });
    const dirs = await unregistered(cloud, { key });
    const result = await register(dirs);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `registration refused: the provisioning key is wrong or expired (401: Unauthorized: ${said}); get a current key for the fleet and set it with --provisioning-key-file or device.provisioning_key_file`,
    );
    expect(result.stdout + result.stderr).not.toContain(key);
    expect(await exists(dirs.identityFile)).toBe(false);
    expect(cloud.listDevices()).toEqual([]);
  });

  it('run with a wrong provisioning key logs the refusal once, keeps running and retrying, and stores nothing', async () => {
    const cloud = await startCloud({ generation: 'agents', registrationLimit: { max: 1000, windowMs: 60_000 } });
    const dirs = await unregistered(cloud, { key: 'not-a-key-the-fleet-knows', viaConfig: true });
    const agent = run(dirs, { CLOUDJOBS_TEST_TIME_SCALE: '20' });
    await cloud.waitFor(() => registrationRequests(cloud).length >= 3, 20_000, 'three registration attempts');
    expect(agent.child.exitCode).toBeNull();
    const output = agent.output();
    const refusals = output.split('\n').filter((l) => l.includes('registration failed: registration refused: the provisioning key is wrong or expired (401: Unauthorized: Invalid provisioning key)'));
    expect(refusals).toHaveLength(1);
    expect(registrationRequests(cloud).every((r) => r.status === 401)).toBe(true);
    expect(await exists(dirs.identityFile)).toBe(false);
    expect(output).not.toContain('not-a-key-the-fleet-knows');
    expect(output).not.toContain('is not a configuration variable');
    expect((await stopAgent(agent)).code).toBe(0);
  });

  it('a 409 from the server is explained and stores nothing', async () => {
    const cloud = await startCloud({ generation: 'devices' });
    cloud.injectFault({
      kind: 'status',
      status: 409,
      match: '^POST .*/device/register$',
      body: { error: 'Device already registered', message: 'Device is already registered' },
    });
    const dirs = await unregistered(cloud);
    const result = await register(dirs);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/this device \([0-9a-f-]{36}\) is already registered \(409: Device already registered: Device is already registered\): the cloud knows this uuid but this device has no identity for it in \S+\/state\/identity\.json; delete the device on the dashboard/);
    expect(await exists(dirs.identityFile)).toBe(false);
  });

  it('429 from the registration rate limit is respected: the next attempt comes no earlier than Retry-After', async () => {
    // Long enough that the agent (started after the window opened) still lands in it even on a busy machine.
    const windowMs = 5000;
    const cloud = await startCloud({ generation: 'devices', registrationLimit: { max: 1, windowMs } });
    // Use up the window's only attempt from this IP (127.0.0.1, like the agent).
    const used = await fetch(`${cloud.url}/device/register`, { method: 'POST', headers: { authorization: 'Bearer nothing' }, body: '{}' });
    expect(used.status).toBe(401);
    await used.arrayBuffer();
    const dirs = await unregistered(cloud, { viaConfig: true });
    const agent = run(dirs);
    await agent.waitForOutput(/registered as \S+ \(generation devices\); identity stored in/, 30_000);
    const attempts = registrationRequests(cloud);
    // [0] is ours (401), then the agent's: a 429, then (after waiting) the 200.
    expect(attempts[0]!.status).toBe(401);
    const agentAttempts = attempts.slice(1);
    expect(agentAttempts.at(-1)!.status).toBe(200);
    // Retry-After is rounded up to whole seconds, so waiting it out lands past the window: exactly one 429.
    expect(agentAttempts.map((r) => r.status)).toEqual([429, 200]);
    const [limited, accepted] = agentAttempts as [RequestRecord, RequestRecord];
    const logged = [...agent.output().matchAll(/registration rate limited by the server \(429: Too many requests: Too many provisioning attempts from this IP, please try again later\): it allows 5 attempts per 15 minutes; the server asks to wait (\d+)s/g)];
    expect(logged).toHaveLength(1);
    const retryAfterSeconds = Number(logged[0]![1]);
    expect(retryAfterSeconds).toBe(Math.max(1, Math.ceil((attempts[0]!.at + windowMs - limited.at) / 1000)));
    // Causal order at the cloud: the next attempt came no earlier than Retry-After after the 429.
    expect(accepted.at - limited.at).toBeGreaterThanOrEqual(retryAfterSeconds * 1000);
    const identity = await readIdentityFile(dirs.identityFile);
    expect(cloud.getDevice(identity.uuid)?.registrationComplete).toBe(true);
    expect((await stopAgent(agent)).code).toBe(0);
  });
});
