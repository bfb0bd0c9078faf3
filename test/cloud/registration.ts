// Both provisioning flows of test/cloud/CONTRACT.md: generation `devices` (Bearer
// provisioning key, key exchange with the API key) and generation `agents`
// (x-provisioning-key, Ed25519 proof of possession over a one-time challenge).
import { createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import { answerJson, answerUnknownRoute, type CloudCore, type RouteContext } from './cloud-core.js';
import { addDevice, hashApiKey, type DeviceRecord } from './cloud-state.js';
import { asRecord, parseJsonBody, readBody } from './http-io.js';

const REQUIRED = ['uuid', 'deviceName', 'deviceType', 'deviceApiKey'] as const;

/** Counts a registration attempt for the client IP; answers 429 and returns false when over the limit. */
function admitAttempt(core: CloudCore, ctx: RouteContext): boolean {
  const ip = ctx.req.socket.remoteAddress ?? 'unknown';
  const now = core.now();
  const { max, windowMs } = core.registrationLimit;
  let entry = core.state.registrationAttempts.get(ip);
  if (!entry || now - entry.windowStart >= windowMs) {
    entry = { windowStart: now, count: 0 };
    core.state.registrationAttempts.set(ip, entry);
  }
  entry.count += 1;
  if (entry.count <= max) return true;
  const retryAfter = Math.max(1, Math.ceil((entry.windowStart + windowMs - now) / 1000));
  answerJson(
    ctx,
    429,
    { error: 'Too many requests', message: 'Too many provisioning attempts from this IP, please try again later', retryAfter },
    { 'Retry-After': String(retryAfter) },
  );
  return false;
}

/** Checks a provisioning key; answers 401 and returns null when missing, unknown or expired. */
function checkProvisioningKey(core: CloudCore, ctx: RouteContext, key: string | null): string | null {
  if (key === null || key === '') {
    answerJson(ctx, 401, { error: 'Unauthorized', message: 'Provisioning key required' });
    return null;
  }
  const seed = core.state.provisioningKeys.get(key);
  if (!seed) {
    answerJson(ctx, 401, { error: 'Unauthorized', message: 'Invalid provisioning key' });
    return null;
  }
  if (seed.expired) {
    answerJson(ctx, 401, { error: 'Unauthorized', message: 'Provisioning key has expired' });
    return null;
  }
  return seed.fleetId ?? 'fleet-1';
}

async function readJson(core: CloudCore, ctx: RouteContext): Promise<Record<string, unknown> | null> {
  const body = await readBody(ctx.req, core.maxBodyBytes);
  if (!body.ok) {
    if (body.reason === 'too-large') answerJson(ctx, 413, { error: 'Payload Too Large', message: 'request entity too large' });
    return null;
  }
  const parsed = parseJsonBody(ctx.req, body.raw);
  if (!parsed.ok) {
    answerJson(ctx, 400, { error: 'Bad Request', message: 'Invalid JSON body' });
    return null;
  }
  return asRecord(parsed.value) ?? {};
}

function bearer(value: string | undefined): string | null {
  if (typeof value !== 'string' || !value.startsWith('Bearer ')) return null;
  return value.slice('Bearer '.length);
}

async function answerRegistered(core: CloudCore, ctx: RouteContext, device: DeviceRecord, extra: Record<string, unknown>): Promise<void> {
  const answer: Record<string, unknown> = {
    id: device.id,
    uuid: device.uuid,
    deviceName: device.deviceName,
    deviceType: device.deviceType,
    fleetId: device.fleetId,
    createdAt: device.createdAt,
    mqtt: await mqttAnswer(core, device.uuid),
    ...(core.generation === 'agents' ? { tenantId: core.push?.tenantId ?? 'tenant-1' } : {}),
    ...extra,
  };
  if (core.registrationCaCert !== null) {
    answer.api = { tlsConfig: { caCert: core.registrationCaCert, verifyCertificate: true } };
  }
  core.onChange();
  answerJson(ctx, 200, answer);
}

// The answer's mqtt block as the real servers send it: a broker user per device
// (device_{uuid} / agent_{uuid}) with a password given only here; an empty
// broker when the cloud has none.
async function mqttAnswer(core: CloudCore, uuid: string): Promise<Record<string, unknown>> {
  const registration = core.push?.registration;
  const username = `${core.generation === 'agents' ? 'agent' : 'device'}_${uuid}`;
  if (!registration) return { broker: '', username, topics: { publish: [], subscribe: [] } };
  const password = await registration.createUser(username);
  const base =
    core.generation === 'agents'
      ? `i/${core.push?.tenantId ?? 'tenant-1'}/a/${Buffer.from(uuid.replace(/-/g, ''), 'hex').toString('base64url')}`
      : `iot/device/${uuid}`;
  return {
    username,
    password,
    broker: registration.broker,
    ...(registration.brokerConfig ? { brokerConfig: registration.brokerConfig } : {}),
    topics: { publish: [`${base}/jobs/start-next`, `${base}/jobs/+/update`], subscribe: [`${base}/jobs/notify-next`] },
  };
}

// Creates the device row for a registration, adopting a pre-registered uuid when one is waiting.
function createRegisteredDevice(core: CloudCore, body: Record<string, unknown>, fleetId: string): DeviceRecord {
  const uuid = core.state.preRegistered.shift() ?? (body.uuid as string);
  const device = addDevice(
    core.state,
    {
      uuid,
      apiKey: body.deviceApiKey as string,
      registrationComplete: false,
      deviceName: body.deviceName as string,
      deviceType: body.deviceType as string,
    },
    core.now(),
  );
  device.fleetId = fleetId;
  device.macAddress = typeof body.macAddress === 'string' ? body.macAddress : null;
  device.osVersion = typeof body.osVersion === 'string' ? body.osVersion : null;
  device.agentVersion = typeof body.agentVersion === 'string' ? body.agentVersion : null;
  return device;
}

// Returns the missing required fields of a registration body.
function missingFields(body: Record<string, unknown>, extra: readonly string[]): string[] {
  return [...REQUIRED, ...extra].filter((k) => typeof body[k] !== 'string' || body[k] === '');
}

function isRegistered(core: CloudCore, uuid: string): boolean {
  const existing = core.state.devices.get(uuid);
  return existing !== undefined && existing.registrationComplete;
}

/** POST /device/register (generation `devices`). */
export async function handleDeviceRegister(core: CloudCore, ctx: RouteContext): Promise<void> {
  if (!admitAttempt(core, ctx)) return;
  const fleetId = checkProvisioningKey(core, ctx, bearer(ctx.req.headers.authorization));
  if (fleetId === null) return;
  const body = await readJson(core, ctx);
  if (body === null) return;
  const missing = missingFields(body, []);
  if (missing.length > 0) {
    answerJson(ctx, 400, { error: 'Missing required fields', message: `Required: ${missing.join(', ')}` });
    return;
  }
  if (isRegistered(core, body.uuid as string)) {
    answerJson(ctx, 409, { error: 'Device already registered', message: `Device ${String(body.uuid)} is already registered` });
    return;
  }
  const device = createRegisteredDevice(core, body, fleetId);
  await answerRegistered(core, ctx, device, {});
}

/** POST /agent/register (generation `agents`): also stores the Ed25519 public key and issues a challenge. */
export async function handleAgentRegister(core: CloudCore, ctx: RouteContext): Promise<void> {
  if (!admitAttempt(core, ctx)) return;
  const header = ctx.req.headers['x-provisioning-key'];
  const fleetId = checkProvisioningKey(core, ctx, typeof header === 'string' ? header : null);
  if (fleetId === null) return;
  const body = await readJson(core, ctx);
  if (body === null) return;
  const missing = missingFields(body, ['devicePublicKey']);
  if (missing.length > 0) {
    answerJson(ctx, 400, { error: 'Missing required fields', message: `Required: ${missing.join(', ')}` });
    return;
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(body.devicePublicKey as string);
  } catch {
    answerJson(ctx, 400, { error: 'Invalid public key', message: 'devicePublicKey must be an Ed25519 public key in PEM (SPKI)' });
    return;
  }
  if (publicKey.asymmetricKeyType !== 'ed25519') {
    answerJson(ctx, 400, { error: 'Invalid public key', message: `devicePublicKey must be Ed25519, got ${String(publicKey.asymmetricKeyType)}` });
    return;
  }
  if (isRegistered(core, body.uuid as string)) {
    answerJson(ctx, 409, { error: 'Device already registered', message: `Device ${String(body.uuid)} is already registered` });
    return;
  }
  const device = createRegisteredDevice(core, body, fleetId);
  device.publicKey = publicKey;
  const challenge = issueChallenge(core, device);
  await answerRegistered(core, ctx, device, { challenge: challenge.value, challengeExpiresAt: new Date(challenge.expiresAt).toISOString() });
}

function issueChallenge(core: CloudCore, device: DeviceRecord): { value: string; expiresAt: number } {
  device.challenge = { value: randomBytes(32).toString('base64url'), expiresAt: core.now() + core.challengeTtlMs, used: false };
  return device.challenge;
}

function challengeActive(core: CloudCore, device: DeviceRecord): boolean {
  return device.challenge !== null && !device.challenge.used && core.now() < device.challenge.expiresAt;
}

/** POST /device/{uuid}/key-exchange, in the shape of the server's generation. */
export async function handleKeyExchange(core: CloudCore, ctx: RouteContext, uuid: string): Promise<void> {
  const body = await readJson(core, ctx);
  if (body === null) return;
  const device = core.state.devices.get(uuid);
  if (!device) {
    answerJson(ctx, 404, { error: 'Not Found', message: 'Device not found' });
    return;
  }
  if (core.generation === 'devices') {
    const key = bearer(ctx.req.headers.authorization);
    if (key === null || body.deviceApiKey !== key || device.apiKeyHash !== hashApiKey(key)) {
      answerJson(ctx, 401, { error: 'Unauthorized', message: 'Device API key mismatch' });
      return;
    }
    device.registrationComplete = true;
    core.onChange();
    answerJson(ctx, 200, { status: 'ok', message: 'Key exchange successful', uuid: device.uuid });
    return;
  }
  const agentKey = ctx.req.headers['x-agent-key'];
  if (typeof agentKey !== 'string' || device.apiKeyHash !== hashApiKey(agentKey)) {
    answerJson(ctx, 401, { error: 'Unauthorized', message: 'Invalid agent key' });
    return;
  }
  if (device.publicKey === null || !challengeActive(core, device)) {
    answerJson(ctx, 401, { error: 'Unauthorized', message: 'Challenge expired or already used. Request a new one.' });
    return;
  }
  const challenge = device.challenge as { value: string; used: boolean };
  // One attempt per challenge, right or wrong, so a signature cannot be guessed.
  challenge.used = true;
  const signature = typeof body.signature === 'string' ? Buffer.from(body.signature, 'base64') : Buffer.alloc(0);
  let valid = false;
  try {
    valid = verify(null, Buffer.from(`${device.uuid}:${challenge.value}`, 'utf8'), device.publicKey, signature);
  } catch {
    valid = false;
  }
  if (!valid) {
    core.onChange();
    answerJson(ctx, 401, { error: 'Unauthorized', message: 'Invalid signature' });
    return;
  }
  device.registrationComplete = true;
  core.onChange();
  answerJson(ctx, 200, { status: 'ok', message: 'Proof of possession verified', uuid: device.uuid });
}

/** POST /device/{uuid}/challenge (generation `agents`): a fresh challenge unless one is still active. */
export async function handleNewChallenge(core: CloudCore, ctx: RouteContext, uuid: string): Promise<void> {
  if (core.generation !== 'agents') {
    answerUnknownRoute(core, ctx);
    return;
  }
  await readBody(ctx.req, core.maxBodyBytes);
  const device = core.state.devices.get(uuid);
  if (!device) {
    answerJson(ctx, 404, { error: 'Not Found', message: 'Device not found' });
    return;
  }
  const agentKey = ctx.req.headers['x-agent-key'];
  if (typeof agentKey !== 'string' || device.apiKeyHash !== hashApiKey(agentKey)) {
    answerJson(ctx, 401, { error: 'Unauthorized', message: 'Invalid agent key' });
    return;
  }
  if (challengeActive(core, device)) {
    answerJson(ctx, 409, {
      error: 'Conflict',
      message: 'A challenge is still active',
      expiresAt: new Date((device.challenge as { expiresAt: number }).expiresAt).toISOString(),
    });
    return;
  }
  const challenge = issueChallenge(core, device);
  core.onChange();
  answerJson(ctx, 200, { challenge: challenge.value, expiresAt: new Date(challenge.expiresAt).toISOString() });
}
