// `cloudjobs keygen`, `sign` and `verify`: the fleet owner's tools for signed
// job documents (README "Signed jobs"). keygen and sign run on the owner's
// offline machine; verify runs on a device and says whether a document would
// run there.
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createEngine } from '../agent/engine-adapter.js';
import { createSystemClock } from '../clock/clock.js';
import { parseDuration } from '../config/parse-value.js';
import type { Config } from '../config/schema.js';
import type { JobOffer } from '../contract/types.js';
import { UsageError } from '../errors/errors.js';
import { lookupUser } from '../jobs/users.js';
import { escapeText } from '../log/escape.js';
import { createNullLog } from '../log/log.js';
import { openNonceStore, describeUse } from '../security/nonce-store.js';
import { parseRfc3339, readClaims, readSignedParts, signDocument, verifyDocument, type Claims } from '../security/signed-document.js';
import { keyIdOf } from '../security/trusted-keys.js';
import type { Command } from './args.js';
import { EXIT, type CliContext } from './context.js';
import { readJobFile, readOffer } from './exec-command.js';
import { loadCliConfig } from './setup.js';
import { loadConfiguredKeys, readDeviceUuid } from './signing-setup.js';

type KeygenCommand = Extract<Command, { name: 'keygen' }>;
type SignCommand = Extract<Command, { name: 'sign' }>;
type VerifyCommand = Extract<Command, { name: 'verify' }>;

// A private key file is a few hundred bytes; anything much larger is not one.
const MAX_KEY_FILE_BYTES = 16 * 1024;

/** Writes a new Ed25519 key pair into DIR: `<keyid>.private.pem` (0600) and `<keyid>.pem` (the public key); prints the key id. */
export async function runKeygen(ctx: CliContext, command: KeygenCommand): Promise<number> {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const keyId = keyIdOf(publicKey);
  const privateFile = join(command.out, `${keyId}.private.pem`);
  const publicFile = join(command.out, `${keyId}.pem`);
  try {
    await mkdir(command.out, { recursive: true, mode: 0o700 });
    // 'wx': never overwrite a key that may already sign documents
    await writeFile(privateFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    await writeFile(publicFile, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644, flag: 'wx' });
  } catch (error) {
    ctx.stderr.write(`cloudjobs: cannot write the key pair into ${command.out}: ${(error as Error).message}\n`);
    return EXIT.failure;
  }
  ctx.stdout.write(
    `key id:      ${keyId}\n` +
      `private key: ${privateFile} (mode 0600; keep it offline: it signs jobs for every device that trusts the public key)\n` +
      `public key:  ${publicFile} (install it on each device in [security] trusted_keys_dir, root-owned, mode 0644)\n`,
  );
  return EXIT.ok;
}

/** Prints FILE signed with --key, with the claims the options ask for. */
export async function runSign(ctx: CliContext, command: SignCommand): Promise<number> {
  const privateKey = await readPrivateKey(command.key);
  if (typeof privateKey === 'string') {
    ctx.stderr.write(`cloudjobs: ${privateKey}\n`);
    return EXIT.failure;
  }
  const text = await readJobFile(ctx, command.file);
  if (text === null) return EXIT.failure;
  let document: unknown;
  try {
    document = JSON.parse(text) as unknown;
  } catch (error) {
    ctx.stderr.write(`cloudjobs: ${command.file} is not JSON: ${(error as Error).message}\n`);
    return EXIT.failure;
  }
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    ctx.stderr.write(`cloudjobs: ${command.file} must hold a job document, a JSON object\n`);
    return EXIT.failure;
  }
  if (Object.hasOwn(document, 'job_document')) {
    ctx.stderr.write(`cloudjobs: ${command.file} is a whole job offer; sign its job_document alone (the server stores only that)\n`);
    return EXIT.failure;
  }
  const body: Record<string, unknown> = { ...(document as Record<string, unknown>) };
  if (command.expires !== undefined) body.expires = resolveExpires(command.expires, Date.now());
  if (command.devices.length > 0) body.devices = [...new Set(command.devices)];
  if (command.nonce) {
    if (body.expires === undefined) throw new UsageError('--nonce needs --expires (or an expires member): a device remembers a nonce until the document expires');
    body.nonce = randomBytes(16).toString('hex');
  }
  const { signature: _old, ...unsigned } = body;
  const claims = readClaims(unsigned);
  if (!claims.ok) {
    ctx.stderr.write(`cloudjobs: not signed: ${claims.problem}\n`);
    return EXIT.failure;
  }
  let signed: Record<string, unknown>;
  try {
    signed = signDocument(unsigned, privateKey, keyIdOf(createPublicKey(privateKey)));
  } catch (error) {
    ctx.stderr.write(`cloudjobs: not signed: ${(error as Error).message}\n`);
    return EXIT.failure;
  }
  ctx.stdout.write(`${JSON.stringify(signed, null, 2)}\n`);
  return EXIT.ok;
}

/** Says whether FILE would run on this device (signature, claims, nonce, then the document itself); exit 0 only then. */
export async function runVerify(ctx: CliContext, command: VerifyCommand): Promise<number> {
  const { config } = loadCliConfig(ctx, command, { requireApiUrl: false });
  const keys = await loadConfiguredKeys(config);
  const text = await readJobFile(ctx, command.file);
  if (text === null) return EXIT.failure;
  const offer = readOffer(text, command.file);
  const now = Date.now();
  const deviceUuid = await readDeviceUuid(config);
  const parts = readSignedParts(offer.document);
  const read = parts.kind === 'signed' ? readClaims(parts.body) : null;
  const claims = read?.ok ? read.claims : null;
  const lines: string[] = [];
  if (parts.kind === 'signed') {
    const key = keys.byId.get(parts.keyId);
    lines.push(`key id:     ${parts.keyId} (${key ? `trusted: ${key.file}` : `not in ${keys.dir}`})`);
  } else {
    lines.push(`key id:     none (${parts.kind === 'unsigned' ? 'unsigned' : 'the signature member is malformed'})`);
  }
  lines.push(...formatClaims(claims));
  let refusal: string | null = null;
  const verdict = verifyDocument(offer.document, {
    keys: keys.byId,
    required: config.security.require_signed_jobs,
    deviceUuid,
    now,
    keysDir: keys.dir,
  });
  if (!verdict.ok) refusal = verdict.reason;
  else if (verdict.signed && verdict.claims.nonce !== null) {
    const nonces = openNonceStore({ stateDir: config.agent.state_dir, log: createNullLog(), clock: { now: () => now } });
    try {
      const used = await nonces.usedBy(verdict.claims.nonce, null, now);
      if (used) refusal = describeUse(used);
    } catch (error) {
      refusal = `the nonce cannot be checked here: ${(error as Error).message}`;
    }
  }
  if (refusal === null) refusal = await checkDocument(config, offer, ctx.uid);
  const signedNote = verdict.ok && !verdict.signed ? ' (unsigned; signatures are not required here)' : '';
  lines.push(`verdict:    ${refusal === null ? `would run on this device${signedNote}` : `REFUSED: ${refusal}`}`);
  ctx.stdout.write(`${lines.map(escapeText).join('\n')}\n`);
  return refusal === null ? EXIT.ok : EXIT.failure;
}

// The job validation the agent does after the signature: users, handlers, limits.
async function checkDocument(config: Config, offer: JobOffer, uid: number): Promise<string | null> {
  const engine = createEngine({ jobs: config.jobs, agentVersion: '', clock: createSystemClock(), log: createNullLog(), lookupUser, agentUid: uid });
  try {
    await engine.validate(offer);
    return null;
  } catch (error) {
    const problems = (error as { problems?: readonly string[] }).problems;
    if (!problems) throw error;
    return `job document rejected: ${problems.join('; ')}`;
  }
}

function formatClaims(claims: Claims | null): string[] {
  if (claims === null) return [];
  return [
    `expires:    ${claims.expires ? claims.expires.text : 'never'}`,
    `devices:    ${claims.devices ? claims.devices.join(', ') : 'any'}`,
    `nonce:      ${claims.nonce ?? 'none (the document may run more than once)'}`,
  ];
}

// --expires 7d (from now) or an RFC 3339 time (kept as written).
function resolveExpires(text: string, now: number): string {
  const duration = parseDuration(text);
  if (duration.ok) return new Date(now + duration.value).toISOString().replace(/\.\d{3}Z$/, 'Z');
  if (parseRfc3339(text) !== null) return text;
  throw new UsageError(`--expires must be a duration from now (7d, 12h) or an RFC 3339 time (2026-12-31T23:59:59Z), got ${JSON.stringify(text)}`);
}

// The key, or why FILE is not an Ed25519 private key.
async function readPrivateKey(file: string): Promise<KeyObject | string> {
  let pem: Buffer;
  try {
    pem = await readFile(file);
  } catch (error) {
    return `cannot read the private key ${file}: ${(error as Error).message}`;
  }
  if (pem.length > MAX_KEY_FILE_BYTES) return `${file} is ${pem.length} bytes: not a private key file`;
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (error) {
    return `${file} is not a PEM private key (${(error as Error).message})`;
  }
  if (key.asymmetricKeyType !== 'ed25519') return `${file} holds a ${key.asymmetricKeyType ?? 'unknown'} key; signing needs an Ed25519 key (cloudjobs keygen)`;
  return key;
}
