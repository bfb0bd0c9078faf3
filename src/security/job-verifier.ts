// The one check between a job offer and anything of the job running (user
// lookups, handlers, steps), shared by `cloudjobs run` and `cloudjobs exec`
// through the engine's validate(): the signature, its claims and the nonce.
// A refusal is a JobValidationError whose one problem names the failure, so
// the job ends REJECTED with it.
import type { JobOffer } from '../contract/types.js';
import { describeError, JobValidationError } from '../errors/errors.js';
import type { Log } from '../log/log.js';
import type { NonceStore } from './nonce-store.js';
import { verifyDocument, type Claims } from './signed-document.js';
import type { TrustedKeys } from './trusted-keys.js';

/** What the verifier was built with, for `cloudjobs status`. */
export interface SignaturePolicy {
  required: boolean;
  keyIds: readonly string[];
  keysDir: string;
}

/** Verifies offers before they run. */
export interface JobVerifier {
  /** Resolves when `offer` may run here; throws JobValidationError naming the failure otherwise. `resumed`: accepted before a reboot, so its expiry is not checked again. */
  verify(offer: JobOffer, options?: { resumed?: boolean }): Promise<void>;
  policy: SignaturePolicy;
}

/** What createJobVerifier needs. */
export interface VerifierDeps {
  keys: TrustedKeys;
  required: boolean;
  /** This device's uuid, or null when unknown (then a `devices` claim refuses). */
  deviceUuid: string | null;
  nonces: NonceStore;
  /** Wall-clock ms since the epoch: `expires` is a calendar time, not a duration. */
  wallNow: () => number;
  log: Log;
}

/** Builds the verifier of `cloudjobs run` and `cloudjobs exec`. */
export function createJobVerifier(deps: VerifierDeps): JobVerifier {
  const { keys, required, deviceUuid, nonces, log } = deps;
  return {
    policy: { required, keyIds: [...keys.byId.keys()].sort(), keysDir: keys.dir },
    async verify(offer, options = {}) {
      const fields = { jobId: offer.jobId, jobName: offer.jobName };
      const now = deps.wallNow();
      const verdict = verifyDocument(offer.document, {
        keys: keys.byId,
        required,
        deviceUuid,
        now: options.resumed ? Number.NEGATIVE_INFINITY : now,
        keysDir: keys.dir,
      });
      if (!verdict.ok) throw new JobValidationError([verdict.reason]);
      if (!verdict.signed) return;
      const { nonce, expires } = verdict.claims;
      if (nonce !== null && expires !== null) {
        let claimed;
        try {
          claimed = await nonces.claim(nonce, expires.at, offer.jobId, now);
        } catch (error) {
          throw new JobValidationError([`the nonce could not be checked and recorded, so the job does not run (${describeError(error)})`]);
        }
        if (!claimed.ok) throw new JobValidationError([claimed.reason]);
      }
      log.info(`job ${offer.jobName}: signature verified with key ${verdict.keyId}${describeClaims(verdict.claims)}`, fields);
    },
  };
}

/** The claims of a verified document for a log line: " (expires ..., for 2 device(s), nonce ...)", or "". */
function describeClaims(claims: Claims): string {
  const parts: string[] = [];
  if (claims.expires) parts.push(`expires ${claims.expires.text}`);
  if (claims.devices) parts.push(`for ${claims.devices.length} device(s)`);
  if (claims.nonce) parts.push(`nonce ${claims.nonce}`);
  return parts.length === 0 ? '' : ` (${parts.join(', ')})`;
}
