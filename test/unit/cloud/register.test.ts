import { createPublicKey, randomUUID, verify } from 'node:crypto';
import type http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createSystemClock } from '../../../src/clock/clock.js';
import { createHttpTransport, type HttpTransport } from '../../../src/cloud/http.js';
import { RegistrationError, registerDevice, type RegisterOptions } from '../../../src/cloud/register.js';
import { createCaptureLog } from './capture-log.js';
import { sendJson, startTestServer, type TestServer } from './test-server.js';

const PROVISIONING_KEY = 'prov-key-0123456789';
const CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const servers: TestServer[] = [];
const transports: HttpTransport[] = [];

afterEach(async () => {
  for (const t of transports.splice(0)) t.close();
  for (const s of servers.splice(0)) await s.close();
});

interface FakeCloud {
  generation: 'devices' | 'agents';
  /** A uuid pre-registered on the dashboard: the answer carries it instead of the one sent. */
  assignUuid?: string;
  /** Refuse the first signature as an expired challenge. */
  expireFirstChallenge?: boolean;
  /** Answer register with this instead of registering. */
  registerAnswer?: { status: number; body: unknown; headers?: Record<string, string> };
}

interface CloudState {
  devices: Map<string, { apiKey: string; publicKey?: string; verified: boolean }>;
  challenges: Map<string, string>;
}

function fakeCloud(options: FakeCloud, state: CloudState) {
  return (req: http.IncomingMessage, res: http.ServerResponse, raw: string): void => {
    const body = raw ? (JSON.parse(raw) as Record<string, string>) : {};
    const registerPath = options.generation === 'agents' ? '/api/v1/agent/register' : '/api/v1/device/register';
    if (req.method === 'POST' && req.url === registerPath) {
      const key = options.generation === 'agents' ? req.headers['x-provisioning-key'] : req.headers.authorization?.replace(/^Bearer /, '');
      if (options.registerAnswer) {
        sendJson(res, options.registerAnswer.status, options.registerAnswer.body, options.registerAnswer.headers);
        return;
      }
      if (key !== PROVISIONING_KEY) {
        sendJson(res, 401, { error: 'Unauthorized', message: 'Invalid or expired provisioning key' });
        return;
      }
      for (const field of ['uuid', 'deviceName', 'deviceType', 'deviceApiKey', 'macAddress', 'osVersion', 'agentVersion']) {
        if (typeof body[field] !== 'string') {
          sendJson(res, 400, { error: `${field} is required` });
          return;
        }
      }
      const uuid = options.assignUuid ?? body.uuid!;
      const answer: Record<string, unknown> = {
        id: 7,
        uuid,
        deviceName: body.deviceName,
        deviceType: body.deviceType,
        fleetId: 3,
        createdAt: '2026-11-28T10:00:00.000Z',
        mqtt: {},
        api: { tlsConfig: { caCert: CA, verifyCertificate: true } },
      };
      state.devices.set(uuid, { apiKey: body.deviceApiKey!, publicKey: body.devicePublicKey, verified: false });
      if (options.generation === 'agents') {
        const challenge = Buffer.from(randomUUID()).toString('base64url');
        state.challenges.set(uuid, challenge);
        answer.challenge = challenge;
      }
      sendJson(res, 200, answer);
      return;
    }
    const match = /^\/api\/v1\/device\/([^/]+)\/(key-exchange|challenge)$/.exec(req.url ?? '');
    const device = match ? state.devices.get(decodeURIComponent(match[1]!)) : undefined;
    if (req.method === 'POST' && match && device) {
      const uuid = decodeURIComponent(match[1]!);
      if (options.generation === 'devices') {
        const ok = req.headers.authorization === `Bearer ${device.apiKey}` && body.deviceApiKey === device.apiKey;
        if (ok) device.verified = true;
        sendJson(res, ok ? 200 : 401, ok ? { status: 'ok' } : { error: 'Unauthorized', message: 'key mismatch' });
        return;
      }
      if (req.headers['x-agent-key'] !== device.apiKey) {
        sendJson(res, 401, { error: 'Unauthorized', message: 'Invalid agent key' });
        return;
      }
      if (match[2] === 'challenge') {
        const challenge = Buffer.from(randomUUID()).toString('base64url');
        state.challenges.set(uuid, challenge);
        sendJson(res, 200, { challenge });
        return;
      }
      const challenge = state.challenges.get(uuid);
      state.challenges.delete(uuid); // one use
      if (!challenge || options.expireFirstChallenge) {
        options.expireFirstChallenge = false;
        sendJson(res, 401, { error: 'Unauthorized', message: 'Challenge expired or already used' });
        return;
      }
      const ok = verify(null, Buffer.from(`${uuid}:${challenge}`), createPublicKey(device.publicKey!), Buffer.from(body.signature ?? '', 'base64'));
      if (ok) device.verified = true;
      sendJson(res, ok ? 200 : 401, ok ? { status: 'ok', message: 'Proof of possession verified' } : { error: 'Unauthorized', message: 'Invalid signature' });
      return;
    }
    sendJson(res, 404, { error: 'Not found', message: `Route ${req.method} ${req.url} not found` });
  };
}

async function setup(cloud: FakeCloud, overrides: Partial<RegisterOptions> = {}) {
  const state: CloudState = { devices: new Map(), challenges: new Map() };
  const server = await startTestServer(fakeCloud(cloud, state));
  servers.push(server);
  const transport = createHttpTransport({ timeoutMs: 5000, clock: createSystemClock() });
  transports.push(transport);
  const log = createCaptureLog();
  const options: RegisterOptions = {
    apiUrl: `${server.url}/api/v1`,
    generation: 'auto',
    provisioningKey: PROVISIONING_KEY,
    deviceName: 'pi-kitchen',
    deviceType: 'Raspberry Pi 4 Model B Rev 1.4',
    macAddress: 'dc:a6:32:00:00:01',
    osVersion: 'Debian GNU/Linux 12 (bookworm)',
    agentVersion: '0.1.0',
    transport,
    log,
    ...overrides,
  };
  return { server, state, log, options };
}

async function registrationFailure(promise: Promise<unknown>): Promise<RegistrationError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RegistrationError);
  expect((error as Error).message).not.toContain(PROVISIONING_KEY);
  return error as RegistrationError;
}

describe('registerDevice', () => {
  it('generation devices: registers with Bearer provisioning key, exchanges the key, returns the identity', async () => {
    const { server, state, options } = await setup({ generation: 'devices' }, { generation: 'devices' });
    const identity = await registerDevice(options);
    expect(identity.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(identity.apiKey).toMatch(/^[0-9a-f]{64}$/);
    expect(identity).toMatchObject({
      generation: 'devices',
      publicKeyPem: null,
      privateKeyPem: null,
      caCertPem: CA,
      deviceName: 'pi-kitchen',
      deviceType: 'Raspberry Pi 4 Model B Rev 1.4',
      fleetId: '3',
    });
    expect(state.devices.get(identity.uuid)).toEqual({ apiKey: identity.apiKey, publicKey: undefined, verified: true });
    expect(server.seen.map((r) => [r.method, r.url])).toEqual([
      ['POST', '/api/v1/device/register'],
      ['POST', `/api/v1/device/${identity.uuid}/key-exchange`],
    ]);
    expect(JSON.parse(server.seen[0]!.body)).toEqual({
      uuid: identity.uuid,
      deviceName: 'pi-kitchen',
      deviceType: 'Raspberry Pi 4 Model B Rev 1.4',
      deviceApiKey: identity.apiKey,
      macAddress: 'dc:a6:32:00:00:01',
      osVersion: 'Debian GNU/Linux 12 (bookworm)',
      agentVersion: '0.1.0',
    });
  });

  it('generation agents: sends an Ed25519 public key and a signature the server verifies', async () => {
    const { server, state, options } = await setup({ generation: 'agents' }, { generation: 'agents' });
    const identity = await registerDevice(options);
    expect(identity.generation).toBe('agents');
    expect(identity.publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
    expect(identity.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(createPublicKey(identity.publicKeyPem!).asymmetricKeyType).toBe('ed25519');
    expect(state.devices.get(identity.uuid)!.verified).toBe(true);
    expect(server.seen[0]!.headers['x-provisioning-key']).toBe(PROVISIONING_KEY);
    expect(server.seen[0]!.headers.authorization).toBeUndefined();
    expect(server.seen[1]!.headers['x-agent-key']).toBe(identity.apiKey);
  });

  it('generation agents: asks for a new challenge when the first one expired', async () => {
    const { server, state, options, log } = await setup({ generation: 'agents', expireFirstChallenge: true }, { generation: 'agents' });
    const identity = await registerDevice(options);
    expect(state.devices.get(identity.uuid)!.verified).toBe(true);
    expect(server.seen.map((r) => r.url)).toEqual([
      '/api/v1/agent/register',
      `/api/v1/device/${identity.uuid}/key-exchange`,
      `/api/v1/device/${identity.uuid}/challenge`,
      `/api/v1/device/${identity.uuid}/key-exchange`,
    ]);
    expect(log.entries.map((e) => e.message)).toContain(
      'key exchange: the challenge was refused (Unauthorized: Challenge expired or already used); asking for a new one',
    );
  });

  it('auto: finds generation agents first', async () => {
    const { server, options } = await setup({ generation: 'agents' });
    expect((await registerDevice(options)).generation).toBe('agents');
    expect(server.seen[0]!.url).toBe('/api/v1/agent/register');
  });

  it('auto: falls back to generation devices on a route 404', async () => {
    const { server, state, options } = await setup({ generation: 'devices' });
    const identity = await registerDevice(options);
    expect(identity.generation).toBe('devices');
    expect(state.devices.get(identity.uuid)!.verified).toBe(true);
    expect(server.seen.map((r) => r.url)).toEqual([
      '/api/v1/agent/register',
      '/api/v1/device/register',
      `/api/v1/device/${identity.uuid}/key-exchange`,
    ]);
  });

  it('adopts the uuid the server answers with (pre-registered device)', async () => {
    const assigned = '11111111-2222-4333-8444-555555555555';
    for (const generation of ['devices', 'agents'] as const) {
      const { server, state, options, log } = await setup({ generation, assignUuid: assigned }, { generation });
      const identity = await registerDevice(options);
      expect(identity.uuid).toBe(assigned);
      expect(JSON.parse(server.seen[0]!.body).uuid).not.toBe(assigned);
      expect(state.devices.get(assigned)!.verified).toBe(true);
      expect(server.seen[1]!.url).toBe(`/api/v1/device/${assigned}/key-exchange`);
      expect(log.entries.map((e) => e.message)).toContain(`the server assigned uuid ${assigned} (pre-registered device); adopting it`);
    }
  });

  it('explains a wrong or expired provisioning key (401) without echoing it', async () => {
    const { options } = await setup({ generation: 'devices' }, { generation: 'devices', provisioningKey: 'wrong-key-1234' });
    const error = await registrationFailure(registerDevice(options));
    expect([error.kind, error.status]).toEqual(['provisioning-key', 401]);
    expect(error.message).toBe(
      'registration refused: the provisioning key is wrong or expired (401: Unauthorized: Invalid or expired provisioning key); get a current key for the fleet and set it with --provisioning-key-file or device.provisioning_key_file',
    );
    expect(error.message).not.toContain('wrong-key-1234');
  });

  it('explains 409 already registered', async () => {
    const { server, options } = await setup(
      { generation: 'devices', registerAnswer: { status: 409, body: { error: 'Device already registered' } } },
      { generation: 'devices', identityFile: '/var/lib/cloudjobs/identity.json' },
    );
    const error = await registrationFailure(registerDevice(options));
    const sent = JSON.parse(server.seen[0]!.body).uuid as string;
    expect([error.kind, error.status]).toEqual(['already-registered', 409]);
    expect(error.message).toBe(
      `this device (${sent}) is already registered (409: Device already registered): the cloud knows this uuid but this device has no identity for it in /var/lib/cloudjobs/identity.json; delete the device on the dashboard (or restore /var/lib/cloudjobs/identity.json from a backup), then register again`,
    );
  });

  it('carries Retry-After of a 429 so the caller backs off', async () => {
    const { options } = await setup(
      { generation: 'agents', registerAnswer: { status: 429, body: { error: 'Too many registration attempts', retryAfter: 900 }, headers: { 'retry-after': '600' } } },
      { generation: 'agents' },
    );
    const error = await registrationFailure(registerDevice(options));
    expect([error.kind, error.status, error.retryAfterMs]).toEqual(['rate-limited', 429, 600_000]);
    expect(error.message).toBe(
      'registration rate limited by the server (429: Too many registration attempts): it allows 5 attempts per 15 minutes; the server asks to wait 600s',
    );
  });

  it('passes on the server message of a 400', async () => {
    const { options } = await setup({ generation: 'devices' }, { generation: 'devices', deviceName: undefined as unknown as string });
    const error = await registrationFailure(registerDevice(options));
    expect([error.kind, error.status]).toEqual(['refused', 400]);
    expect(error.message).toBe('registration refused by the server (400: deviceName is required)');
  });

  it('says when neither registration route exists', async () => {
    const { server, options } = await setup({ generation: 'devices' }, { apiUrl: 'placeholder' });
    const error = await registrationFailure(registerDevice({ ...options, apiUrl: `${server.url}/wrong` }));
    expect(error.kind).toBe('route');
    expect(error.message).toBe(
      `the server has no registration route: POST ${server.url}/wrong/agent/register and POST ${server.url}/wrong/device/register answered 404; check cloud.api_url (it usually ends in /api/v1)`,
    );
  });

  it('refuses a 200 answer without a uuid', async () => {
    const { options } = await setup({ generation: 'devices', registerAnswer: { status: 200, body: { id: 1 } } }, { generation: 'devices' });
    const error = await registrationFailure(registerDevice(options));
    expect(error.kind).toBe('protocol');
    expect(error.message).toBe('the server answered registration with 200 but no uuid');
  });

  it('refuses a uuid that is not one URL path segment (issue 16: it would go into every URL)', async () => {
    const { options } = await setup({ generation: 'devices', registerAnswer: { status: 200, body: { uuid: '..' } } }, { generation: 'devices' });
    const error = await registrationFailure(registerDevice(options));
    expect(error.kind).toBe('protocol');
    expect(error.message).toBe(
      'the server answered registration with uuid "..", which cannot name this device in a URL: it is ".." (also as a %-escape), which URLs remove as a path segment',
    );
  });
});
