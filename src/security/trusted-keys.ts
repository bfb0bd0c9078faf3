// The public keys a device trusts to sign job documents: `*.pem` files
// (SubjectPublicKeyInfo, as `openssl pkey -pubout` writes) in
// `[security] trusted_keys_dir`. Whoever can write there decides what runs as
// root, so the directory and every key file must be root-owned and not
// writable by group or others; anything else fails the start (ConfigError,
// exit 78) naming the file.
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, type ConfigProblem } from '../errors/errors.js';

/** One trusted key. */
export interface TrustedKey {
  keyId: string;
  key: KeyObject;
  file: string;
}

/** The keys of trusted_keys_dir, by key id. */
export interface TrustedKeys {
  dir: string;
  byId: ReadonlyMap<string, TrustedKey>;
}

/** Bounds on what the directory may hold (it is read at every start). */
export const TRUSTED_KEY_LIMITS = { maxFiles: 64, maxFileBytes: 16 * 1024 } as const;

const CONFIG_KEY = 'security.trusted_keys_dir';
const PUBLIC_PEM = /^-----BEGIN PUBLIC KEY-----\r?\n[A-Za-z0-9+/=\r\n]+-----END PUBLIC KEY-----\s*$/;

/** The key id of an Ed25519 public key: lowercase hex of the first 8 bytes of SHA-256 over its DER SubjectPublicKeyInfo. */
export function keyIdOf(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest().subarray(0, 8).toString('hex');
}

/** What loadTrustedKeys needs to know about its caller. */
export interface LoadKeysOptions {
  /** `[security] require_signed_jobs`: then a missing or empty directory is a config error too. */
  required: boolean;
}

/** Loads and checks every `*.pem` in `dir`; throws ConfigError listing each problem, each naming its file. */
export async function loadTrustedKeys(dir: string, options: LoadKeysOptions): Promise<TrustedKeys> {
  const problems: ConfigProblem[] = [];
  const byId = new Map<string, TrustedKey>();
  const names = await listKeyFiles(dir, problems);
  for (const name of names ?? []) {
    const file = join(dir, name);
    const key = await readKeyFile(file, problems);
    if (key === null) continue;
    const keyId = keyIdOf(key);
    if (!byId.has(keyId)) byId.set(keyId, { keyId, key, file });
  }
  if (names !== null && problems.length === 0 && byId.size === 0 && options.required) {
    problems.push({
      key: CONFIG_KEY,
      expected: 'at least one trusted Ed25519 public key (*.pem) when security.require_signed_jobs is true',
      seen: `no key in ${dir}`,
      hint: 'copy the public key `cloudjobs keygen` wrote there, or set require_signed_jobs = false',
    });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { dir, byId };
}

// The sorted `*.pem` names, or null when the directory is missing (allowed unless required).
async function listKeyFiles(dir: string, problems: ConfigProblem[]): Promise<string[] | null> {
  let info;
  try {
    info = await lstat(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    problems.push(problem(dir, 'a readable directory', describeFsError(error)));
    return [];
  }
  const fault = ownershipFault(info, 'directory');
  if (fault !== null) {
    problems.push(problem(dir, 'a root-owned directory not writable by group or others', fault));
    return [];
  }
  let names: string[];
  try {
    names = (await readdir(dir)).filter((name) => name.endsWith('.pem')).sort();
  } catch (error) {
    problems.push(problem(dir, 'a readable directory', describeFsError(error)));
    return [];
  }
  if (names.length > TRUSTED_KEY_LIMITS.maxFiles) {
    problems.push(problem(dir, `at most ${TRUSTED_KEY_LIMITS.maxFiles} *.pem files`, `${names.length} files`));
    return [];
  }
  return names;
}

// Opens without following a symlink, checks owner and mode on the open file, then parses it.
async function readKeyFile(file: string, problems: ConfigProblem[]): Promise<KeyObject | null> {
  let text: string;
  try {
    const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((error: unknown) => {
      throw (error as NodeJS.ErrnoException).code === 'ELOOP' ? new Error('a symbolic link; put the key file itself there') : error;
    });
    try {
      const info = await handle.stat();
      const fault = ownershipFault(info, 'file');
      if (fault !== null) throw new Error(fault);
      if (info.size > TRUSTED_KEY_LIMITS.maxFileBytes) throw new Error(`${info.size} bytes; a public key is far smaller`);
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    problems.push(problem(file, 'a root-owned public key file not writable by group or others', describeFsError(error)));
    return null;
  }
  if (!PUBLIC_PEM.test(text)) {
    const hint = text.includes('PRIVATE KEY') ? 'it holds a PRIVATE key: keep private keys off the device, copy only the public one' : undefined;
    problems.push({ ...problem(file, 'a PEM public key (-----BEGIN PUBLIC KEY-----, as `openssl pkey -pubout` writes)', 'something else'), ...(hint ? { hint } : {}) });
    return null;
  }
  try {
    const key = createPublicKey({ key: text, format: 'pem' });
    if (key.asymmetricKeyType !== 'ed25519') {
      problems.push(problem(file, 'an Ed25519 public key', `a ${key.asymmetricKeyType ?? 'unknown'} key`));
      return null;
    }
    return key;
  } catch (error) {
    problems.push(problem(file, 'a PEM Ed25519 public key', `a key that does not parse (${describeFsError(error)})`));
    return null;
  }
}

// Why an entry may not hold trusted keys, or null.
function ownershipFault(info: { uid: number; mode: number; isDirectory(): boolean; isFile(): boolean; isSymbolicLink(): boolean }, kind: 'directory' | 'file'): string | null {
  if (info.isSymbolicLink()) return 'a symbolic link';
  if (kind === 'directory' ? !info.isDirectory() : !info.isFile()) return `not a ${kind === 'directory' ? 'directory' : 'regular file'}`;
  if (info.uid !== 0) return `owned by uid ${info.uid}, not root`;
  if ((info.mode & 0o022) !== 0) {
    const who = [(info.mode & 0o020) !== 0 ? 'group' : '', (info.mode & 0o002) !== 0 ? 'others' : ''].filter(Boolean).join(' and ');
    return `mode ${(info.mode & 0o7777).toString(8).padStart(4, '0')}, writable by ${who}`;
  }
  return null;
}

function problem(path: string, expected: string, seen: string): ConfigProblem {
  return { key: `${CONFIG_KEY} (${path})`, expected, seen };
}

function describeFsError(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  return e && typeof e.message === 'string' ? e.message : String(error);
}
