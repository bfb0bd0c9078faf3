// Provisioning (test/cloud/CONTRACT.md "Provisioning", issue 6.1): the device makes its
// own uuid and API key (and, for generation agents, an Ed25519 key pair),
// registers with a fleet provisioning key, proves it holds the key, and adopts
// the uuid the server answers with.
import { generateKeyPairSync, randomBytes, randomUUID, sign, type KeyObject } from 'node:crypto';
import { checkPathSegment } from '../contract/limits.js';
import type { ApiGeneration, MqttRegistration } from '../contract/types.js';
import { AgentError } from '../errors/errors.js';
import { showText } from '../log/escape.js';
import type { Log } from '../log/log.js';
import type { HttpResponse, HttpTransport } from './http.js';
import { isRecord, parseJsonBody, readErrorWords, readRetryAfterMs, readServerMessage } from './parse-answer.js';

/**
 * provisioning-key: 401/403, the key is wrong or expired; already-registered:
 * 409; rate-limited: 429 (retryAfterMs says how long); refused: 400; route: no
 * registration endpoint at api_url; key-exchange: the proof of key failed;
 * server: 5xx; protocol: an answer we cannot use.
 */
export type RegistrationFailure =
  | 'provisioning-key'
  | 'already-registered'
  | 'rate-limited'
  | 'refused'
  | 'route'
  | 'key-exchange'
  | 'server'
  | 'protocol';

/** Registration failed for a reason the server gave; `kind` feeds the backoff like a CloudError's. */
export class RegistrationError extends AgentError {
  readonly kind: RegistrationFailure;
  readonly status?: number;
  readonly serverMessage?: string;
  readonly retryAfterMs?: number;
  constructor(kind: RegistrationFailure, message: string, details: { status?: number; serverMessage?: string; retryAfterMs?: number } = {}) {
    super('REGISTRATION', message);
    this.kind = kind;
    if (details.status !== undefined) this.status = details.status;
    if (details.serverMessage !== undefined) this.serverMessage = details.serverMessage;
    if (details.retryAfterMs !== undefined) this.retryAfterMs = details.retryAfterMs;
  }
}

/** Options of registerDevice. */
export interface RegisterOptions {
  apiUrl: string;
  generation: 'auto' | ApiGeneration;
  provisioningKey: string;
  deviceName: string;
  deviceType: string;
  macAddress: string;
  osVersion: string;
  agentVersion: string;
  transport: HttpTransport;
  log: Log;
  signal?: AbortSignal;
  /** Named in the 409 advice (default "state_dir/identity.json"). */
  identityFile?: string;
  /** Wall-clock time for Retry-After dates when the answer has no Date header. */
  now?: () => number;
}

/** What registration produced; the caller stores it (files 0600). */
export interface RegisteredIdentity {
  uuid: string;
  /** 64 hex characters (256 bits); secret. */
  apiKey: string;
  generation: ApiGeneration;
  /** Ed25519 keys (PEM SPKI / PKCS#8) for generation agents, else null; the private key is secret. */
  publicKeyPem: string | null;
  privateKeyPem: string | null;
  /** api.tlsConfig.caCert of the answer: the CA to trust for the API from now on. */
  caCertPem: string | null;
  deviceName: string;
  deviceType: string;
  /** fleetId of the answer, when there was one. */
  fleetId: string | null;
  /** The answer's mqtt credentials (and tenantId), or null when it named no broker. */
  mqtt: MqttRegistration | null;
}

/** Registers this device and completes the key exchange; throws RegistrationError or CloudError. */
export async function registerDevice(options: RegisterOptions): Promise<RegisteredIdentity> {
  const base = options.apiUrl.replace(/\/+$/, '');
  const sentUuid = randomUUID();
  const apiKey = randomBytes(32).toString('hex');
  const order: ApiGeneration[] = options.generation === 'auto' ? ['agents', 'devices'] : [options.generation];
  const misses: string[] = [];
  for (const generation of order) {
    const keys = generation === 'agents' ? generateKeyPairSync('ed25519') : null;
    const response = await postRegister(options, base, generation, sentUuid, apiKey, keys?.publicKey ?? null);
    if (response.status === 404) {
      misses.push(`POST ${base}${registerPath(generation)}`);
      options.log.debug(`no registration route for generation ${generation} (404: ${readServerMessage(response.body)})`);
      continue;
    }
    const answer = readRegisterAnswer(options, response, sentUuid);
    const uuid = answer.uuid;
    if (uuid !== sentUuid) options.log.info(`the server assigned uuid ${uuid} (pre-registered device); adopting it`);
    if (generation === 'agents') {
      await proveAgentKey(options, base, uuid, apiKey, keys!.privateKey, answer.challenge);
    } else {
      await exchangeDeviceKey(options, base, uuid, apiKey);
    }
    options.log.info(`registered as device ${uuid} (generation ${generation})`);
    return {
      uuid,
      apiKey,
      generation,
      publicKeyPem: keys ? keys.publicKey.export({ type: 'spki', format: 'pem' }).toString() : null,
      privateKeyPem: keys ? keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() : null,
      caCertPem: answer.caCertPem,
      deviceName: options.deviceName,
      deviceType: options.deviceType,
      fleetId: answer.fleetId,
      mqtt: answer.mqtt,
    };
  }
  throw new RegistrationError(
    'route',
    `the server has no registration route: ${misses.join(' and ')} answered 404; check cloud.api_url (it usually ends in /api/v1)`,
    { status: 404 },
  );
}

function registerPath(generation: ApiGeneration): string {
  return generation === 'agents' ? '/agent/register' : '/device/register';
}

async function postRegister(
  options: RegisterOptions,
  base: string,
  generation: ApiGeneration,
  uuid: string,
  apiKey: string,
  publicKey: KeyObject | null,
): Promise<HttpResponse> {
  const body: Record<string, string> = {
    uuid,
    deviceName: options.deviceName,
    deviceType: options.deviceType,
    deviceApiKey: apiKey,
    macAddress: options.macAddress,
    osVersion: options.osVersion,
    agentVersion: options.agentVersion,
  };
  if (publicKey) body.devicePublicKey = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const headers: Record<string, string> =
    generation === 'agents'
      ? { 'x-provisioning-key': options.provisioningKey }
      : { authorization: `Bearer ${options.provisioningKey}` };
  return options.transport.request({
    method: 'POST',
    url: base + registerPath(generation),
    headers,
    json: body,
    ...(options.signal ? { signal: options.signal } : {}),
  });
}

interface RegisterAnswer {
  uuid: string;
  challenge: string | null;
  caCertPem: string | null;
  fleetId: string | null;
  mqtt: MqttRegistration | null;
}

function readRegisterAnswer(options: RegisterOptions, response: HttpResponse, sentUuid: string): RegisterAnswer {
  const status = response.status;
  if (status < 200 || status >= 300) throw describeRegisterFailure(options, response, sentUuid);
  let value: unknown;
  try {
    value = parseJsonBody(response);
  } catch (error) {
    throw new RegistrationError('protocol', `registration answer unusable: ${(error as Error).message}`, { status });
  }
  if (!isRecord(value) || typeof value.uuid !== 'string' || value.uuid.trim() === '') {
    throw new RegistrationError('protocol', `the server answered registration with ${status} but no uuid`, { status });
  }
  // it goes into every URL from now on (/devices/{uuid}/...): one path segment or nothing
  const uuidProblem = checkPathSegment(value.uuid);
  if (uuidProblem !== null) {
    throw new RegistrationError('protocol', `the server answered registration with uuid ${JSON.stringify(showText(value.uuid, 80))}, which cannot name this device in a URL: ${uuidProblem}`, { status });
  }
  const api = isRecord(value.api) ? value.api : {};
  const tlsConfig = isRecord(api.tlsConfig) ? api.tlsConfig : {};
  const caCert = typeof tlsConfig.caCert === 'string' && tlsConfig.caCert.includes('-----BEGIN') ? tlsConfig.caCert : null;
  const fleet = value.fleetId;
  return {
    uuid: value.uuid,
    challenge: typeof value.challenge === 'string' && value.challenge !== '' ? value.challenge : null,
    caCertPem: caCert,
    fleetId: typeof fleet === 'string' || typeof fleet === 'number' ? String(fleet) : null,
    mqtt: readMqttRegistration(value),
  };
}

// Server text is hostile: every field is bounded and checked before it is stored.
const MAX_MQTT_TEXT = 512;
const MAX_PEM = 64 * 1024;

/** Reads the answer's mqtt block (and tenantId); null when it names no broker or no credentials. */
export function readMqttRegistration(answer: Record<string, unknown>): MqttRegistration | null {
  const mqtt = isRecord(answer.mqtt) ? answer.mqtt : null;
  if (!mqtt) return null;
  const config = isRecord(mqtt.brokerConfig) ? mqtt.brokerConfig : {};
  const broker = readBrokerUrl(mqtt.broker, config);
  const username = boundedText(mqtt.username);
  const password = typeof mqtt.password === 'string' && mqtt.password.length <= MAX_MQTT_TEXT ? mqtt.password : '';
  if (broker === '' || username === '') return null;
  const result: MqttRegistration = { broker, username, password };
  const prefix = boundedText(config.clientIdPrefix);
  if (prefix !== '') result.clientIdPrefix = prefix;
  const keepAlive = config.keepAlive;
  if (typeof keepAlive === 'number' && Number.isInteger(keepAlive) && keepAlive >= 5 && keepAlive <= 3600) result.keepAliveSeconds = keepAlive;
  const ca = config.caCert;
  if (typeof ca === 'string' && ca.length <= MAX_PEM && ca.includes('-----BEGIN CERTIFICATE')) result.caCertPem = ca;
  const tenant = boundedText(answer.tenantId ?? mqtt.tenantId);
  if (tenant !== '') result.tenantId = tenant;
  return result;
}

// mqtt.broker as a URL, else built from brokerConfig {protocol, host, port, useTls}; '' when neither names a broker.
function readBrokerUrl(broker: unknown, config: Record<string, unknown>): string {
  const text = boundedText(broker);
  const parse = (candidate: string): string => {
    try {
      const url = new URL(candidate);
      if ((url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:') || url.hostname === '') return '';
      return `${url.protocol}//${url.host.replace(/:\d+$/, '')}:${url.port || (url.protocol === 'mqtts:' ? '8883' : '1883')}`;
    } catch {
      return '';
    }
  };
  if (text.includes('://')) return parse(text);
  const host = boundedText(config.host) || text.replace(/:\d+$/, '');
  if (host === '' || !/^[A-Za-z0-9.:[\]-]+$/.test(host)) return '';
  const tls = config.useTls === true || config.protocol === 'mqtts' || config.protocol === 'ssl';
  const port = typeof config.port === 'number' && Number.isInteger(config.port) ? config.port : Number(/:(\d+)$/.exec(text)?.[1] ?? (tls ? 8883 : 1883));
  return parse(`${tls ? 'mqtts' : 'mqtt'}://${host}:${port}`);
}

function boundedText(value: unknown): string {
  return typeof value === 'string' && value.length <= MAX_MQTT_TEXT && /^[\x21-\x7e]*$/.test(value) ? value : '';
}

function describeRegisterFailure(options: RegisterOptions, response: HttpResponse, uuid: string): RegistrationError {
  const status = response.status;
  const said = readServerMessage(response.body);
  const saidPart = said ? `: ${said}` : '';
  const details = { status, serverMessage: said };
  if (status === 401 || status === 403) {
    return new RegistrationError(
      'provisioning-key',
      `registration refused: the provisioning key is wrong or expired (${status}${saidPart}); get a current key for the fleet and set it with --provisioning-key-file or device.provisioning_key_file`,
      details,
    );
  }
  if (status === 409) {
    const file = options.identityFile ?? 'state_dir/identity.json';
    return new RegistrationError(
      'already-registered',
      `this device (${uuid}) is already registered (409${saidPart}): the cloud knows this uuid but this device has no identity for it in ${file}; delete the device on the dashboard (or restore ${file} from a backup), then register again`,
      details,
    );
  }
  if (status === 429) {
    const retryAfterMs = readRetryAfterMs(response, nowOf(options));
    const wait = retryAfterMs === undefined ? '' : `; the server asks to wait ${Math.ceil(retryAfterMs / 1000)}s`;
    return new RegistrationError(
      'rate-limited',
      `registration rate limited by the server (429${saidPart}): it allows 5 attempts per 15 minutes${wait}`,
      retryAfterMs === undefined ? details : { ...details, retryAfterMs },
    );
  }
  if (status === 400) {
    return new RegistrationError('refused', `registration refused by the server (400${saidPart})`, details);
  }
  if (status >= 500) {
    return new RegistrationError('server', `registration failed on the server (${status}${saidPart})`, details);
  }
  return new RegistrationError('protocol', `the server answered registration with an unexpected ${status}${saidPart}`, details);
}

async function exchangeDeviceKey(options: RegisterOptions, base: string, uuid: string, apiKey: string): Promise<void> {
  const response = await options.transport.request({
    method: 'POST',
    url: `${base}/device/${encodeURIComponent(uuid)}/key-exchange`,
    headers: { authorization: `Bearer ${apiKey}` },
    json: { deviceApiKey: apiKey },
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (response.status >= 200 && response.status < 300) return;
  throw keyExchangeFailure(options, response);
}

// Signs "<uuid>:<challenge>"; a stale or used challenge is replaced once via POST /device/{uuid}/challenge.
async function proveAgentKey(
  options: RegisterOptions,
  base: string,
  uuid: string,
  apiKey: string,
  privateKey: KeyObject,
  firstChallenge: string | null,
): Promise<void> {
  let challenge = firstChallenge ?? (await requestChallenge(options, base, uuid, apiKey));
  for (let attempt = 1; ; attempt += 1) {
    const signature = sign(null, Buffer.from(`${uuid}:${challenge}`), privateKey).toString('base64');
    const response = await options.transport.request({
      method: 'POST',
      url: `${base}/device/${encodeURIComponent(uuid)}/key-exchange`,
      headers: { 'x-agent-key': apiKey },
      json: { signature },
      ...(options.signal ? { signal: options.signal } : {}),
    });
    if (response.status >= 200 && response.status < 300) return;
    const stale = response.status !== 429 && response.status < 500 && /challenge/.test(readErrorWords(response.body));
    if (!stale || attempt >= 2) throw keyExchangeFailure(options, response);
    options.log.info(`key exchange: the challenge was refused (${readServerMessage(response.body)}); asking for a new one`);
    challenge = await requestChallenge(options, base, uuid, apiKey);
  }
}

async function requestChallenge(options: RegisterOptions, base: string, uuid: string, apiKey: string): Promise<string> {
  const response = await options.transport.request({
    method: 'POST',
    url: `${base}/device/${encodeURIComponent(uuid)}/challenge`,
    headers: { 'x-agent-key': apiKey },
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (response.status < 200 || response.status >= 300) throw keyExchangeFailure(options, response);
  let value: unknown;
  try {
    value = parseJsonBody(response);
  } catch (error) {
    throw new RegistrationError('protocol', `challenge answer unusable: ${(error as Error).message}`, { status: response.status });
  }
  if (!isRecord(value) || typeof value.challenge !== 'string' || value.challenge === '') {
    throw new RegistrationError('protocol', `the server answered POST /device/${uuid}/challenge without a challenge`, {
      status: response.status,
    });
  }
  return value.challenge;
}

function keyExchangeFailure(options: RegisterOptions, response: HttpResponse): RegistrationError {
  const status = response.status;
  const said = readServerMessage(response.body);
  if (status === 429) {
    const retryAfterMs = readRetryAfterMs(response, nowOf(options));
    return new RegistrationError('rate-limited', `key exchange rate limited by the server (429${said ? `: ${said}` : ''})`, {
      status,
      serverMessage: said,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
  return new RegistrationError(
    status >= 500 ? 'server' : 'key-exchange',
    `key exchange failed (${status}${said ? `: ${said}` : ''}); the device is registered on the server but could not prove its key: run the registration again`,
    { status, serverMessage: said },
  );
}

function nowOf(options: RegisterOptions): () => number {
  return options.now ?? (() => Date.now());
}
