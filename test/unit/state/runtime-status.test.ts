import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StateCorruptError } from '../../../src/errors/errors.js';
import {
  readRuntimeStatus,
  removeRuntimeStatus,
  runtimeStatusPath,
  writeRuntimeStatus,
} from '../../../src/state/runtime-status.js';
import { makeTempDir } from './helpers.js';

describe('runtime status', () => {
  it('writes a world-readable status file and reads it back', async () => {
    const runtimeDir = join(await makeTempDir(), 'run', 'cloudjobs');
    const previous = process.umask(0o077);
    try {
      await writeRuntimeStatus(runtimeDir, { state: 'polling', outbox: { count: 2 } });
    } finally {
      process.umask(previous);
    }
    const path = runtimeStatusPath(runtimeDir);
    expect((await stat(path)).mode & 0o777).toBe(0o644);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ state: 'polling', outbox: { count: 2 }, version: 1 });
    expect(await readRuntimeStatus(runtimeDir)).toEqual({ path, status: { state: 'polling', outbox: { count: 2 } } });
  });

  it('returns null when the agent is not running and after it removed the file', async () => {
    const runtimeDir = await makeTempDir();
    expect(await readRuntimeStatus(runtimeDir)).toBeNull();
    await writeRuntimeStatus(runtimeDir, { state: 'idle' });
    await removeRuntimeStatus(runtimeDir);
    expect(await readRuntimeStatus(runtimeDir)).toBeNull();
    await removeRuntimeStatus(runtimeDir);
  });

  it('says which file is unreadable', async () => {
    const runtimeDir = await makeTempDir();
    const path = runtimeStatusPath(runtimeDir);
    await writeFile(path, '{"state":');
    const error = await readRuntimeStatus(runtimeDir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StateCorruptError);
    expect((error as StateCorruptError).message).toBe(
      `${path}: is not a status file the agent wrote (Unexpected end of JSON input); restart the agent to rewrite it`,
    );
  });
});
