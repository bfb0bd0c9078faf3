// Helpers of the identity, TLS and secret e2e tests (issue 6): agents without
// an identity but with a provisioning key, the stored identity file, and
// reading everything an agent left on disk.
import { createHash } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ReferenceCloud, RequestRecord } from '../cloud/reference-cloud.js';
import { createAgentDirs, type AgentDirs, type IniSections } from './harness.js';

/** The identity file as `cloudjobs register` stores it. */
export interface IdentityFile {
  version: number;
  uuid: string;
  apiKey: string;
  generation: 'devices' | 'agents';
  deviceName: string;
  registeredAt: string;
  publicKeyPem?: string;
  privateKeyPem?: string;
  caCertPem?: string;
}

/** Dirs of an agent with no identity, plus the provisioning key file it may use. */
export interface UnregisteredDirs extends AgentDirs {
  provisioningKeyFile: string;
  identityFile: string;
}

/**
 * Creates agent dirs with no uuid and no API key; the provisioning key is
 * written to a 0600 file. `viaConfig` also names it in [device] provisioning_key_file.
 */
export async function createUnregisteredDirs(
  cloud: ReferenceCloud,
  provisioningKey: string,
  options: { viaConfig?: boolean; ini?: IniSections } = {},
): Promise<UnregisteredDirs> {
  const dirs = await createAgentDirs(cloud, null, options.ini ?? {});
  const provisioningKeyFile = path.join(dirs.root, 'provisioning-key');
  await writeFile(provisioningKeyFile, `${provisioningKey}\n`, { mode: 0o600 });
  if (options.viaConfig) {
    const text = await readFile(dirs.configFile, 'utf8');
    if (!text.includes('[device]\n')) throw new Error(`no [device] section in ${dirs.configFile}`);
    await writeFile(dirs.configFile, text.replace('[device]\n', `[device]\nprovisioning_key_file = ${provisioningKeyFile}\n`), { mode: 0o600 });
  }
  return { ...dirs, provisioningKeyFile, identityFile: path.join(dirs.stateDir, 'identity.json') };
}

/** Reads and parses the identity file. */
export async function readIdentityFile(file: string): Promise<IdentityFile> {
  return JSON.parse(await readFile(file, 'utf8')) as IdentityFile;
}

/** Permission bits of a path (e.g. 0o600). */
export async function modeOf(file: string): Promise<number> {
  return (await stat(file)).mode & 0o777;
}

/** True when the path exists. */
export async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** sha256 hex of a key, the form the reference cloud keeps. */
export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Requests the cloud logged for a device's job routes (next job and status), in order. */
export function deviceJobRequests(cloud: ReferenceCloud, uuid: string): RequestRecord[] {
  const prefix = `/${cloud.generation}/${uuid}/jobs/`;
  return cloud.requests().filter((r) => r.path.includes(prefix));
}

/** Registration requests (POST .../register) the cloud logged, in order. */
export function registrationRequests(cloud: ReferenceCloud): RequestRecord[] {
  return cloud.requests().filter((r) => r.route === `POST /${cloud.generation === 'agents' ? 'agent' : 'device'}/register`);
}

/** Every regular file below `dir`, recursively, as absolute paths (missing dir: none). */
export async function listFilesBelow(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await listFilesBelow(full)));
    else if (entry.isFile()) files.push(full);
  }
  return files.sort();
}

/** Names the sources (labels) whose text contains `secret`; empty when none leak it. */
export function findLeaks(secret: string, sources: ReadonlyArray<{ label: string; text: string }>): string[] {
  return sources.filter((s) => s.text.includes(secret)).map((s) => s.label);
}

/** What /proc shows about one process. */
export interface ProcessView {
  pid: number;
  /** /proc/<pid>/comm (the short process title). */
  comm: string;
  /** /proc/<pid>/cmdline with NULs as spaces (what ps shows as the title). */
  cmdline: string;
  /** /proc/<pid>/environ with NULs as newlines. */
  environ: string;
}

/** Reads comm, cmdline and environ of `pid` and all its descendants (processes that exit meanwhile are skipped). */
export async function readProcessTree(pid: number): Promise<ProcessView[]> {
  const parents = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const status = await readFile(`/proc/${name}/status`, 'utf8');
      const ppid = /^PPid:\s+(\d+)$/m.exec(status);
      if (ppid) parents.set(Number(name), Number(ppid[1]));
    } catch {
      // gone already
    }
  }
  const isBelow = (candidate: number): boolean => {
    for (let p = candidate, hops = 0; p > 1 && hops < 64; hops += 1) {
      if (p === pid) return true;
      p = parents.get(p) ?? 0;
    }
    return false;
  };
  const views: ProcessView[] = [];
  for (const candidate of [...parents.keys()].filter(isBelow).sort((a, b) => a - b)) {
    try {
      const [comm, cmdline, environ] = await Promise.all([
        readFile(`/proc/${candidate}/comm`, 'utf8'),
        readFile(`/proc/${candidate}/cmdline`),
        readFile(`/proc/${candidate}/environ`),
      ]);
      views.push({
        pid: candidate,
        comm: comm.trim(),
        cmdline: cmdline.toString('utf8').replaceAll('\0', ' ').trim(),
        environ: environ.toString('utf8').replaceAll('\0', '\n'),
      });
    } catch {
      // exited between the scan and the read
    }
  }
  return views;
}
