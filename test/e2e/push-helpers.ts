// Push e2e plumbing: a mosquitto broker with the cloud's own user, a reference
// cloud that publishes through it, and agent.ini sections for the device.
import { randomBytes } from 'node:crypto';
import { appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ApiGeneration } from '../../src/contract/types.js';
import { startMosquitto, type Mosquitto, type MosquittoOptions } from '../cloud/mosquitto.js';
import { connectPushPublisher, type PushPublisher } from '../cloud/push-notify.js';
import type { ReferenceCloud, ReferenceCloudOptions } from '../cloud/reference-cloud.js';
import { renderIni, type AgentDirs, type TestDevice } from './harness.js';
import type { E2eScope } from './polling-helpers.js';

/** The user the reference cloud publishes as. */
export const CLOUD_USER = 'cloud-server';
export const TENANT = 'tenant-7';

/** A broker, a cloud publishing through it, and one device with broker credentials. */
export interface PushWorld {
  broker: Mosquitto;
  publisher: PushPublisher;
  cloud: ReferenceCloud;
  device: TestDevice;
  /** The device's broker user and password. */
  username: string;
  password: string;
}

/** Owns brokers and publishers for one test. */
export interface PushScope {
  world(generation: ApiGeneration, options?: { tls?: MosquittoOptions['tls']; cloud?: ReferenceCloudOptions }): Promise<PushWorld>;
  cleanup(): Promise<void>;
}

/** Creates a scope whose worlds are torn down by cleanup() (after the e2e scope stopped the agents). */
export function createPushScope(scope: E2eScope): PushScope {
  const brokers: Mosquitto[] = [];
  const publishers: PushPublisher[] = [];
  return {
    async world(generation, options = {}) {
      const cloudPassword = randomBytes(12).toString('hex');
      const broker = await startMosquitto({ users: { [CLOUD_USER]: cloudPassword }, ...(options.tls ? { tls: options.tls } : {}) });
      brokers.push(broker);
      const publisher = await connectPushPublisher({ url: broker.url, username: CLOUD_USER, password: cloudPassword });
      publishers.push(publisher);
      const { cloud, device } = await scope.cloud({
        generation,
        ...options.cloud,
        push: {
          publisher,
          tenantId: TENANT,
          registration: {
            broker: broker.url,
            brokerConfig: { protocol: 'mqtt', host: '127.0.0.1', port: broker.port, useTls: false, clientIdPrefix: 'cj-', keepAlive: 60, cleanSession: true },
            createUser: async (username) => {
              const password = randomBytes(16).toString('hex');
              await broker.addUser(username, password);
              return password;
            },
          },
        },
      });
      const username = `${generation === 'agents' ? 'agent' : 'device'}_${device.uuid}`;
      const password = randomBytes(16).toString('hex');
      await broker.addUser(username, password);
      return { broker, publisher, cloud, device, username, password };
    },
    async cleanup() {
      await Promise.all(publishers.splice(0).map((p) => p.close()));
      await Promise.all(brokers.splice(0).map((b) => b.close()));
    },
  };
}

/**
 * Writes the device's broker password to a 0600 file in the agent's directory
 * and appends an [mqtt] section for it to agent.ini (`password` in `extra`
 * replaces the right one).
 */
export async function addMqttSection(dirs: AgentDirs, world: PushWorld, extra: Record<string, string> = {}): Promise<void> {
  const file = path.join(dirs.root, 'mqtt-password');
  await writeFile(file, `${extra.password ?? world.password}\n`, { mode: 0o600 });
  const { password: _password, ...rest } = extra;
  const keys = { broker: world.broker.url, username: world.username, password_file: file, tenant_id: TENANT, ...rest };
  await appendFile(dirs.configFile, `\n${renderIni({ mqtt: keys })}`);
}

/** GET jobs/next requests the cloud saw so far. */
export function countPolls(cloud: ReferenceCloud): number {
  const counts = cloud.requestCounts();
  return (counts['GET /devices/:uuid/jobs/next'] ?? 0) + (counts['GET /agents/:uuid/jobs/next'] ?? 0);
}
