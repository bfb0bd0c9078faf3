import { generateKeyPairSync, sign } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../cloud/cloud-state.js';
import { startReferenceCloud, type ReferenceCloud, type ReferenceCloudOptions } from '../../cloud/reference-cloud.js';
import { send } from './http-client.js';

const UUID = '0b5a2c1e-7f3d-4c2a-9e8b-1d2c3b4a5f60';
const API_KEY = 'f'.repeat(64);
const PROV = 'prov-key-1';

let cloud: ReferenceCloud | null = null;
afterEach(async () => {
  await cloud?.close();
  cloud = null;
});

interface Clocked {
  cloud: ReferenceCloud;
  advance(ms: number): void;
}

async function start(options: ReferenceCloudOptions = {}): Promise<Clocked> {
  let now = Date.parse('2026-11-28T10:00:00.000Z');
  cloud = await startReferenceCloud({
    provisioningKeys: [{ key: PROV }, { key: 'old-key', expired: true }],
    now: () => now,
    ...options,
  });
  return { cloud, advance: (ms) => (now += ms) };
}

function registration(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    uuid: UUID,
    deviceName: 'pi-kitchen',
    deviceType: 'raspberrypi4-64',
    deviceApiKey: API_KEY,
    macAddress: 'dc:a6:32:00:00:01',
    osVersion: 'Debian 12',
    agentVersion: '0.1.0',
    ...extra,
  };
}

describe('reference cloud: registration, generation devices', () => {
  it('registers, completes the key exchange, then serves the device with its new key', async () => {
    const { cloud: c } = await start({ registrationCaCert: 'CA-PEM' });
    const reg = await send(`${c.url}/device/register`, { method: 'POST', headers: { Authorization: `Bearer ${PROV}` }, json: registration() });
    expect(reg.status).toBe(200);
    const body = reg.json() as Record<string, unknown>;
    expect(body).toMatchObject({ uuid: UUID, deviceName: 'pi-kitchen', deviceType: 'raspberrypi4-64', fleetId: 'fleet-1' });
    expect(typeof body.id).toBe('number');
    expect(body.api).toEqual({ tlsConfig: { caCert: 'CA-PEM', verifyCertificate: true } });
    // Only the hash of the key is kept.
    expect(c.getDevice(UUID)).toMatchObject({ apiKeySha256: hashApiKey(API_KEY), registrationComplete: false, macAddress: 'dc:a6:32:00:00:01' });
    expect(JSON.stringify(c.snapshot())).not.toContain(API_KEY);

    const early = await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: { 'X-Device-API-Key': API_KEY } });
    expect(early.status).toBe(403);

    const mismatch = await send(`${c.url}/device/${UUID}/key-exchange`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${API_KEY}` },
      json: { deviceApiKey: 'other' },
    });
    expect(mismatch.status).toBe(401);
    expect(mismatch.json()).toEqual({ error: 'Unauthorized', message: 'Device API key mismatch' });

    const exchange = await send(`${c.url}/device/${UUID}/key-exchange`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${API_KEY}` },
      json: { deviceApiKey: API_KEY },
    });
    expect(exchange.status).toBe(200);
    expect(exchange.json()).toMatchObject({ status: 'ok' });
    const poll = await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: { 'X-Device-API-Key': API_KEY } });
    expect(poll.status).toBe(200);
    expect(poll.json()).toEqual({ message: 'No pending jobs' });
  });

  it('answers 401 for a missing, bad or expired provisioning key and creates nothing', async () => {
    const { cloud: c } = await start();
    const cases: [Record<string, string>, string][] = [
      [{}, 'Provisioning key required'],
      [{ Authorization: 'Bearer nope' }, 'Invalid provisioning key'],
      [{ Authorization: 'Bearer old-key' }, 'Provisioning key has expired'],
    ];
    for (const [headers, message] of cases) {
      const res = await send(`${c.url}/device/register`, { method: 'POST', headers, json: registration() });
      expect(res.status).toBe(401);
      expect(res.json()).toEqual({ error: 'Unauthorized', message });
    }
    expect(c.listDevices()).toEqual([]);
  });

  it('answers 400 naming the missing fields and 409 for an already registered uuid', async () => {
    const { cloud: c } = await start();
    const headers = { Authorization: `Bearer ${PROV}` };
    const missing = await send(`${c.url}/device/register`, { method: 'POST', headers, json: { uuid: UUID, deviceName: 'x' } });
    expect(missing.status).toBe(400);
    expect(missing.json()).toEqual({ error: 'Missing required fields', message: 'Required: deviceType, deviceApiKey' });

    c.addDevice({ uuid: UUID, apiKey: 'existing' });
    const taken = await send(`${c.url}/device/register`, { method: 'POST', headers, json: registration() });
    expect(taken.status).toBe(409);
    expect(taken.json()).toEqual({ error: 'Device already registered', message: `Device ${UUID} is already registered` });
  });

  it('answers with a pre-registered uuid, which the device then uses', async () => {
    const { cloud: c } = await start();
    const pre = '11111111-2222-4333-8444-555555555555';
    c.preRegisterUuid(pre);
    const reg = await send(`${c.url}/device/register`, { method: 'POST', headers: { Authorization: `Bearer ${PROV}` }, json: registration() });
    expect((reg.json() as { uuid: string }).uuid).toBe(pre);
    expect(c.getDevice(UUID)).toBeUndefined();
    const exchange = await send(`${c.url}/device/${pre}/key-exchange`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${API_KEY}` },
      json: { deviceApiKey: API_KEY },
    });
    expect(exchange.status).toBe(200);
    expect((await send(`${c.url}/devices/${pre}/jobs/next`, { headers: { 'X-Device-API-Key': API_KEY } })).status).toBe(200);
  });

  it('allows 5 attempts per 15 minutes per IP, then 429 with Retry-After, then again after the window', async () => {
    const { cloud: c, advance } = await start();
    const attempt = () => send(`${c.url}/device/register`, { method: 'POST', headers: { Authorization: 'Bearer nope' }, json: registration() });
    for (let i = 0; i < 5; i += 1) expect((await attempt()).status).toBe(401);
    advance(60_000);
    const limited = await attempt();
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('840');
    expect(limited.json()).toEqual({
      error: 'Too many requests',
      message: 'Too many provisioning attempts from this IP, please try again later',
      retryAfter: 840,
    });
    advance(840_000);
    expect((await attempt()).status).toBe(401);
  });
});

describe('reference cloud: registration, generation agents', () => {
  function keyPair() {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    return { publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(), privateKey };
  }

  async function register(c: ReferenceCloud, publicPem: string) {
    const res = await send(`${c.url}/agent/register`, {
      method: 'POST',
      headers: { 'x-provisioning-key': PROV },
      json: registration({ devicePublicKey: publicPem }),
    });
    expect(res.status).toBe(200);
    return res.json() as { uuid: string; challenge: string };
  }

  const exchange = (c: ReferenceCloud, uuid: string, signature: string, agentKey = API_KEY) =>
    send(`${c.url}/device/${uuid}/key-exchange`, { method: 'POST', headers: { 'x-agent-key': agentKey }, json: { signature } });

  it('verifies the Ed25519 signature over "<uuid>:<challenge>" and then serves the device', async () => {
    const { cloud: c } = await start({ generation: 'agents' });
    const keys = keyPair();
    const reg = await register(c, keys.publicPem);
    expect(reg.challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const signature = sign(null, Buffer.from(`${reg.uuid}:${reg.challenge}`), keys.privateKey).toString('base64');
    const ok = await exchange(c, reg.uuid, signature);
    expect(ok.status).toBe(200);
    expect(ok.json()).toEqual({ status: 'ok', message: 'Proof of possession verified', uuid: UUID });
    const poll = await send(`${c.url}/agents/${UUID}/jobs/next`, { headers: { 'X-Device-API-Key': API_KEY } });
    expect(poll.status).toBe(404);
    expect(poll.json()).toEqual({ error: 'No pending jobs' });

    // The challenge was good once.
    const reused = await exchange(c, reg.uuid, signature);
    expect(reused.status).toBe(401);
    expect(reused.json()).toEqual({ error: 'Unauthorized', message: 'Challenge expired or already used. Request a new one.' });
  });

  it('rejects a bad signature, burns the challenge, and issues a new one on request', async () => {
    const { cloud: c } = await start({ generation: 'agents' });
    const keys = keyPair();
    const reg = await register(c, keys.publicPem);
    const other = keyPair();
    const wrong = sign(null, Buffer.from(`${reg.uuid}:${reg.challenge}`), other.privateKey).toString('base64');
    const bad = await exchange(c, reg.uuid, wrong);
    expect(bad.status).toBe(401);
    expect(bad.json()).toEqual({ error: 'Unauthorized', message: 'Invalid signature' });
    expect(c.getDevice(UUID)?.registrationComplete).toBe(false);

    const fresh = await send(`${c.url}/device/${reg.uuid}/challenge`, { method: 'POST', headers: { 'x-agent-key': API_KEY } });
    expect(fresh.status).toBe(200);
    const challenge = (fresh.json() as { challenge: string }).challenge;
    expect(challenge).not.toBe(reg.challenge);
    const again = await send(`${c.url}/device/${reg.uuid}/challenge`, { method: 'POST', headers: { 'x-agent-key': API_KEY } });
    expect(again.status).toBe(409);
    expect((again.json() as { error: string }).error).toBe('Conflict');

    const good = sign(null, Buffer.from(`${reg.uuid}:${challenge}`), keys.privateKey).toString('base64');
    expect((await exchange(c, reg.uuid, good)).status).toBe(200);
    expect(c.getDevice(UUID)?.registrationComplete).toBe(true);
  });

  it('lets a challenge expire after 5 minutes', async () => {
    const { cloud: c, advance } = await start({ generation: 'agents' });
    const keys = keyPair();
    const reg = await register(c, keys.publicPem);
    advance(5 * 60 * 1000);
    const signature = sign(null, Buffer.from(`${reg.uuid}:${reg.challenge}`), keys.privateKey).toString('base64');
    const late = await exchange(c, reg.uuid, signature);
    expect(late.status).toBe(401);
    expect((late.json() as { message: string }).message).toBe('Challenge expired or already used. Request a new one.');
    // An expired challenge no longer blocks a new one.
    expect((await send(`${c.url}/device/${reg.uuid}/challenge`, { method: 'POST', headers: { 'x-agent-key': API_KEY } })).status).toBe(200);
  });

  it('checks the agent key and the public key', async () => {
    const { cloud: c } = await start({ generation: 'agents' });
    const keys = keyPair();
    const reg = await register(c, keys.publicPem);
    const signature = sign(null, Buffer.from(`${reg.uuid}:${reg.challenge}`), keys.privateKey).toString('base64');
    const wrongKey = await exchange(c, reg.uuid, signature, 'not-the-key');
    expect(wrongKey.status).toBe(401);
    expect(wrongKey.json()).toEqual({ error: 'Unauthorized', message: 'Invalid agent key' });

    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const notEd = await send(`${c.url}/agent/register`, {
      method: 'POST',
      headers: { 'x-provisioning-key': PROV },
      json: registration({ uuid: 'another', devicePublicKey: rsa }),
    });
    expect(notEd.status).toBe(400);
    expect(notEd.json()).toEqual({ error: 'Invalid public key', message: 'devicePublicKey must be Ed25519, got rsa' });
    const noKey = await send(`${c.url}/agent/register`, { method: 'POST', headers: { 'x-provisioning-key': PROV }, json: registration() });
    expect(noKey.status).toBe(400);
    expect(noKey.json()).toEqual({ error: 'Missing required fields', message: 'Required: devicePublicKey' });
    // Bearer is the older generation's header: not accepted here.
    const bearer = await send(`${c.url}/agent/register`, { method: 'POST', headers: { Authorization: `Bearer ${PROV}` }, json: registration() });
    expect(bearer.status).toBe(401);
  });
});
