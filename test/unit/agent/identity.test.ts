import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IdentityError, resolveIdentity, type ResolveIdentityOptions, type StoredIdentityView } from '../../../src/agent/identity.js';
import type { SupervisorAnswer } from '../../../src/cloud/supervisor.js';
import { loadConfig } from '../../../src/config/load.js';

const dir = mkdtempSync(join(tmpdir(), 'cloudjobs-identity-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CONFIG_UUID = '8479359e-dbeb-4858-813c-e8a9008dde04';
const STORED: StoredIdentityView = {
  uuid: '11111111-2222-4333-8444-555555555555',
  apiKey: 'b'.repeat(64),
  generation: 'agents',
  caCertPem: '-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n',
};

function options(
  ini: string,
  env: Record<string, string> = {},
  extra: { stored?: StoredIdentityView | null; supervisor?: SupervisorAnswer } = {},
): ResolveIdentityOptions & { supervisorCalls: string[] } {
  const loaded = loadConfig({
    file: join(dir, 'agent.ini'),
    fileText: `[cloud]\napi_url = http://127.0.0.1:4002/api/v1\n${ini}`,
    env,
  });
  const supervisorCalls: string[] = [];
  return {
    config: loaded.config,
    sources: loaded.sources,
    readStoredIdentity: async () => extra.stored ?? null,
    fetchSupervisorUuid: async (url) => {
      supervisorCalls.push(url);
      return extra.supervisor ?? { uuid: null, reason: `the supervisor at ${url}/v2/device did not answer: connection refused` };
    },
    readFile: (path) => readFile(path, 'utf8'),
    supervisorCalls,
  };
}

async function identityFailure(promise: Promise<unknown>): Promise<IdentityError> {
  const error = await promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(IdentityError);
  return error as IdentityError;
}

describe('resolveIdentity', () => {
  it('takes uuid and api key from the config file first', async () => {
    const o = options(`api_key = ${'c'.repeat(64)}\n[device]\nuuid = ${CONFIG_UUID}\n`, {}, { stored: STORED });
    expect(await resolveIdentity(o)).toEqual({
      uuid: CONFIG_UUID,
      apiKey: 'c'.repeat(64),
      source: 'config',
      apiKeySource: 'config',
      generation: null,
      caCertPem: STORED.caCertPem,
      mqtt: null,
    });
    expect(o.supervisorCalls).toEqual([]);
  });

  it('says "env" for values from the environment (seed variables included)', async () => {
    const o = options('', { DEVICE_UUID: CONFIG_UUID, DEVICE_API_KEY: 'd'.repeat(64) });
    const identity = await resolveIdentity(o);
    expect([identity.uuid, identity.apiKey, identity.source, identity.apiKeySource]).toEqual([CONFIG_UUID, 'd'.repeat(64), 'env', 'env']);
  });

  it('reads the first line of cloud.api_key_file', async () => {
    const keyFile = join(dir, 'key');
    writeFileSync(keyFile, `${'e'.repeat(64)}\nignored\n`);
    const o = options(`api_key_file = ${keyFile}\n[device]\nuuid = ${CONFIG_UUID}\n`);
    const identity = await resolveIdentity(o);
    expect([identity.apiKey, identity.apiKeySource]).toEqual(['e'.repeat(64), 'config']);
  });

  it('explains an empty cloud.api_key_file', async () => {
    const keyFile = join(dir, 'empty-key');
    writeFileSync(keyFile, '\n');
    const error = await identityFailure(resolveIdentity(options(`api_key_file = ${keyFile}\n[device]\nuuid = ${CONFIG_UUID}\n`)));
    expect(error.reason).toBe('api-key-file');
    expect(error.message).toBe(`cloud.api_key_file: ${keyFile} is empty; its first line must hold the device API key`);
  });

  it('uses the registered identity file when the config has neither', async () => {
    const o = options('', {}, { stored: STORED });
    expect(await resolveIdentity(o)).toEqual({
      uuid: STORED.uuid,
      apiKey: STORED.apiKey,
      source: 'identity-file',
      apiKeySource: 'identity-file',
      generation: 'agents',
      caCertPem: STORED.caCertPem,
      mqtt: null,
    });
    expect(o.supervisorCalls).toEqual([]);
  });

  it('refuses to pair device.uuid with the key of another registered device', async () => {
    const error = await identityFailure(resolveIdentity(options(`[device]\nuuid = ${CONFIG_UUID}\n`, {}, { stored: STORED })));
    expect(error.reason).toBe('mismatch');
    expect(error.message).toMatch(new RegExp(`belongs to device ${STORED.uuid}, but device\\.uuid is ${CONFIG_UUID};`));
  });

  it('asks the supervisor for the uuid last, with the key from the environment', async () => {
    const o = options('', { DEVICE_API_KEY: 'f'.repeat(64) }, { supervisor: { uuid: 'sup-uuid-1' } });
    const identity = await resolveIdentity(o);
    expect([identity.uuid, identity.source, identity.apiKeySource]).toEqual(['sup-uuid-1', 'supervisor', 'env']);
    expect(o.supervisorCalls).toEqual(['http://127.0.0.1:48484']);
  });

  it('gives the seed message "Device UUID not available" with what to do', async () => {
    const error = await identityFailure(resolveIdentity(options('', { DEVICE_API_KEY: 'f'.repeat(64) })));
    expect(error.reason).toBe('no-uuid');
    expect(error.code).toBe('CONFIG');
    expect(error.message).toBe(
      'Device UUID not available: set device.uuid (or DEVICE_UUID), register this device with `cloudjobs register --provisioning-key-file FILE`, or check the supervisor (the supervisor at http://127.0.0.1:48484/v2/device did not answer: connection refused)',
    );
  });

  it('explains a missing API key', async () => {
    const error = await identityFailure(resolveIdentity(options(`[device]\nuuid = ${CONFIG_UUID}\n`)));
    expect(error.reason).toBe('no-api-key');
    expect(error.message).toBe(
      `Device API key not available for device ${CONFIG_UUID} (uuid from the config file): set cloud.api_key_file (or DEVICE_API_KEY), or register this device with \`cloudjobs register --provisioning-key-file FILE\``,
    );
  });
});
