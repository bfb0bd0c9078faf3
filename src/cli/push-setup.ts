// Sets up push dispatch for `cloudjobs run` (issue 13): resolves the [mqtt]
// settings against the registered identity and, only when a broker is
// configured, loads the MQTT client with import() and starts it. Without a
// broker nothing of MQTT is loaded and no connection is attempted.
import { readFile } from 'node:fs/promises';
import type { Clock } from '../clock/clock.js';
import type { PollScheduler, RandomSource } from '../cloud/backoff.js';
import type { PushChannel } from '../cloud/push-channel.js';
import { chooseIdleInterval, resolvePushSettings, type PushIdentity, type PushSettings, type PushStatus } from '../cloud/push-settings.js';
import { loadTlsSettings } from '../cloud/tls-options.js';
import { isLoopbackHost } from '../config/parse-value.js';
import type { Config } from '../config/schema.js';
import { describeError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import { SYSTEM_CA_BUNDLE } from './setup.js';

/** The push side of `run`: status for the agent, start once the agent exists, close on stop. */
export interface PushSetup {
  status(): PushStatus;
  isConnected(): boolean;
  /** Starts the channel; `wake` and `onChange` reach the agent. */
  start(hooks: { wake(): void; onChange(): void }): Promise<void>;
  close(): Promise<void>;
}

/** Inputs of preparePush. */
export interface PreparePushOptions {
  config: Config;
  identity: PushIdentity;
  clock: Clock;
  log: Log;
  random: RandomSource;
  /** Receives the broker password so the logger redacts it. */
  secrets: string[];
}

/** Resolves the settings; null when no broker is configured or registered (no MQTT at all). */
export async function preparePush(options: PreparePushOptions): Promise<PushSetup | null> {
  const { config, clock, log } = options;
  let settings: PushSettings | null;
  try {
    const password = config.mqtt.password_file ? await readPassword(config.mqtt.password_file) : null;
    settings = resolvePushSettings(config, options.identity, password, isLoopbackHost);
  } catch (error) {
    const reason = describeError(error);
    log.error(`push notifications are off: ${reason}; polling continues`, { pushState: 'off' });
    const off: PushStatus = { state: 'off', broker: config.mqtt.broker, since: clock.now(), lastNotificationAt: null, notifications: 0, lastError: reason };
    return { status: () => ({ ...off }), isConnected: () => false, start: async () => undefined, close: async () => undefined };
  }
  if (settings === null) return null;
  const resolved = settings;
  if (resolved.password.length >= 4) options.secrets.push(resolved.password);
  let channel: PushChannel | null = null;
  const pending: PushStatus = { state: 'connecting', broker: resolved.brokerText, since: clock.now(), lastNotificationAt: null, notifications: 0, lastError: null };
  return {
    status: () => channel?.status() ?? { ...pending },
    isConnected: () => channel?.isConnected() ?? false,
    async start(hooks) {
      try {
        await startChannel(hooks);
      } catch (error) {
        Object.assign(pending, { state: 'off', since: clock.now(), lastError: describeError(error) });
        hooks.onChange();
        throw error;
      }
    },
    async close() {
      await channel?.close();
    },
  };

  async function startChannel(hooks: { wake(): void; onChange(): void }): Promise<void> {
    const tls =
      resolved.broker.protocol === 'mqtts:'
        ? await loadTlsSettings({
            caFile: config.mqtt.ca_file,
            storedCaPem: resolved.storedCaPems.join('\n') || null,
            systemBundleFile: SYSTEM_CA_BUNDLE,
            pinSha256: config.mqtt.pin_sha256,
            clientCert: config.mqtt.client_cert,
            clientKey: config.mqtt.client_key,
            section: 'mqtt',
          })
        : null;
    // the MQTT client is evaluated here, and only here
    const { startPushChannel } = await import('../cloud/push-channel.js');
    channel = startPushChannel({
      settings: resolved,
      tls,
      clock,
      log,
      random: options.random,
      intervalMs: config.polling.interval,
      maxBackoffMs: config.polling.max_backoff,
      connectTimeoutMs: config.cloud.request_timeout,
      wakeAfterLoss: config.mqtt.poll_interval_when_connected !== null,
      wake: () => hooks.wake(),
      onChange: () => hooks.onChange(),
    });
  }
}

/** Wraps the poll scheduler: while the channel is up, idle waits use mqtt.poll_interval_when_connected. */
export function withPushInterval(
  scheduler: PollScheduler,
  push: Pick<PushSetup, 'isConnected'>,
  options: { whenConnectedMs: number | null; jitter: number; random: RandomSource },
): PollScheduler {
  if (options.whenConnectedMs === null) return scheduler;
  return {
    ...scheduler,
    afterIdle: () => chooseIdleInterval(scheduler.afterIdle(), { ...options, connected: push.isConnected() }),
  };
}

async function readPassword(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new Error(`mqtt.password_file: cannot read ${file} (${(error as NodeJS.ErrnoException).code ?? describeError(error)})`);
  }
  return (text.split('\n')[0] ?? '').replace(/\r$/, '');
}
