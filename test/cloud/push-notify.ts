// How the real servers publish job notifications
// (test/cloud/CONTRACT.md "Push notifications over MQTT (both generations)"):
// the topic of each generation, the payload, QoS 1, not retained. The
// reference cloud publishes through a real MQTT client.
import { connect, type MqttClient } from 'mqtt';
import type { ApiGeneration } from '../../src/contract/types.js';

/** The topic the server of `generation` publishes a device's notifications on. */
export function notificationTopic(generation: ApiGeneration, uuid: string, tenantId: string): string {
  if (generation === 'devices') return `iot/device/${uuid}/jobs/notify-next`;
  const a = Buffer.from(uuid.replace(/-/g, ''), 'hex').toString('base64url');
  return `i/${tenantId}/a/${a}/jobs/notify`;
}

/** The notification body both generations send. */
export function notificationPayload(jobId: string, jobDocument: unknown, queuedAt: number, now: number): string {
  return JSON.stringify({
    execution: { jobId, jobDocument, queuedAt, lastUpdatedAt: queuedAt, versionNumber: 1, executionNumber: 1, status: 'QUEUED' },
    timestamp: now,
  });
}

/** What the reference cloud publishes through. */
export interface PushPublisher {
  publish(topic: string, payload: string): void;
  /** Notifications handed to the client so far. */
  published(): number;
  close(): Promise<void>;
}

/** Connects the server's own client to the broker (retrying every 200ms while it is down, as a server would). */
export async function connectPushPublisher(options: { url: string; username?: string; password?: string; ca?: string }): Promise<PushPublisher> {
  const client: MqttClient = connect(options.url, {
    clientId: `reference-cloud-${process.pid}-${Math.random().toString(16).slice(2, 8)}`,
    reconnectPeriod: 200,
    connectTimeout: 5000,
    ...(options.username !== undefined ? { username: options.username } : {}),
    ...(options.password !== undefined ? { password: options.password } : {}),
    ...(options.ca !== undefined ? { ca: options.ca } : {}),
  });
  client.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`reference cloud: could not connect to the broker ${options.url}`)), 10_000);
    client.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  let count = 0;
  return {
    publish(topic, payload) {
      count += 1;
      client.publish(topic, payload, { qos: 1, retain: false });
    },
    published: () => count,
    close: () => new Promise<void>((resolve) => client.end(true, {}, () => resolve())),
  };
}
