// The trusted keys directory: what loads, and every unsafe or wrong file failing the start (ConfigError) by name.
import { generateKeyPairSync } from 'node:crypto';
import { chmod, chown, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors/errors.js';
import { keyIdOf, loadTrustedKeys } from '../../../src/security/trusted-keys.js';

const isRoot = process.getuid?.() === 0;
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trusted-keys-'));
  await chmod(dir, 0o755);
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function newPublicPem(): { pem: string; keyId: string } {
  const { publicKey } = generateKeyPairSync('ed25519');
  return { pem: publicKey.export({ type: 'spki', format: 'pem' }) as string, keyId: keyIdOf(publicKey) };
}

async function problemOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  return (error as ConfigError).message;
}

describe.runIf(isRoot)('loadTrustedKeys (as root, like the agent)', () => {
  it('loads every *.pem by key id and ignores other names', async () => {
    const a = newPublicPem();
    const b = newPublicPem();
    await writeFile(join(dir, 'a.pem'), a.pem, { mode: 0o644 });
    await writeFile(join(dir, 'b.pem'), b.pem, { mode: 0o644 });
    await writeFile(join(dir, 'README'), 'not a key', { mode: 0o644 });
    const keys = await loadTrustedKeys(dir, { required: true });
    expect([...keys.byId.keys()].sort()).toEqual([a.keyId, b.keyId].sort());
    expect(keys.byId.get(a.keyId)?.file).toBe(join(dir, 'a.pem'));
  });

  it('allows a missing directory unless signatures are required, and an empty one likewise', async () => {
    expect((await loadTrustedKeys(join(dir, 'none'), { required: false })).byId.size).toBe(0);
    expect((await loadTrustedKeys(dir, { required: false })).byId.size).toBe(0);
    expect(await problemOf(loadTrustedKeys(dir, { required: true }))).toContain(`got no key in ${dir}`);
  });

  it('refuses a group- or other-writable or non-root directory or file, naming it', async () => {
    const key = newPublicPem();
    const file = join(dir, 'k.pem');
    await writeFile(file, key.pem, { mode: 0o644 });
    await chmod(file, 0o664);
    expect(await problemOf(loadTrustedKeys(dir, { required: false }))).toContain(`security.trusted_keys_dir (${file}): expected a root-owned public key file not writable by group or others, got mode 0664, writable by group`);
    await chmod(file, 0o646);
    expect(await problemOf(loadTrustedKeys(dir, { required: false }))).toContain('got mode 0646, writable by others');
    await chmod(file, 0o644);
    await chown(file, 1000, 1000);
    expect(await problemOf(loadTrustedKeys(dir, { required: false }))).toContain(`(${file}): expected a root-owned public key file not writable by group or others, got owned by uid 1000, not root`);
    await chown(file, 0, 0);
    await chmod(dir, 0o775);
    expect(await problemOf(loadTrustedKeys(dir, { required: false }))).toContain(`(${dir}): expected a root-owned directory not writable by group or others, got mode 0775, writable by group`);
  });

  it('refuses a symbolic link, a private key, another algorithm and garbage', async () => {
    const key = newPublicPem();
    await mkdir(join(dir, 'real'));
    await writeFile(join(dir, 'real', 'k.pem'), key.pem, { mode: 0o644 });
    await symlink(join(dir, 'real', 'k.pem'), join(dir, 'link.pem'));
    expect(await problemOf(loadTrustedKeys(dir, { required: false }))).toContain('got a symbolic link; put the key file itself there');
    await rm(join(dir, 'link.pem'));
    const { privateKey } = generateKeyPairSync('ed25519');
    await writeFile(join(dir, 'p.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    expect(await problemOf(loadTrustedKeys(dir, { required: false }))).toContain('it holds a PRIVATE key: keep private keys off the device');
    await rm(join(dir, 'p.pem'));
    const rsa = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' });
    await writeFile(join(dir, 'ec.pem'), rsa, { mode: 0o644 });
    expect(await problemOf(loadTrustedKeys(dir, { required: false }))).toContain('expected an Ed25519 public key, got a ec key');
  });
});
