// What the MQTT push channel needs, derived once from the [mqtt] section and
// the identity stored at registration
// (test/cloud/CONTRACT.md "Push notifications over MQTT (both generations)"):
// broker, credentials, client id, the generation's topics, and the reconnect
// policy as pure arithmetic. No MQTT code lives here: this module is
// loaded by every `run`, the client only when a broker is configured.
import type { Config } from '../config/schema.js';
import type { ApiGeneration, MqttRegistration } from '../contract/types.js';
import { AgentError } from '../errors/errors.js';
import type { RandomSource } from './backoff.js';

/** The push channel as `cloudjobs status` and STATUS= show it. */
export interface PushStatus {
  /** off: configured but not usable (lastError says why). */
  state: 'connected' | 'connecting' | 'off';
  /** mqtts://host:port */
  broker: string;
  /** When the state began (clock ms). */
  since: number;
  lastNotificationAt: number | null;
  notifications: number;
  /** Why the last connection attempt failed or the connection ended; null while connected. */
  lastError: string | null;
}

/** Everything the channel needs to connect; `password` is secret. */
export interface PushSettings {
  broker: URL;
  /** The broker URL as shown in logs and status (no credentials ever). */
  brokerText: string;
  username: string;
  password: string;
  clientId: string;
  keepaliveSeconds: number;
  topics: readonly string[];
  /** TLS material beyond mqtt.ca_file: CAs from the registration answer (broker and API). */
  storedCaPems: readonly string[];
}

/** A push setting that cannot work (no tenant for generation agents, insecure registration broker). */
export class PushConfigError extends AgentError {
  constructor(message: string) {
    super('CONFIG', message);
  }
}

/** The identity facts push needs. */
export interface PushIdentity {
  uuid: string;
  /** The generation in use when known (configured, or found by registration). */
  generation: ApiGeneration | null;
  /** Credentials stored at registration, when the identity in use is the registered device. */
  mqtt: MqttRegistration | null;
  /** The API CA stored at registration. */
  caCertPem: string | null;
}

/** Returns the broker to use: [mqtt] broker, else the registration's; null means no push at all. */
export function chooseBroker(config: Config, identity: Pick<PushIdentity, 'mqtt'>): string | null {
  const configured = config.mqtt.broker;
  if (configured === 'off') return null;
  if (configured !== '') return configured;
  const stored = identity.mqtt?.broker ?? '';
  return stored === '' ? null : stored;
}

/**
 * Resolves the settings; null when no broker is configured or registered (no
 * MQTT at all). `passwordFromFile` is mqtt.password_file's first line, when set.
 */
export function resolvePushSettings(
  config: Config,
  identity: PushIdentity,
  passwordFromFile: string | null,
  isLoopback: (host: string) => boolean,
): PushSettings | null {
  const brokerText = chooseBroker(config, identity);
  if (brokerText === null) return null;
  const broker = new URL(brokerText);
  if (broker.protocol === 'mqtt:' && !config.mqtt.allow_insecure && !isLoopback(broker.hostname)) {
    throw new PushConfigError(
      `the registration names the broker ${brokerText}, but mqtt:// to a host other than loopback sends the broker password in clear text; set [mqtt] broker to an mqtts:// URL, or allow_insecure = true in [mqtt] if the network is trusted`,
    );
  }
  const stored = identity.mqtt;
  const mqtt = config.mqtt;
  const uuid = identity.uuid;
  const tenantId = mqtt.tenant_id || stored?.tenantId || '';
  const username = mqtt.username || stored?.username || (identity.generation === 'agents' ? `agent_${uuid}` : `device_${uuid}`);
  return {
    broker,
    brokerText,
    username,
    password: passwordFromFile ?? stored?.password ?? '',
    clientId: mqtt.client_id || `${stored?.clientIdPrefix ?? 'cloudjobs_'}${uuid}`,
    keepaliveSeconds: Math.round(mqtt.keepalive / 1000),
    topics: deriveTopics(identity.generation, uuid, tenantId),
    storedCaPems: [stored?.caCertPem, identity.caCertPem].filter((pem): pem is string => typeof pem === 'string' && pem !== ''),
  };
}

/**
 * The topics the server publishes on for this device. With the generation
 * unknown (api_generation = auto and no registration) both generations'
 * topics are subscribed; a server publishes on its own only.
 */
export function deriveTopics(generation: ApiGeneration | null, uuid: string, tenantId: string): string[] {
  const devices = [`iot/device/${uuid}/jobs/notify-next`];
  if (generation === 'devices') return devices;
  if (tenantId === '') {
    if (generation === 'agents') {
      throw new PushConfigError(
        'generation agents publishes notifications on i/{tenantId}/a/{A}/jobs/notify, and no tenant id is known: set [mqtt] tenant_id (the registration answer\'s tenantId)',
      );
    }
    return devices;
  }
  const a = encodeUuidTopicSegment(uuid);
  if (a === null) {
    if (generation === 'agents') throw new PushConfigError(`the device uuid ${uuid} is not a uuid, so its generation agents topic cannot be derived`);
    return devices;
  }
  // the newer server publishes on .../notify; its own agent listens on .../notify-next (test/cloud/CONTRACT.md "Push notifications over MQTT (both generations)"): take both
  const agents = [`i/${tenantId}/a/${a}/jobs/notify`, `i/${tenantId}/a/${a}/jobs/notify-next`];
  return generation === 'agents' ? agents : [...devices, ...agents];
}

/** Returns the uuid's 16 bytes as base64url without padding ({A} of the agents topics), or null when it is not a uuid. */
export function encodeUuidTopicSegment(uuid: string): string | null {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(uuid)) return null;
  return Buffer.from(uuid.replace(/-/g, ''), 'hex').toString('base64url');
}

/**
 * The wait before reconnect attempt `attempt` (1-based) after a connection was
 * lost or failed: full jitter over a step that starts at the poll interval and
 * doubles up to max(max_backoff, interval). Starting at the poll interval is the
 * herd rule: a fleet whose broker restarts reconnects no faster than it polls
 * anyway (N/interval per second), and polling covers the gap. Refused
 * credentials wait the whole cap (retrying soon cannot fix them).
 */
export function computeReconnectDelay(
  attempt: number,
  options: { intervalMs: number; maxBackoffMs: number; random: RandomSource; refused: boolean },
): number {
  const cap = Math.max(options.maxBackoffMs, options.intervalMs);
  if (options.refused) return Math.round(cap * (0.9 + 0.1 * options.random()));
  const doublings = Math.min(Math.max(attempt, 1) - 1, 30);
  // full jitter, as computeBackoffDelay: uniform in [0, step]
  return Math.round(options.random() * Math.min(options.intervalMs * 2 ** doublings, cap));
}

/** The idle wait while the channel is up: poll_interval_when_connected (jittered like polling), else the scheduler's own. */
export function chooseIdleInterval(
  baseIdleMs: number,
  options: { connected: boolean; whenConnectedMs: number | null; jitter: number; random: RandomSource },
): number {
  if (!options.connected || options.whenConnectedMs === null) return baseIdleMs;
  const jitter = Math.min(Math.max(options.jitter, 0), 1);
  return Math.round(options.whenConnectedMs * (1 - jitter + 2 * jitter * options.random()));
}
