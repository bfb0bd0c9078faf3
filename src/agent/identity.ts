// Which uuid and API key this device uses, and where they came from (issue 6.2):
// [device] uuid and the api key from config or environment first, then the
// identity stored by registration, then (uuid only) the local supervisor API.
import type { SupervisorAnswer } from '../cloud/supervisor.js';
import type { Config } from '../config/schema.js';
import type { ApiGeneration, MqttRegistration } from '../contract/types.js';
import { AgentError } from '../errors/errors.js';

/** Where a value came from; `check-config` and `status` show it. */
export type IdentitySource = 'config' | 'env' | 'identity-file' | 'supervisor';

/** The parts of the registered identity (state/identity-store) this needs. */
export interface StoredIdentityView {
  uuid: string;
  apiKey: string;
  generation?: ApiGeneration;
  caCertPem?: string;
  mqtt?: MqttRegistration;
}

/** The identity in use. */
export interface ResolvedIdentity {
  uuid: string;
  /** Secret: never log it. */
  apiKey: string;
  /** Where the uuid came from. */
  source: IdentitySource;
  apiKeySource: IdentitySource;
  /** The generation registration found, when the identity file was used. */
  generation: ApiGeneration | null;
  /** The CA stored by registration, to trust for the API. */
  caCertPem: string | null;
  /** The broker credentials stored by registration, when the identity in use is the registered device. */
  mqtt: MqttRegistration | null;
}

/** Why no identity could be put together; `reason` lets `run` decide to register by itself. */
export class IdentityError extends AgentError {
  readonly reason: 'no-uuid' | 'no-api-key' | 'api-key-file' | 'mismatch';
  constructor(reason: IdentityError['reason'], message: string, options?: { cause?: unknown }) {
    super('CONFIG', message, options);
    this.reason = reason;
  }
}

/** Inputs of resolveIdentity; every source is a parameter. */
export interface ResolveIdentityOptions {
  config: Config;
  /** The registered identity (state/identity-store readIdentity), null when none. */
  readStoredIdentity: () => Promise<StoredIdentityView | null>;
  /** The supervisor probe (cloud/supervisor fetchSupervisorUuid bound to a transport). */
  fetchSupervisorUuid: (supervisorUrl: string) => Promise<SupervisorAnswer>;
  /** Reads cloud.api_key_file. */
  readFile: (path: string) => Promise<string>;
  /** LoadedConfig.sources: "section.key" -> "default", the file path or an environment variable name. */
  sources?: Readonly<Record<string, string>>;
}

/** Resolves the uuid and API key, or throws IdentityError saying what to do. */
export async function resolveIdentity(options: ResolveIdentityOptions): Promise<ResolvedIdentity> {
  const { config } = options;
  const configured = await readConfiguredKey(options);
  const stored = await options.readStoredIdentity();

  let uuid = config.device.uuid.trim();
  let source: IdentitySource | null = uuid ? originOf(options.sources, 'device.uuid') : null;
  let apiKey = configured?.apiKey ?? '';
  let apiKeySource: IdentitySource | null = configured?.source ?? null;
  let fromFile = false;

  if (!uuid && stored) {
    uuid = stored.uuid;
    source = 'identity-file';
    fromFile = true;
  }
  if (!apiKey && stored) {
    if (stored.uuid !== uuid) {
      throw new IdentityError(
        'mismatch',
        `the registered identity (identity.json in ${config.agent.state_dir}) belongs to device ${stored.uuid}, but device.uuid is ${uuid}; set cloud.api_key_file for ${uuid}, or empty device.uuid to use the registered device`,
      );
    }
    apiKey = stored.apiKey;
    apiKeySource = 'identity-file';
    fromFile = true;
  }
  let supervisorReason = '';
  if (!uuid) {
    const answer = await options.fetchSupervisorUuid(config.device.supervisor_url);
    if (answer.uuid !== null) {
      uuid = answer.uuid;
      source = 'supervisor';
    } else supervisorReason = answer.reason;
  }
  if (!uuid || !source) {
    throw new IdentityError(
      'no-uuid',
      `Device UUID not available: set device.uuid (or DEVICE_UUID), register this device with \`cloudjobs register --provisioning-key-file FILE\`, or check the supervisor (${supervisorReason})`,
    );
  }
  if (!apiKey || !apiKeySource) {
    throw new IdentityError(
      'no-api-key',
      `Device API key not available for device ${uuid} (uuid from ${describeSource(source)}): set cloud.api_key_file (or DEVICE_API_KEY), or register this device with \`cloudjobs register --provisioning-key-file FILE\``,
    );
  }
  return {
    uuid,
    apiKey,
    source,
    apiKeySource,
    generation: fromFile && stored ? (stored.generation ?? null) : null,
    caCertPem: stored?.caCertPem ?? null,
    mqtt: stored?.mqtt && stored.uuid === uuid ? stored.mqtt : null,
  };
}

async function readConfiguredKey(options: ResolveIdentityOptions): Promise<{ apiKey: string; source: IdentitySource } | null> {
  const { cloud } = options.config;
  if (cloud.api_key.trim()) return { apiKey: cloud.api_key.trim(), source: originOf(options.sources, 'cloud.api_key') };
  if (!cloud.api_key_file) return null;
  let text: string;
  try {
    text = await options.readFile(cloud.api_key_file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new IdentityError('api-key-file', `cloud.api_key_file: cannot read ${cloud.api_key_file} (${code})`, {
      cause: error,
    });
  }
  const key = (text.split('\n')[0] ?? '').trim();
  if (!key) throw new IdentityError('api-key-file', `cloud.api_key_file: ${cloud.api_key_file} is empty; its first line must hold the device API key`);
  return { apiKey: key, source: originOf(options.sources, 'cloud.api_key_file') };
}

// Environment variable names are upper-case identifiers; anything else is the config file or a default.
function originOf(sources: Readonly<Record<string, string>> | undefined, key: string): 'config' | 'env' {
  const origin = sources?.[key];
  return origin !== undefined && /^[A-Z][A-Z0-9_]*$/.test(origin) ? 'env' : 'config';
}

function describeSource(source: IdentitySource): string {
  switch (source) {
    case 'config':
      return 'the config file';
    case 'env':
      return 'the environment';
    case 'identity-file':
      return 'the identity file';
    case 'supervisor':
      return 'the supervisor';
  }
}
