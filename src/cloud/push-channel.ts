// The MQTT push channel (issue 13): one subscription to the server's job
// notifications whose only effect is a wake-up of the poll loop. Loaded with
// `import()` only when a broker is configured, so agents without one never
// evaluate MQTT.js.
//
// INVARIANTS
// - A notification never runs anything: its payload is not parsed for work,
//   only counted; the job is claimed by the poll loop's GET jobs/next.
// - The channel never throws into the agent and never blocks it: every
//   failure ends in a log line (once per change) and a scheduled reconnect.
// - One connection at a time. MQTT.js's own reconnect is off (reconnectPeriod
//   0): each attempt is a new client whose end this loop awaits, and the wait
//   between attempts is computeReconnectDelay (full jitter, herd rule).
// - Every connect subscribes again (clean session), then wakes the poll loop
//   once: a job created while the channel was down is not missed.
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import MqttClientModule from 'mqtt/lib/client';
import type { Clock } from '../clock/clock.js';
import { describeError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import type { RandomSource } from './backoff.js';
import { classifyPushFailure, type PushFailure } from './push-errors.js';
import { computeReconnectDelay, type PushSettings, type PushStatus } from './push-settings.js';
import { buildTlsAgentOptions, watchCertificateTime, type TlsRefusal, type TlsSettings } from './tls-options.js';

const MqttClient = (MqttClientModule as unknown as { default?: typeof MqttClientModule }).default ?? MqttClientModule;

/** Inputs of startPushChannel. */
export interface PushChannelOptions {
  settings: PushSettings;
  /** TLS material for mqtts:// (system CAs, mqtt.ca_file, registration CAs, pins, client certificate). */
  tls: TlsSettings | null;
  clock: Clock;
  log: Log;
  random: RandomSource;
  /** polling.interval: the first reconnect step (herd rule). */
  intervalMs: number;
  /** polling.max_backoff: the reconnect cap. */
  maxBackoffMs: number;
  /** Time limit for TCP, TLS and CONNACK together. */
  connectTimeoutMs: number;
  /** Wakes the poll loop: a notification arrived, the channel (re)connected, or it was lost. */
  wake(reason: 'notification' | 'connected' | 'lost'): void;
  /**
   * mqtt.poll_interval_when_connected is set: after losing the connection, wake
   * the poll loop once within a random part of intervalMs, so its long idle
   * wait ends and polling goes back to polling.interval (spread, herd rule).
   */
  wakeAfterLoss: boolean;
  /** The status changed (state, notification count). */
  onChange(): void;
}

/** A running push channel. */
export interface PushChannel {
  status(): PushStatus;
  isConnected(): boolean;
  /** Disconnects and stops reconnecting; resolves when the connection is closed. */
  close(): Promise<void>;
}

/** What one connection attempt ended with. */
interface AttemptEnd {
  failure: PushFailure;
  /** The broker accepted the connection and the subscriptions. */
  wasConnected: boolean;
}

// A notification is a few hundred bytes; anything far larger is not one (the payload is never parsed for work anyway).
const MAX_PAYLOAD_LOGGED = 64 * 1024;

/** Starts the channel's connect loop; never rejects. */
export function startPushChannel(options: PushChannelOptions): PushChannel {
  const { settings, clock, log } = options;
  const stop = new AbortController();
  const status: PushStatus = {
    state: 'connecting',
    broker: settings.brokerText,
    since: clock.now(),
    lastNotificationAt: null,
    notifications: 0,
    lastError: null,
  };
  let current: { end(): void } | null = null;
  let cancelLossWake: (() => void) | null = null;
  let lastProblem: string | null = null;
  let everConnected = false;

  const setState = (state: PushStatus['state'], error: string | null): void => {
    if (status.state !== state) status.since = clock.now();
    status.state = state;
    status.lastError = error;
    options.onChange();
  };

  const attempt = (): Promise<AttemptEnd> =>
    new Promise((resolve) => {
      let streamError: unknown = null;
      let clientError: unknown = null;
      let refusal: TlsRefusal | null = null;
      let wasConnected = false;
      let settled = false;
      const client = new MqttClient(
        () => openStream(settings, options.tls, (error) => (streamError ??= error), (r) => (refusal = r)),
        {
          protocolVersion: 4,
          clientId: settings.clientId,
          username: settings.username,
          password: settings.password,
          keepalive: settings.keepaliveSeconds,
          clean: true,
          reconnectPeriod: 0,
          connectTimeout: options.connectTimeoutMs,
          resubscribe: false,
          // mqtt-packet would otherwise fill a cache of 65,536 two-byte Buffers (6 MiB of heap, test/bench figure 12)
          // for the few packets an idle subscriber writes
          writeCache: false,
        },
      );
      const finish = (): void => {
        if (settled) return;
        settled = true;
        current = null;
        client.removeAllListeners('message');
        client.end(true);
        const failure = classifyPushFailure(clientError ?? streamError, { broker: settings.brokerText, refusal, wasConnected });
        resolve({ failure, wasConnected });
      };
      current = { end: finish };
      client.on('error', (error: unknown) => {
        clientError ??= error;
      });
      client.on('close', finish);
      client.on('connect', () => {
        client.subscribe([...settings.topics], { qos: 1 }, (error, granted) => {
          if (settled) return;
          const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
          if (error || refused.length === settings.topics.length) {
            clientError = new Error(
              `the broker refused the subscription to ${(refused.length > 0 ? refused : settings.topics).join(', ')}${error ? ` (${describeError(error)})` : ''}; check the broker's ACL for ${settings.username}`,
            );
            (clientError as { code?: string }).code = 'ERR_CLOUDJOBS_SUBSCRIBE';
            finish();
            return;
          }
          wasConnected = true;
          const partly = refused.length > 0 ? `; the broker refused ${refused.join(', ')}` : '';
          if (lastProblem !== null || !everConnected) {
            log.info(`push notifications: connected to ${settings.brokerText}, subscribed to ${settings.topics.join(', ')}${partly}`, {
              pushState: 'connected',
              broker: settings.brokerText,
            });
          }
          lastProblem = null;
          everConnected = true;
          setState('connected', null);
          options.wake('connected');
        });
      });
      client.on('message', (topic: string, payload: Buffer) => {
        if (!settings.topics.includes(topic)) return;
        status.notifications += 1;
        status.lastNotificationAt = clock.now();
        log.debug(`push notification on ${topic}${describeJobId(payload)}; polling for jobs now`, { broker: settings.brokerText });
        options.wake('notification');
        options.onChange();
      });
    });

  const loop = async (): Promise<void> => {
    let failures = 0;
    while (!stop.signal.aborted) {
      setState('connecting', status.lastError);
      const end = await attempt();
      if (stop.signal.aborted) break;
      failures = end.wasConnected ? 1 : failures + 1;
      if (end.wasConnected && options.wakeAfterLoss) {
        cancelLossWake?.();
        cancelLossWake = clock.timer(Math.round(options.random() * options.intervalMs), () => {
          cancelLossWake = null;
          options.wake('lost');
        });
      }
      const delay = computeReconnectDelay(failures, {
        intervalMs: options.intervalMs,
        maxBackoffMs: options.maxBackoffMs,
        random: options.random,
        refused: end.failure.kind === 'refused',
      });
      const key = `${end.failure.kind}:${end.failure.message}`;
      const text = `push notifications: ${end.failure.message}; polling continues, reconnecting in ${formatDelay(delay)}`;
      const fields = { pushState: end.failure.kind, broker: settings.brokerText };
      if (key !== lastProblem) {
        lastProblem = key;
        log[end.failure.loud ? 'error' : 'warn'](text, fields);
      } else {
        log.debug(text, fields);
      }
      setState('connecting', end.failure.message);
      try {
        await clock.sleep(delay, stop.signal);
      } catch {
        break;
      }
    }
  };
  const running = loop().catch((error: unknown) => {
    // a defect, not a broker problem: say it once and leave polling alone
    log.error(`push notifications stopped after an internal error: ${describeError(error)}; polling continues`);
    setState('off', describeError(error));
  });

  return {
    status: () => ({ ...status }),
    isConnected: () => status.state === 'connected',
    async close() {
      stop.abort();
      cancelLossWake?.();
      current?.end();
      await running;
      setState('off', null);
    },
  };
}

// Opens TCP (mqtt://) or TLS (mqtts://) to the broker with the same trust rules as the HTTP side.
function openStream(
  settings: PushSettings,
  tlsSettings: TlsSettings | null,
  onError: (error: unknown) => void,
  onRefusal: (refusal: TlsRefusal) => void,
): Duplex {
  const host = settings.broker.hostname.replace(/^\[|\]$/g, '');
  const port = Number(settings.broker.port);
  let socket: net.Socket;
  if (settings.broker.protocol === 'mqtts:') {
    const base = tlsSettings ? buildTlsAgentOptions(tlsSettings, onRefusal) : {};
    socket = tls.connect({
      ...(base as tls.ConnectionOptions),
      host,
      port,
      // SNI carries host names only (RFC 6066)
      ...(net.isIP(host) === 0 ? { servername: host } : {}),
    });
    watchCertificateTime(socket as tls.TLSSocket, host, onRefusal);
  } else {
    socket = net.connect({ host, port });
  }
  socket.setNoDelay(true);
  socket.on('error', onError);
  return socket;
}

// " for job <id>" when the payload is the contract's notification; the id is server text, shown quoted.
function describeJobId(payload: Buffer): string {
  if (payload.length > MAX_PAYLOAD_LOGGED) return ` (${payload.length} bytes)`;
  try {
    const value = JSON.parse(payload.toString('utf8')) as { execution?: { jobId?: unknown } };
    const id = value?.execution?.jobId;
    return typeof id === 'string' ? ` for job ${JSON.stringify(id.slice(0, 100))}` : '';
  } catch {
    return ' (not JSON)';
  }
}

function formatDelay(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)}s`;
  return `${Math.round(ms / 60_000)}m`;
}
