// Finds the device identity for `cloudjobs run` and `check-config` (config or
// env, registered identity file, local supervisor), registering first when a
// provisioning key is configured and there is no identity yet. `run` waits and
// retries rather than exiting, so a device whose supervisor or cloud comes up
// later still starts.
import { readFile } from 'node:fs/promises';
import { IdentityError, resolveIdentity, type ResolvedIdentity } from '../agent/identity.js';
import type { Clock } from '../clock/clock.js';
import { createHttpTransport } from '../cloud/http.js';
import { fetchSupervisorUuid } from '../cloud/supervisor.js';
import type { Config } from '../config/schema.js';
import { AbortedError, describeError } from '../errors/errors.js';
import { createNullLog, type Log } from '../log/log.js';
import type { Notifier } from '../service/sd-notify.js';
import { identityPath, readIdentity } from '../state/identity-store.js';
import type { CliContext } from './context.js';
import { registerWithBackoff } from './register-command.js';

/** The identity in use and a sentence saying where it came from. */
export interface IdentityInUse extends ResolvedIdentity {
  description: string;
}

/** Resolves the identity once from every source; throws IdentityError saying what to do. */
async function findIdentity(
  config: Config,
  sources: Readonly<Record<string, string>>,
  clock: Clock,
  log: Log,
  signal?: AbortSignal,
): Promise<IdentityInUse> {
  const transport = createHttpTransport({ timeoutMs: config.cloud.request_timeout, clock });
  try {
    const identity = await resolveIdentity({
      config,
      sources,
      readStoredIdentity: () => readIdentity(config.agent.state_dir, log, clock),
      fetchSupervisorUuid: (supervisorUrl) => fetchSupervisorUuid({ supervisorUrl, transport, ...(signal ? { signal } : {}) }),
      readFile: (path) => readFile(path, 'utf8'),
    });
    return { ...identity, description: describeIdentity(identity, config) };
  } finally {
    transport.close();
  }
}

/** One sentence for check-config and status, e.g. "uuid from the config file, API key from cloud.api_key_file". */
function describeIdentity(identity: ResolvedIdentity, config: Config): string {
  const name = (source: ResolvedIdentity['source'], what: 'uuid' | 'key'): string => {
    switch (source) {
      case 'identity-file':
        return `the registered identity ${identityPath(config.agent.state_dir)}`;
      case 'supervisor':
        return `the local supervisor ${config.device.supervisor_url}`;
      case 'env':
        return 'the environment';
      case 'config':
        return what === 'key' && config.cloud.api_key_file && !config.cloud.api_key ? `cloud.api_key_file ${config.cloud.api_key_file}` : 'the config file';
    }
  };
  if (identity.source === identity.apiKeySource) return `device ${identity.uuid}, uuid and API key from ${name(identity.source, 'uuid')}`;
  return `device ${identity.uuid}, uuid from ${name(identity.source, 'uuid')}, API key from ${name(identity.apiKeySource, 'key')}`;
}

/** What check-config says about the identity: where it comes from, or why there is none. */
export async function describeIdentitySource(config: Config, sources: Readonly<Record<string, string>>, clock: Clock): Promise<string> {
  try {
    return (await findIdentity(config, sources, clock, createNullLog())).description;
  } catch (error) {
    if (error instanceof IdentityError && config.device.provisioning_key_file) {
      return `none yet: the agent registers itself with the provisioning key in ${config.device.provisioning_key_file}`;
    }
    return `none: ${describeError(error)}`;
  }
}

/** Inputs of obtainIdentity. */
export interface ObtainIdentityOptions {
  ctx: CliContext;
  config: Config;
  sources: Readonly<Record<string, string>>;
  clock: Clock;
  log: Log;
  notifier: Notifier;
  signal: AbortSignal;
  /** Receives the API key so the logger can redact it. */
  secrets: string[];
}

/** Resolves the identity, registering or waiting as needed; null when stopped first. */
export async function obtainIdentity(options: ObtainIdentityOptions): Promise<IdentityInUse | null> {
  const { config, clock, log, notifier, signal, secrets } = options;
  let lastProblem = '';
  let readySent = false;
  for (let attempt = 1; !signal.aborted; attempt += 1) {
    try {
      const identity = await findIdentity(config, options.sources, clock, log, signal);
      if (!secrets.includes(identity.apiKey)) secrets.push(identity.apiKey);
      return identity;
    } catch (error) {
      if (error instanceof AbortedError || signal.aborted) return null;
      const canRegister = error instanceof IdentityError && (error.reason === 'no-uuid' || error.reason === 'no-api-key');
      if (canRegister && config.device.provisioning_key_file) {
        const registered = await registerWithBackoff({ ctx: options.ctx, config, clock, log, signal, secrets, notifier });
        if (!registered) return null;
        continue;
      }
      const message = describeError(error);
      if (message !== lastProblem) {
        lastProblem = message;
        log.error(`${message}; retrying until it is fixed`);
      }
    }
    if (!readySent) {
      // Tell systemd we are up (so `systemctl start` returns) and what we wait for.
      notifier.ready();
      readySent = true;
    }
    notifier.status(`waiting for a device identity: ${lastProblem.split('\n')[0] ?? ''}`);
    try {
      await clock.sleep(Math.min(config.polling.max_backoff, 1000 * 2 ** Math.min(attempt, 16)), signal);
    } catch {
      return null;
    }
  }
  return null;
}
