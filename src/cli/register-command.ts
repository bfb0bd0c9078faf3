// `cloudjobs register`: obtains this device's identity with a fleet
// provisioning key and stores it in state_dir; also what `run` does by itself
// when a provisioning key is configured and no identity exists yet.
import { readFile } from 'node:fs/promises';
import { createSystemClock, type Clock } from '../clock/clock.js';
import { computeFailureDelay } from '../cloud/backoff.js';
import { readDeviceName, readDeviceType, readMacAddress, readOsVersion } from '../cloud/device-facts.js';
import { registerDevice, RegistrationError, type RegisteredIdentity } from '../cloud/register.js';
import type { Config } from '../config/schema.js';
import { AbortedError, describeError, UsageError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import { identityPath, readIdentity, writeIdentity, type StoredIdentity } from '../state/identity-store.js';
import type { Command } from './args.js';
import { EXIT, type CliContext } from './context.js';
import { createCliLog, createCloudTransport, loadCliConfig } from './setup.js';

type RegisterCommand = Extract<Command, { name: 'register' }>;

/** Registers the device once; a registered device is left as it is. */
export async function runRegister(ctx: CliContext, command: RegisterCommand): Promise<number> {
  ctx.setTitle('cloudjobs register');
  const loaded = loadCliConfig(ctx, command, { requireApiUrl: true });
  const { config } = loaded;
  const key = await readProvisioningKey(command.provisioningKeyFile ?? (config.device.provisioning_key_file || undefined), ctx.stdin);
  const { log } = createCliLog(ctx, { level: config.logging.level, secrets: () => [key] });
  for (const warning of loaded.warnings) log.warn(warning);
  const clock = createSystemClock();
  const existing = await readIdentity(config.agent.state_dir, log, clock);
  if (existing) {
    ctx.stdout.write(
      `this device is already registered as ${existing.uuid} (generation ${existing.generation}, since ${existing.registeredAt}); nothing changed.\n` +
        `To register it again, stop the agent and remove ${identityPath(config.agent.state_dir)} first.\n`,
    );
    return EXIT.ok;
  }
  const identity = await registerOnce({ config, key, clock, log, version: ctx.version, deviceName: command.deviceName, deviceType: command.deviceType });
  ctx.stdout.write(
    `registered as ${identity.uuid} (generation ${identity.generation}); identity stored in ${identityPath(config.agent.state_dir)}.\n` +
      'Start the agent with: systemctl enable --now cloudjobs\n',
  );
  return EXIT.ok;
}

/** Reads the provisioning key (first line) from `file`, or from `stdin` when it is "-"; UsageError when neither is given. */
async function readProvisioningKey(file: string | undefined, stdin: NodeJS.ReadableStream | null): Promise<string> {
  if (!file) {
    throw new UsageError('register needs --provisioning-key-file FILE or --provisioning-key-stdin (or [device] provisioning_key_file)');
  }
  const where = file === '-' ? 'standard input' : `the provisioning key file ${file}`;
  let text: string;
  try {
    text = file === '-' ? await readBounded(stdin) : await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read the provisioning key from ${where}: ${describeError(error)}`);
  }
  const first = text.split('\n')[0]?.trim() ?? '';
  if (!first) throw new UsageError(`${where === 'standard input' ? 'standard input' : where} is empty; it must hold the provisioning key on its first line`);
  return first;
}

// A key is a line: more than this on standard input is a mistake (a wrong file piped in).
const MAX_STDIN_BYTES = 64 * 1024;

async function readBounded(stream: NodeJS.ReadableStream | null): Promise<string> {
  if (stream === null) throw new Error('no standard input');
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of stream) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    bytes += buffer.length;
    if (bytes > MAX_STDIN_BYTES) throw new Error(`more than ${MAX_STDIN_BYTES} bytes; a provisioning key is one line`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

interface RegisterOnceOptions {
  config: Config;
  key: string;
  clock: Clock;
  log: Log;
  version: string;
  deviceName?: string | undefined;
  deviceType?: string | undefined;
  signal?: AbortSignal;
}

// One registration attempt, stored atomically when it succeeds.
async function registerOnce(options: RegisterOnceOptions): Promise<StoredIdentity> {
  const { config, key, clock, log } = options;
  const transport = await createCloudTransport(config, clock, options.version);
  try {
    const registered: RegisteredIdentity = await registerDevice({
      apiUrl: config.cloud.api_url,
      generation: config.cloud.api_generation,
      provisioningKey: key,
      deviceName: options.deviceName || config.device.device_name || readDeviceName(),
      deviceType: options.deviceType || config.device.device_type || (await readDeviceType()),
      macAddress: readMacAddress(),
      osVersion: await readOsVersion(),
      agentVersion: options.version,
      transport,
      log,
      ...(options.signal ? { signal: options.signal } : {}),
      identityFile: identityPath(config.agent.state_dir),
      now: () => clock.now(),
    });
    const stored: StoredIdentity = {
      version: 1,
      uuid: registered.uuid,
      apiKey: registered.apiKey,
      generation: registered.generation,
      deviceName: registered.deviceName,
      registeredAt: new Date(clock.now()).toISOString(),
      ...(registered.publicKeyPem ? { publicKeyPem: registered.publicKeyPem } : {}),
      ...(registered.privateKeyPem ? { privateKeyPem: registered.privateKeyPem } : {}),
      ...(registered.caCertPem ? { caCertPem: registered.caCertPem } : {}),
      ...(registered.mqtt ? { mqtt: registered.mqtt } : {}),
    };
    await writeIdentity(config.agent.state_dir, stored);
    log.info(`registered as ${stored.uuid} (generation ${stored.generation}); identity stored in ${identityPath(config.agent.state_dir)}`);
    return stored;
  } finally {
    transport.close();
  }
}

/** Inputs of registerWithBackoff (what `run` has at hand). */
export interface RegisterWithBackoffOptions {
  ctx: CliContext;
  config: Config;
  clock: Clock;
  log: Log;
  signal: AbortSignal;
  secrets: string[];
  notifier: { ready(): void; status(text: string): void };
}

/**
 * Registers with the configured provisioning key, retrying with backoff
 * (429 Retry-After is a floor; the server allows 5 attempts per 15 minutes
 * per IP) until it works or `signal` aborts.
 */
export async function registerWithBackoff(options: RegisterWithBackoffOptions): Promise<StoredIdentity | null> {
  const { ctx, config, clock, log, signal, secrets } = options;
  const key = await readProvisioningKey(config.device.provisioning_key_file, null);
  secrets.push(key);
  let lastProblem = '';
  for (let attempt = 1; !signal.aborted; attempt += 1) {
    try {
      return await registerOnce({ config, key, clock, log, version: ctx.version, signal });
    } catch (error) {
      if (error instanceof AbortedError || signal.aborted) return null;
      const delay = computeFailureDelay(attempt, readFacts(error), { maxBackoffMs: config.polling.max_backoff, jitter: 0.1, random: Math.random });
      const message = describeError(error);
      if (message !== lastProblem) {
        lastProblem = message;
        log.error(`registration failed: ${message}; retrying in ${Math.round(delay / 1000)}s`);
      }
      options.notifier.ready();
      options.notifier.status(`registering: ${message.split('\n')[0] ?? ''}; retry in ${Math.round(delay / 1000)}s`);
      try {
        await clock.sleep(delay, signal);
      } catch {
        return null;
      }
    }
  }
  return null;
}

function readFacts(error: unknown): { kind?: string; status?: number; retryAfterMs?: number } {
  if (error instanceof RegistrationError) {
    // a wrong key or an already registered device will not fix itself quickly
    const slow = error.kind === 'provisioning-key' || error.kind === 'already-registered' || error.kind === 'refused';
    return { kind: slow ? 'auth' : error.kind, ...(error.status !== undefined ? { status: error.status } : {}), ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}) };
  }
  if (error && typeof error === 'object' && 'kind' in error) return error as { kind: string };
  return {};
}
