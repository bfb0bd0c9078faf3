// /proc/locks parsing, and application hold files with a live lock, a stale one and hostile entries.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { scanAppHolds } from '../../../src/state/app-holds.js';
import { lockKey, parseProcLocks, readLockedFiles, splitDevice } from '../../../src/state/proc-locks.js';
import { makeTempDir } from './helpers.js';

const SAMPLE = [
  '1: FLOCK  ADVISORY  WRITE 4711 00:1a:1234 0 EOF',
  '1: -> FLOCK  ADVISORY  WRITE 4712 00:1a:5555 0 EOF',
  '2: POSIX  ADVISORY  READ 99 103:02:131074 0 EOF',
  '3: OFDLCK ADVISORY  WRITE -1 fd:00:42 0 EOF',
  '4: LEASE  ACTIVE    READ 7 00:1a:777 0 EOF',
  'garbage line',
].join('\n');

describe('parseProcLocks', () => {
  it('keeps granted flock, POSIX and OFD locks by device and inode; skips waiters and leases', () => {
    expect([...parseProcLocks(SAMPLE)].sort()).toEqual(['0:26:1234', '253:0:42', '259:2:131074']);
  });

  it('splits st_dev the way glibc does', () => {
    expect(splitDevice(0x1an)).toEqual({ major: 0n, minor: 26n });
    expect(splitDevice((259n << 8n) | 2n)).toEqual({ major: 259n, minor: 2n });
    // minor above 255 uses the high bits
    expect(splitDevice(0x00100801n)).toEqual({ major: 8n, minor: 0x101n });
  });
});

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) killGroup(child);
});

// The holder and its children (sleep inherits flock's descriptor) die together.
function killGroup(child: ChildProcess): void {
  try {
    if (child.pid) process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

// `flock FILE sleep 60` in its own process group: the kernel's lock lives as long as the group.
async function lockWith(file: string): Promise<ChildProcess> {
  const child = spawn('flock', [file, 'sleep', '60'], { stdio: 'ignore', detached: true });
  children.push(child);
  const key = async (): Promise<string> => {
    const s = await stat(file, { bigint: true });
    const { major, minor } = splitDevice(s.dev);
    return lockKey(major, minor, s.ino);
  };
  for (let i = 0; i < 200; i += 1) {
    try {
      if ((await readLockedFiles()).has(await key())) return child;
    } catch {
      // the file does not exist yet
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`flock did not lock ${file}`);
}

describe('scanAppHolds', () => {
  it('counts a locked file, ignores it once its holder died, and ignores symlinks, FIFOs and dot files', async () => {
    const dir = await makeTempDir();
    await writeFile(join(dir, 'kiosk-app'), 'customer session\nsecond line ignored\n');
    await writeFile(join(dir, 'left-over'), 'crashed long ago');
    await writeFile(join(dir, '.tmp'), 'x');
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    await mkdir(join(dir, 'subdir'));
    const holder = await lockWith(join(dir, 'kiosk-app'));
    await symlink(join(dir, 'kiosk-app'), join(dir, 'link-to-kiosk'));

    let scan = await scanAppHolds(dir, readLockedFiles);
    expect(scan.holds).toEqual([{ name: 'kiosk-app', reason: 'customer session' }]);
    expect(scan.stale).toEqual(['left-over']);
    expect(scan.skipped).toBe(3); // fifo, subdir, symlink

    const exited = new Promise((r) => holder.once('exit', r));
    killGroup(holder);
    await exited;
    // the group's last member may close the file a moment after flock's exit
    for (let i = 0; i < 100 && scan.holds.length > 0; i += 1) {
      await new Promise((r) => setTimeout(r, 20));
      scan = await scanAppHolds(dir, readLockedFiles);
    }
    expect(scan.holds).toEqual([]);
    expect(scan.stale.sort()).toEqual(['kiosk-app', 'left-over']);
  });

  it('reads the kernel list only when the directory holds a file', async () => {
    const dir = await makeTempDir();
    let reads = 0;
    const count = async (): Promise<Set<string>> => {
      reads += 1;
      return new Set();
    };
    await scanAppHolds(dir, count);
    expect(reads).toBe(0);
    await writeFile(join(dir, 'robot'), '');
    await scanAppHolds(dir, count);
    expect(reads).toBe(1);
  });

  it('without the kernel list every file holds; a missing directory holds nothing', async () => {
    const dir = await makeTempDir();
    await writeFile(join(dir, 'robot'), '');
    expect((await scanAppHolds(dir, async () => null)).holds).toEqual([{ name: 'robot', reason: '' }]);
    expect(await scanAppHolds(join(dir, 'missing'), async () => new Set())).toEqual({ holds: [], stale: [], skipped: 0 });
  });

  it('bounds the files looked at and the reason read', async () => {
    const dir = await makeTempDir();
    for (let i = 0; i < 70; i += 1) await writeFile(join(dir, `f${String(i).padStart(2, '0')}`), 'y'.repeat(5000));
    const scan = await scanAppHolds(dir, async () => null);
    expect(scan.holds).toHaveLength(64);
    expect(scan.skipped).toBe(6);
    expect(scan.holds[0]?.reason.length).toBeLessThan(260);
  });
});
