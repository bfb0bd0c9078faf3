// Builds the job verifier of `cloudjobs run`, `exec` and `verify` from the
// [security] keys: trusted keys loaded (a bad key file is a ConfigError, exit
// 78), the device's uuid, the nonce store in state_dir.
import type { Clock } from '../clock/clock.js';
import type { Config } from '../config/schema.js';
import type { Log } from '../log/log.js';
import { createJobVerifier, type JobVerifier } from '../security/job-verifier.js';
import { openNonceStore } from '../security/nonce-store.js';
import { loadTrustedKeys, type TrustedKeys } from '../security/trusted-keys.js';
import { validateIdentity, identityPath } from '../state/identity-store.js';
import { checkJson, readTextIfExists } from '../state/json-file.js';

/** Loads `[security] trusted_keys_dir`; throws ConfigError naming the file when it or the directory is unsafe or unreadable. */
export function loadConfiguredKeys(config: Config): Promise<TrustedKeys> {
  return loadTrustedKeys(config.security.trusted_keys_dir, { required: config.security.require_signed_jobs });
}

/** Builds the verifier from the configuration and the loaded keys. */
export function createVerifierFromConfig(
  config: Config,
  keys: TrustedKeys,
  options: { deviceUuid: string | null; log: Log; clock: Clock },
): JobVerifier {
  return createJobVerifier({
    keys,
    required: config.security.require_signed_jobs,
    deviceUuid: options.deviceUuid,
    nonces: openNonceStore({ stateDir: config.agent.state_dir, log: options.log, clock: options.clock }),
    wallNow: () => Date.now(),
    log: options.log,
  });
}

/** The device uuid for a command that does not run the agent: [device] uuid, else the stored identity (read only), else null. */
export async function readDeviceUuid(config: Config): Promise<string | null> {
  if (config.device.uuid !== '') return config.device.uuid;
  try {
    const text = await readTextIfExists(identityPath(config.agent.state_dir));
    if (text === null) return null;
    const read = checkJson(text, validateIdentity);
    return 'value' in read ? read.value.uuid : null;
  } catch {
    // not readable by this user: the uuid is unknown, and a `devices` claim refuses
    return null;
  }
}

/** The signature policy as `cloudjobs run` keeps it in the status file, next to the agent's own status. */
export interface SignatureStatus {
  required: boolean;
  trustedKeyIds: readonly string[];
  trustedKeysDir: string;
}

/** What `cloudjobs status` shows of the policy (kept in the status file by `cloudjobs run`). */
export function signatureStatus(verifier: JobVerifier): SignatureStatus {
  return { required: verifier.policy.required, trustedKeyIds: verifier.policy.keyIds, trustedKeysDir: verifier.policy.keysDir };
}

