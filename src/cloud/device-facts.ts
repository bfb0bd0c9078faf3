// What a device tells the cloud about itself at registration: name, board
// model, MAC address and OS. Every source (files, host name, interfaces) is a
// parameter so tests can feed a Pi's /proc without being one.
import { readFile as readFileAsync } from 'node:fs/promises';
import os from 'node:os';

/** Reads a text file; rejects when it does not exist. */
export type ReadText = (file: string) => Promise<string>;

const defaultRead: ReadText = (file) => readFileAsync(file, 'utf8');

/** Where the board model and OS name are read from. */
export interface FactPaths {
  deviceTreeModel: string;
  cpuinfo: string;
  osRelease: string;
}

/** The Linux locations. */
export const LINUX_FACT_PATHS: Readonly<FactPaths> = Object.freeze({
  deviceTreeModel: '/proc/device-tree/model',
  cpuinfo: '/proc/cpuinfo',
  osRelease: '/etc/os-release',
});

/** Returns the board model: /proc/device-tree/model, else the cpuinfo "Model" line, else "generic-linux". */
export async function readDeviceType(readText: ReadText = defaultRead, paths: FactPaths = LINUX_FACT_PATHS): Promise<string> {
  const model = await readOptional(readText, paths.deviceTreeModel);
  const fromTree = model?.replace(/\0/g, '').trim();
  if (fromTree) return fromTree;
  const cpuinfo = await readOptional(readText, paths.cpuinfo);
  const line = cpuinfo?.split('\n').find((l) => /^Model\s*:/.test(l));
  const fromCpuinfo = line?.slice(line.indexOf(':') + 1).trim();
  return fromCpuinfo || 'generic-linux';
}

/** Returns the OS name from os-release PRETTY_NAME, else "<type> <release>" of the kernel. */
export async function readOsVersion(
  readText: ReadText = defaultRead,
  paths: FactPaths = LINUX_FACT_PATHS,
  kernel: { type: string; release: string } = { type: os.type(), release: os.release() },
): Promise<string> {
  const text = await readOptional(readText, paths.osRelease);
  const line = text?.split('\n').find((l) => l.startsWith('PRETTY_NAME='));
  const value = line?.slice('PRETTY_NAME='.length).trim().replace(/^"(.*)"$/, '$1');
  return value || `${kernel.type} ${kernel.release}`;
}

/** Returns the host name as the device name (the default of device.device_name). */
export function readDeviceName(hostname: () => string = os.hostname): string {
  return hostname().trim() || 'unnamed-device';
}

/** Returns the MAC of the first real interface (eth*, then wlan*, then any), or "" when there is none. */
export function readMacAddress(
  interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces(),
): string {
  const candidates = Object.entries(interfaces)
    .flatMap(([name, infos]) => (infos ?? []).map((info) => ({ name, info })))
    .filter(({ info }) => !info.internal && info.mac && info.mac !== '00:00:00:00:00:00');
  const rank = (name: string): number => (name.startsWith('eth') || name.startsWith('en') ? 0 : name.startsWith('wl') ? 1 : 2);
  candidates.sort((a, b) => rank(a.name) - rank(b.name) || a.name.localeCompare(b.name));
  return candidates[0]?.info.mac ?? '';
}

async function readOptional(readText: ReadText, file: string): Promise<string | null> {
  try {
    return await readText(file);
  } catch {
    return null;
  }
}
