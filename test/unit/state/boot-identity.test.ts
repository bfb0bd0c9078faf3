import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BOOT_MARKER_NAME, hasRebooted, readBootIdentity } from '../../../src/state/boot-identity.js';
import { makeTempDir } from './helpers.js';

async function setup() {
  const dir = await makeTempDir();
  const bootIdFile = join(dir, 'boot_id');
  const runtimeDir = join(dir, 'run', 'cloudjobs');
  await writeFile(bootIdFile, 'aaaa-1111\n');
  return { dir, bootIdFile, runtimeDir };
}

describe('readBootIdentity', () => {
  it('reads the boot id and makes a marker once per boot', async () => {
    const source = await setup();
    const first = await readBootIdentity(source);
    expect(first.bootId).toBe('aaaa-1111');
    expect(first.marker).toMatch(/^[0-9a-f-]{36}$/);
    expect(await readFile(join(source.runtimeDir, BOOT_MARKER_NAME), 'utf8')).toBe(`${first.marker}\n`);
    // an agent restart in the same boot sees the same identity
    expect(await readBootIdentity(source)).toEqual(first);
    expect(hasRebooted(first, await readBootIdentity(source))).toBe(false);
  });

  it('sees a reboot in a new boot id, or in a marker gone with /run', async () => {
    const source = await setup();
    const first = await readBootIdentity(source);
    await writeFile(source.bootIdFile, 'bbbb-2222\n');
    expect(hasRebooted(first, await readBootIdentity(source))).toBe(true);

    const second = await readBootIdentity(source);
    await rm(source.runtimeDir, { recursive: true });
    await writeFile(source.bootIdFile, 'bbbb-2222\n');
    const third = await readBootIdentity(source);
    expect(third.bootId).toBe(second.bootId);
    expect(hasRebooted(second, third)).toBe(true);
  });

  it('works without a boot id file (marker only)', async () => {
    const source = await setup();
    await rm(source.bootIdFile);
    expect((await readBootIdentity(source)).bootId).toBeNull();
  });

  it('refuses a damaged marker instead of making a new one (that would look like a reboot)', async () => {
    const source = await setup();
    await mkdir(source.runtimeDir, { recursive: true });
    await writeFile(join(source.runtimeDir, BOOT_MARKER_NAME), '\n');
    await expect(readBootIdentity(source)).rejects.toThrow(/boot-marker \(unexpected content ""; remove the file\)/);
  });

  it('names the file it could not read', async () => {
    const source = await setup();
    await rm(source.bootIdFile);
    await mkdir(source.bootIdFile);
    await expect(readBootIdentity(source)).rejects.toThrow(`could not read the boot id from ${source.bootIdFile}`);
  });
});
