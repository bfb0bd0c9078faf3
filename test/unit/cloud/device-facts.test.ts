import { describe, expect, it } from 'vitest';
import { readDeviceName, readDeviceType, readMacAddress, readOsVersion } from '../../../src/cloud/device-facts.js';

const PATHS = { deviceTreeModel: '/dt/model', cpuinfo: '/cpuinfo', osRelease: '/os-release' };

function files(map: Record<string, string>) {
  return async (file: string): Promise<string> => {
    const text = map[file];
    if (text === undefined) throw Object.assign(new Error(`ENOENT: ${file}`), { code: 'ENOENT' });
    return text;
  };
}

describe('device facts', () => {
  it('reads the Pi model from the device tree (NUL-terminated)', async () => {
    expect(await readDeviceType(files({ '/dt/model': 'Raspberry Pi 4 Model B Rev 1.4\0' }), PATHS)).toBe('Raspberry Pi 4 Model B Rev 1.4');
  });

  it('falls back to the cpuinfo Model line, then to generic-linux', async () => {
    const cpuinfo = 'processor\t: 0\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi Zero 2 W Rev 1.0\n';
    expect(await readDeviceType(files({ '/cpuinfo': cpuinfo }), PATHS)).toBe('Raspberry Pi Zero 2 W Rev 1.0');
    expect(await readDeviceType(files({ '/dt/model': '\0', '/cpuinfo': 'processor : 0\n' }), PATHS)).toBe('generic-linux');
    expect(await readDeviceType(files({}), PATHS)).toBe('generic-linux');
  });

  it('reads PRETTY_NAME from os-release, else the kernel', async () => {
    const osRelease = 'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n';
    expect(await readOsVersion(files({ '/os-release': osRelease }), PATHS)).toBe('Debian GNU/Linux 12 (bookworm)');
    expect(await readOsVersion(files({}), PATHS, { type: 'Linux', release: '6.1.0-rpi7' })).toBe('Linux 6.1.0-rpi7');
  });

  it('uses the host name as device name', () => {
    expect(readDeviceName(() => 'pi-kitchen\n')).toBe('pi-kitchen');
    expect(readDeviceName(() => '')).toBe('unnamed-device');
  });

  it('prefers the wired MAC over wireless and skips loopback', () => {
    const iface = (mac: string, internal = false) => [
      { address: '10.0.0.2', netmask: '255.0.0.0', family: 'IPv4' as const, mac, internal, cidr: null },
    ];
    expect(
      readMacAddress({ lo: iface('00:00:00:00:00:00', true), wlan0: iface('b8:27:eb:00:00:02'), eth0: iface('b8:27:eb:00:00:01') }),
    ).toBe('b8:27:eb:00:00:01');
    expect(readMacAddress({ lo: iface('00:00:00:00:00:00', true) })).toBe('');
  });
});
