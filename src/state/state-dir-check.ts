// Whether the state directory can take writes, asked of the file system
// instead of learned from a failed journal write: read-only (EROFS, also after
// the kernel remounted a failing SD card), not writable (EACCES), or full.
import { constants } from 'node:fs';
import { access, statfs, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { classifyLocalFault, StateIoError, type LocalFault } from '../errors/errors.js';
import { describeIoError, writeFileAtomic } from './atomic-file.js';

/** Below this much free space the state directory counts as full: a journal entry or final report may not fit. */
const MIN_FREE_BYTES = 512 * 1024;

/** What checkStateDir needs. */
export interface StateDirCheck {
  dir: string;
  /** Whether the agent may use the blocks reserved for root (it runs as root). */
  useReserved: boolean;
  /** @default MIN_FREE_BYTES */
  minFreeBytes?: number;
}

/** Checks without writing (two system calls: cheap enough before every poll). Returns the fault, or null. */
export async function checkStateDir(check: StateDirCheck): Promise<LocalFault | null> {
  try {
    await access(check.dir, constants.W_OK).catch((error: unknown) => {
      throw describeIoError('write to', check.dir, error);
    });
    const fs = await statfs(check.dir).catch((error: unknown) => {
      throw describeIoError('read the free space of', check.dir, error);
    });
    const free = (check.useReserved ? fs.bfree : fs.bavail) * fs.bsize;
    const min = check.minFreeBytes ?? MIN_FREE_BYTES;
    if (free < min) {
      throw new StateIoError(check.dir, `only ${free} bytes free, below the ${min} the agent needs to journal a job`, {
        errno: 'ENOSPC',
      });
    }
    return null;
  } catch (error) {
    return asFault(error);
  }
}

/** Checks, then proves it by writing (fsynced) and removing a probe file; for leaving degraded mode. */
export async function probeStateDir(check: StateDirCheck): Promise<LocalFault | null> {
  const found = await checkStateDir(check);
  if (found !== null) return found;
  const probe = join(check.dir, '.write-probe');
  try {
    await writeFileAtomic(probe, 'cloudjobs write probe\n', { mode: 0o600 });
    await unlink(probe).catch((error: unknown) => {
      throw describeIoError('remove', probe, error);
    });
    return null;
  } catch (error) {
    return asFault(error);
  }
}

function asFault(error: unknown): LocalFault {
  const fault = classifyLocalFault(error);
  if (fault !== null) return fault;
  throw error;
}
