// The registered device identity (issue 6): state_dir/identity.json, mode 0600
// in a 0700 directory, written atomically. It holds the device API key and,
// for generation `agents`, the Ed25519 private key.
//
// The CA from the registration answer is stored inside the same file rather
// than in a separate cloud-ca.pem: one atomic write keeps key, uuid and CA
// consistent (two files cannot be replaced together), and the cloud module
// passes PEM text to TLS anyway.
import { chmod, stat } from 'node:fs/promises';
import type { ApiGeneration, MqttRegistration } from '../contract/types.js';
import type { Log } from '../log/log.js';
import { describeIoError, ensurePrivateDir, isErrnoCode } from './atomic-file.js';
import { readJsonFile, writeJsonFile, type TimeSource } from './json-file.js';
import { resolveStatePaths } from './state-paths.js';
import {
  expectInteger,
  expectNonEmptyString,
  expectOneOf,
  expectOptionalString,
  expectRecord,
  expectString,
  expectTimestamp,
  expectVersion,
} from './validate.js';

const IDENTITY_VERSION = 1;
const IDENTITY_MODE = 0o600;
const GENERATIONS: readonly ApiGeneration[] = ['devices', 'agents'];

/** The identity `cloudjobs register` obtained. */
export interface StoredIdentity {
  version: 1;
  uuid: string;
  apiKey: string;
  generation: ApiGeneration;
  deviceName: string;
  /** ISO time of registration. */
  registeredAt: string;
  publicKeyPem?: string;
  privateKeyPem?: string;
  /** The CA the registration answer told us to trust (api.tlsConfig.caCert). */
  caCertPem?: string;
  /** The broker credentials of the registration answer (the password is given only then). */
  mqtt?: MqttRegistration;
}

/** Returns the path of the identity file under `stateDir`. */
export function identityPath(stateDir: string): string {
  return resolveStatePaths(stateDir).identityFile;
}

/** Reads the stored identity: null when none (or it was corrupt and moved aside); a too-open file is tightened to 0600 with a warning. */
export async function readIdentity(stateDir: string, log: Log, clock?: TimeSource): Promise<StoredIdentity | null> {
  const path = identityPath(stateDir);
  const identity = await readJsonFile(path, validateIdentity, log, clock);
  if (identity === null) return null;
  await tightenMode(path, log);
  return identity;
}

/** Stores the identity atomically (file 0600, directory 0700), replacing any previous one. */
export async function writeIdentity(stateDir: string, identity: StoredIdentity): Promise<void> {
  validateIdentity(identity);
  await ensurePrivateDir(stateDir);
  await writeJsonFile(identityPath(stateDir), identity, IDENTITY_MODE);
}

async function tightenMode(path: string, log: Log): Promise<void> {
  try {
    const mode = (await stat(path)).mode & 0o777;
    if ((mode & 0o077) === 0) return;
    await chmod(path, IDENTITY_MODE);
    log.warn(
      `identity file ${path} was readable by others (mode ${mode.toString(8).padStart(4, '0')}); it holds the device API key, so it is now 0600`,
      { file: path },
    );
  } catch (error) {
    if (isErrnoCode(error, 'ENOENT')) return;
    throw describeIoError('tighten the permissions of', path, error);
  }
}

/** Validates the identity file's content. */
export function validateIdentity(value: unknown): StoredIdentity {
  const r = expectRecord(value, 'identity');
  expectVersion(r, IDENTITY_VERSION);
  const identity: StoredIdentity = {
    version: IDENTITY_VERSION,
    uuid: expectNonEmptyString(r, 'uuid'),
    apiKey: expectNonEmptyString(r, 'apiKey'),
    generation: expectOneOf(r, 'generation', GENERATIONS),
    deviceName: expectString(r, 'deviceName'),
    registeredAt: expectTimestamp(r, 'registeredAt'),
  };
  const publicKeyPem = expectOptionalString(r, 'publicKeyPem');
  const privateKeyPem = expectOptionalString(r, 'privateKeyPem');
  const caCertPem = expectOptionalString(r, 'caCertPem');
  if (publicKeyPem !== undefined) identity.publicKeyPem = publicKeyPem;
  if (privateKeyPem !== undefined) identity.privateKeyPem = privateKeyPem;
  if (caCertPem !== undefined) identity.caCertPem = caCertPem;
  if (r.mqtt !== undefined) identity.mqtt = validateMqtt(expectRecord(r.mqtt, 'identity.mqtt'));
  return identity;
}

function validateMqtt(r: Record<string, unknown>): MqttRegistration {
  const mqtt: MqttRegistration = {
    broker: expectString(r, 'broker'),
    username: expectString(r, 'username'),
    password: expectString(r, 'password'),
  };
  const clientIdPrefix = expectOptionalString(r, 'clientIdPrefix');
  const caCertPem = expectOptionalString(r, 'caCertPem');
  const tenantId = expectOptionalString(r, 'tenantId');
  if (clientIdPrefix !== undefined) mqtt.clientIdPrefix = clientIdPrefix;
  if (caCertPem !== undefined) mqtt.caCertPem = caCertPem;
  if (tenantId !== undefined) mqtt.tenantId = tenantId;
  if (r.keepAliveSeconds !== undefined) mqtt.keepAliveSeconds = expectInteger(r, 'keepAliveSeconds', 1);
  return mqtt;
}
