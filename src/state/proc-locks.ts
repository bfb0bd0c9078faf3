// The kernel's list of file locks (/proc/locks), the only witness the agent
// takes for an application hold being alive: a flock(2), fcntl(2) or OFD lock
// is released by the kernel when its holder dies, whatever the holder wrote.
// The pid column is ignored on purpose (a pid says nothing the kernel vouches
// for about the file), and waiters (`->` lines) hold nothing.
import { open } from 'node:fs/promises';
import { describeIoError } from './atomic-file.js';

/** Read at most this much of /proc/locks (a busy system has a few hundred lines). */
const MAX_PROC_LOCKS_BYTES = 1024 * 1024;
const READ_CHUNK_BYTES = 16 * 1024;

// "12: FLOCK  ADVISORY  WRITE 4711 00:1a:1234 0 EOF" (device major:minor in hex, inode in decimal)
const LOCK_LINE = /^\d+:\s+(FLOCK|POSIX|OFDLCK)\s+\S+\s+\S+\s+\S+\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/;

/** The key of a file in a set of locked files: "major:minor:inode", all decimal. */
export function lockKey(major: number | bigint, minor: number | bigint, inode: number | bigint): string {
  return `${major}:${minor}:${inode}`;
}

/** Parses /proc/locks text into the keys of the files that hold a granted lock. Pure. */
export function parseProcLocks(text: string): Set<string> {
  const locked = new Set<string>();
  for (const line of text.split('\n')) {
    const match = LOCK_LINE.exec(line);
    if (!match) continue;
    const [, , major, minor, inode] = match as unknown as [string, string, string, string, string];
    locked.add(lockKey(Number.parseInt(major, 16), Number.parseInt(minor, 16), BigInt(inode)));
  }
  return locked;
}

/** Splits a stat(2) st_dev into major and minor as glibc does (gnu_dev_major/minor). */
export function splitDevice(dev: bigint): { major: bigint; minor: bigint } {
  return {
    major: ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn),
    minor: (dev & 0xffn) | ((dev >> 12n) & ~0xffn),
  };
}

/** Reads and parses `/proc/locks` (bounded). */
export async function readLockedFiles(path = '/proc/locks'): Promise<Set<string>> {
  let handle;
  try {
    handle = await open(path, 'r');
    // procfs hands out a page or so per read: read in small chunks until EOF or the bound
    const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
    const parts: Buffer[] = [];
    let length = 0;
    while (length < MAX_PROC_LOCKS_BYTES) {
      const { bytesRead } = await handle.read(chunk, 0, Math.min(chunk.length, MAX_PROC_LOCKS_BYTES - length), null);
      if (bytesRead === 0) break;
      parts.push(Buffer.from(chunk.subarray(0, bytesRead)));
      length += bytesRead;
    }
    return parseProcLocks(Buffer.concat(parts, length).toString('utf8'));
  } catch (error) {
    throw describeIoError('read the kernel lock list', path, error);
  } finally {
    await handle?.close();
  }
}
