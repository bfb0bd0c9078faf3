// The one check before a job runs: through the engine's validate, a refusal is
// a JobValidationError naming the failure and nothing else is looked at; a
// resumed job is not refused for expiring during its reboot.
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createEngine } from '../../../src/agent/engine-adapter.js';
import { createSystemClock } from '../../../src/clock/clock.js';
import type { JobOffer } from '../../../src/contract/types.js';
import { JobValidationError } from '../../../src/errors/errors.js';
import { createNullLog } from '../../../src/log/log.js';
import { createJobVerifier } from '../../../src/security/job-verifier.js';
import { openNonceStore } from '../../../src/security/nonce-store.js';
import { signDocument } from '../../../src/security/signed-document.js';
import { keyIdOf } from '../../../src/security/trusted-keys.js';
import { makeTempDir } from '../state/helpers.js';

const pair = generateKeyPairSync('ed25519');
const keyId = keyIdOf(pair.publicKey);
const DOC = { version: '1.0', steps: [{ action: { type: 'runCommand', input: { command: 'true' } } }] };
const offer = (document: unknown, jobId = 'job-1'): JobOffer => ({ jobId, jobName: 'n', timeoutSeconds: null, createdAt: null, document });

async function setup(now: number, dir?: string) {
  const stateDir = dir ?? (await makeTempDir());
  const log = createNullLog();
  const verifier = createJobVerifier({
    keys: { dir: '/keys', byId: new Map([[keyId, { keyId, key: pair.publicKey, file: '/keys/k.pem' }]]) },
    required: true,
    deviceUuid: 'dev',
    nonces: openNonceStore({ stateDir, log, clock: { now: () => now } }),
    wallNow: () => now,
    log,
  });
  const lookups: string[] = [];
  const engine = createEngine({
    jobs: { run_as_user: 'nobody', allowed_users: [], handler_dirs: [], default_timeout: 1000 } as never,
    agentVersion: 't',
    clock: createSystemClock(),
    log,
    lookupUser: async (name) => {
      lookups.push(name);
      return { name, uid: 65534, gid: 65534, groups: [], home: '/', shell: '/bin/sh' } as never;
    },
    agentUid: 0,
    verifier,
  });
  return { engine, lookups, stateDir };
}

async function problemsOf(promise: Promise<unknown>): Promise<readonly string[]> {
  const error = await promise.then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(JobValidationError);
  return (error as JobValidationError).problems;
}

describe('engine validate with a verifier', () => {
  it('refuses before any user is looked up, with the one reason', async () => {
    const { engine, lookups } = await setup(Date.parse('2026-12-06T10:00:00Z'));
    expect(await problemsOf(engine.validate(offer(DOC)))).toEqual([
      'unsigned: this agent runs only signed job documents (security.require_signed_jobs) and this one has no signature member',
    ]);
    expect(lookups).toEqual([]);
    await engine.validate(offer(signDocument(DOC, pair.privateKey, keyId)));
    expect(lookups).toEqual(['nobody']);
  });

  it('a resumed job passes after its expiry and with its own nonce; another job with that nonce does not', async () => {
    const now = Date.parse('2026-12-06T10:00:00Z');
    const signed = signDocument({ ...DOC, expires: '2026-12-06T10:00:01Z', nonce: 'n1' }, pair.privateKey, keyId);
    const first = await setup(now);
    await first.engine.validate(offer(signed));
    expect(await problemsOf(first.engine.validate(offer(signed, 'job-2')))).toEqual([
      expect.stringMatching(/^nonce already used by job job-1 at 2026-12-06T10:00:00.000Z; refused until the document expires at 2026-12-06T10:00:01.000Z$/),
    ]);
    // after a reboot, a minute later: the same job resumes, a new offer of the document is refused
    const later = await setup(now + 60_000, first.stateDir);
    await later.engine.validate(offer(signed), { resumed: true });
    expect(await problemsOf(later.engine.validate(offer(signed)))).toEqual([
      'expired at 2026-12-06T10:00:01Z (this device\'s clock says 2026-12-06T10:01:00.000Z)',
    ]);
  });
});
