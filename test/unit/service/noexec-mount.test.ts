import { describe, expect, it } from 'vitest';
import { findMount, findNoexecMount, parseMountinfo } from '../../../src/service/noexec-mount.js';

// The shape of a Debian bookworm boot through initramfs-tools: /run noexec, / and /usr not.
const MOUNTINFO = [
  '22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro',
  '23 22 0:21 / /run rw,nosuid,nodev,noexec,relatime shared:5 - tmpfs tmpfs rw,size=400000k,mode=755',
  '24 23 0:22 / /run/lock rw,nosuid,nodev,noexec,relatime shared:6 - tmpfs tmpfs rw,size=5120k',
  '25 22 0:23 / /tmp rw,nosuid,nodev shared:7 - tmpfs tmpfs rw',
  '26 22 0:24 / /mnt/with\\040space rw,noexec - tmpfs tmpfs rw',
  '27 25 0:25 / /tmp/pkg rw,relatime - tmpfs tmpfs rw,mode=755',
  '28 25 0:26 / /tmp rw,noexec - tmpfs tmpfs rw',
  'not a mountinfo line',
  '',
].join('\n');

describe('parseMountinfo', () => {
  it('reads mount points (unescaping \\040) and per-mount options, skipping other lines', () => {
    const mounts = parseMountinfo(MOUNTINFO);
    expect(mounts.map((m) => m.mountPoint)).toEqual(['/', '/run', '/run/lock', '/tmp', '/mnt/with space', '/tmp/pkg', '/tmp']);
    expect(mounts[1]!.options).toEqual(['rw', 'nosuid', 'nodev', 'noexec', 'relatime']);
  });
});

describe('findMount and findNoexecMount', () => {
  it('picks the longest mount point above the path, not a mere string prefix', () => {
    const mounts = parseMountinfo(MOUNTINFO);
    expect(findMount('/run/cloudjobs', mounts)?.mountPoint).toBe('/run');
    expect(findMount('/run/lock/x', mounts)?.mountPoint).toBe('/run/lock');
    expect(findMount('/runner/x', mounts)?.mountPoint).toBe('/');
    expect(findMount('/run', mounts)?.mountPoint).toBe('/run');
    expect(findMount('/x', [])).toBeNull();
  });

  it('names the noexec mount, and null where exec is allowed', () => {
    expect(findNoexecMount('/run/cloudjobs/datagram.node', MOUNTINFO)).toBe('/run');
    expect(findNoexecMount('/usr/lib/cloudjobs/datagram.node', MOUNTINFO)).toBeNull();
    expect(findNoexecMount('/mnt/with space/a', MOUNTINFO)).toBe('/mnt/with space');
    expect(findNoexecMount('/tmp/pkg/usr/lib/cloudjobs/datagram.node', MOUNTINFO)).toBeNull();
  });

  it('takes the mount made last when one covers another at the same point (/tmp remounted noexec)', () => {
    expect(findNoexecMount('/tmp/cloudjobs-native-x', MOUNTINFO)).toBe('/tmp');
    const only = MOUNTINFO.split('\n').filter((l) => !l.startsWith('28 ')).join('\n');
    expect(findNoexecMount('/tmp/cloudjobs-native-x', only)).toBeNull();
  });
});
