import { chmod, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../../src/clock/clock.js';
import { identityPath, readIdentity, writeIdentity, type StoredIdentity } from '../../../src/state/identity-store.js';
import { checkEveryTruncation, createRecordingLog, makeTempDir, T0 } from './helpers.js';

const TRUNCATION_TIMEOUT_MS = 180_000;

const IDENTITY: StoredIdentity = {
  version: 1,
  uuid: '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0',
  apiKey: 'a'.repeat(64),
  generation: 'agents',
  deviceName: 'pi-kitchen',
  registeredAt: '2026-11-28T10:00:00.000Z',
  publicKeyPem: '-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n',
  privateKeyPem: '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2Vw\n-----END PRIVATE KEY-----\n',
  caCertPem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
};

describe('identity store', () => {
  it('writes identity.json with mode 0600 in a new 0700 directory and reads it back', async () => {
    const stateDir = join(await makeTempDir(), 'var', 'lib', 'cloudjobs');
    const previous = process.umask(0o022);
    try {
      await writeIdentity(stateDir, IDENTITY);
    } finally {
      process.umask(previous);
    }
    expect((await stat(stateDir)).mode & 0o777).toBe(0o700);
    expect((await stat(identityPath(stateDir))).mode & 0o777).toBe(0o600);
    expect(await readdir(stateDir)).toEqual(['identity.json']);
    const log = createRecordingLog();
    expect(await readIdentity(stateDir, log)).toEqual(IDENTITY);
    expect(log.records).toEqual([]);
  });

  it('tightens an existing state directory that is too open', async () => {
    const stateDir = await makeTempDir();
    await chmod(stateDir, 0o755);
    await writeIdentity(stateDir, IDENTITY);
    expect((await stat(stateDir)).mode & 0o777).toBe(0o700);
  });

  it('keeps optional keys absent for generation devices', async () => {
    const stateDir = await makeTempDir();
    const plain: StoredIdentity = { version: 1, uuid: 'u', apiKey: 'k'.repeat(64), generation: 'devices', deviceName: 'pi', registeredAt: '2026-11-28T10:00:00.000Z' };
    await writeIdentity(stateDir, plain);
    expect(JSON.parse(await readFile(identityPath(stateDir), 'utf8'))).toEqual(plain);
    expect(await readIdentity(stateDir, createRecordingLog())).toEqual(plain);
  });

  it('returns null when there is no identity', async () => {
    expect(await readIdentity(await makeTempDir(), createRecordingLog())).toBeNull();
  });

  it('tightens an identity file others can read, and says so', async () => {
    const stateDir = await makeTempDir();
    await writeIdentity(stateDir, IDENTITY);
    await chmod(identityPath(stateDir), 0o644);
    const log = createRecordingLog();
    expect(await readIdentity(stateDir, log)).toEqual(IDENTITY);
    expect((await stat(identityPath(stateDir))).mode & 0o777).toBe(0o600);
    expect(log.messages('warn')).toEqual([
      `identity file ${identityPath(stateDir)} was readable by others (mode 0644); it holds the device API key, so it is now 0600`,
    ]);
  });

  it('refuses to store an identity without an API key', async () => {
    const stateDir = await makeTempDir();
    await expect(writeIdentity(stateDir, { ...IDENTITY, apiKey: '' })).rejects.toThrow('apiKey: expected a non-empty string, got ""');
    expect(await readdir(stateDir)).toEqual([]);
  });

  it('quarantines an identity truncated to every length, keeping it private', async () => {
    const stateDir = await makeTempDir({ onTmpfs: true });
    await mkdir(stateDir, { recursive: true });
    await writeIdentity(stateDir, IDENTITY);
    const path = identityPath(stateDir);
    const full = await readFile(path);
    const checked = await checkEveryTruncation(path, full, async (log) => {
      expect(await readIdentity(stateDir, log, createManualClock(T0))).toBeNull();
      const aside = (await readdir(stateDir)).find((n) => n.startsWith('identity.json.corrupt-'));
      expect((await stat(join(stateDir, aside!))).mode & 0o777).toBe(0o600);
    });
    expect(checked).toBe(full.length);
  }, TRUNCATION_TIMEOUT_MS);
});
