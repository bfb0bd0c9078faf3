import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkStateDir, probeStateDir } from '../../../src/state/state-dir-check.js';

describe('checkStateDir and probeStateDir', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-check-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a writable directory with room passes, and the probe leaves nothing behind', async () => {
    expect(await checkStateDir({ dir, useReserved: true, minFreeBytes: 1 })).toBeNull();
    expect(await probeStateDir({ dir, useReserved: true, minFreeBytes: 1 })).toBeNull();
    expect(await readdir(dir)).toEqual([]);
  });

  it('too little free space is ENOSPC, named with the numbers', async () => {
    const fault = await checkStateDir({ dir, useReserved: false, minFreeBytes: Number.MAX_SAFE_INTEGER });
    expect(fault?.errno).toBe('ENOSPC');
    expect(fault?.path).toBe(dir);
    expect(fault?.message).toMatch(new RegExp(`^${dir}: ENOSPC: only \\d+ bytes free, below the ${Number.MAX_SAFE_INTEGER} the agent needs to journal a job$`));
  });

  it('a missing directory is ENOENT', async () => {
    const missing = path.join(dir, 'gone');
    const fault = await probeStateDir({ dir: missing, useReserved: true });
    expect(fault).toMatchObject({ path: missing, errno: 'ENOENT' });
    expect(fault?.message).toBe(`${missing}: ENOENT: no such file or directory`);
  });
});
