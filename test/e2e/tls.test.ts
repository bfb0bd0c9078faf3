// Issue 6 "Done when" (transport): over HTTPS with a test CA the agent runs
// jobs when the CA, pin or client certificate are right; an unknown CA, a
// wrong host name, an expired certificate and a pin mismatch each fail with
// their own words in the log while the agent keeps retrying (proved by
// fixing the server and seeing a job run); http:// to a non-loopback host is
// refused by check-config and run.
import { readFile, rm, writeFile } from 'node:fs/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startReferenceCloud, type CloudTlsOptions, type ReferenceCloud } from '../cloud/reference-cloud.js';
import { createTestPki, type CertificatePair, type TestPki } from '../cloud/test-pki.js';
import {
  commandJob,
  createAgentDirs,
  removeDirs,
  runCommand,
  startAgent,
  startCloudWithDevice,
  stopAgent,
  type AgentDirs,
  type AgentProcess,
  type IniSections,
  type TestDevice,
} from './harness.js';
import { createUnregisteredDirs, readIdentityFile } from './identity-helpers.js';

let pki: TestPki;
const clouds: ReferenceCloud[] = [];
const agents: AgentProcess[] = [];
const allDirs: AgentDirs[] = [];

beforeAll(async () => {
  pki = await createTestPki();
});

afterAll(async () => {
  await rm(pki.dir, { recursive: true, force: true });
});

afterEach(async () => {
  for (const agent of agents.splice(0)) await stopAgent(agent);
  for (const cloud of clouds.splice(0)) await cloud.close();
  for (const dirs of allDirs.splice(0)) await removeDirs(dirs);
});

// The headline of each TLS failure; every case must show its own and none of the others.
const HEADLINES = {
  unknownCa: 'TLS unknown CA:',
  wrongHost: 'TLS host name mismatch:',
  expired: 'TLS certificate expired:',
  pin: 'TLS pin mismatch:',
  clientCert: 'TLS client certificate refused:',
} as const;

async function startTlsCloud(tls: CloudTlsOptions): Promise<{ cloud: ReferenceCloud; device: TestDevice }> {
  const started = await startCloudWithDevice({ tls });
  clouds.push(started.cloud);
  return started;
}

async function startTlsAgent(cloud: ReferenceCloud, device: TestDevice, cloudKeys: Record<string, string>, env: Record<string, string> = {}): Promise<AgentProcess> {
  const dirs = await createAgentDirs(cloud, device, { cloud: { ca_file: pki.caFile, ...cloudKeys } });
  allDirs.push(dirs);
  const agent = startAgent(dirs, { env });
  agents.push(agent);
  return agent;
}

async function expectJobSucceeds(cloud: ReferenceCloud, device: TestDevice): Promise<void> {
  const job = cloud.queueJob(device.uuid, { name: 'over tls', document: commandJob(['echo', 'over https']) });
  const row = await cloud.waitForJobStatus(job.job_id, undefined, 30_000);
  expect(row.status).toBe('SUCCEEDED');
  const finals = cloud.patches(job.job_id).filter((p) => (p.body as { status: string }).status !== 'IN_PROGRESS');
  expect(finals).toHaveLength(1);
  expect(finals[0]!.body).toMatchObject({ status: 'SUCCEEDED', exit_code: 0, executed_steps: 1, failed_step: null });
  expect((finals[0]!.body as { stdout: string }).stdout).toContain('over https');
}

function otherHeadlines(own: keyof typeof HEADLINES): string[] {
  return Object.entries(HEADLINES).filter(([k]) => k !== own).map(([, v]) => v);
}

describe('HTTPS with a test CA', () => {
  it('a good certificate chaining to [cloud] ca_file passes and a job runs', async () => {
    const { cloud, device } = await startTlsCloud({ cert: pki.server.cert, key: pki.server.key });
    expect(cloud.url.startsWith('https://127.0.0.1:')).toBe(true);
    const agent = await startTlsAgent(cloud, device, {});
    await expectJobSucceeds(cloud, device);
    expect(agent.output()).not.toMatch(/TLS /);
    expect((await stopAgent(agent)).code).toBe(0);
  });

  it('a correct pin passes and a job runs', async () => {
    const { cloud, device } = await startTlsCloud({ cert: pki.server.cert, key: pki.server.key });
    // Two pins, as in a key rollover; the server's is the second.
    const agent = await startTlsAgent(cloud, device, { pin_sha256: `${pki.alternate.pin},${pki.server.pin}` });
    await expectJobSucceeds(cloud, device);
    expect(agent.output()).not.toContain(HEADLINES.pin);
    expect((await stopAgent(agent)).code).toBe(0);
  });

  const failures: Array<{
    name: string;
    own: keyof typeof HEADLINES;
    bad: () => CertificatePair;
    keys: () => Record<string, string>;
    message: (port: number) => string;
  }> = [
    {
      name: 'a certificate from an unknown CA',
      own: 'unknownCa',
      bad: () => pki.unknownCa.server,
      keys: () => ({}),
      message: (port) => `TLS unknown CA: the server's certificate for 127.0.0.1:${port} is not signed by a trusted CA; set cloud.ca_file to the CA that signed it`,
    },
    {
      name: 'a certificate for another host name',
      own: 'wrongHost',
      bad: () => pki.wrongHost,
      keys: () => ({}),
      message: () => "TLS host name mismatch: the server's certificate is not valid for 127.0.0.1 (it names DNS:wrong.example.invalid); use a host name the certificate names in cloud.api_url",
    },
    {
      name: 'an expired certificate',
      own: 'expired',
      bad: () => pki.expired,
      keys: () => ({}),
      // <TIME>: the device clock and the certificate's dates (made with -days -1, so valid until yesterday)
      message: (port) =>
        `TLS certificate expired: the device clock says <TIME>; the server's certificate for 127.0.0.1:${port} is valid from <TIME> to <TIME>; ` +
        'the certificate must be renewed on the server, unless the device clock is wrong (check `timedatectl` and NTP)',
    },
    {
      name: 'a key other than the pinned one (even though the CA vouches for it)',
      own: 'pin',
      bad: () => pki.alternate,
      keys: () => ({ pin_sha256: pki.server.pin }),
      message: (port) =>
        `TLS pin mismatch: 127.0.0.1:${port} presented public key sha256//${pki.alternate.pin}, which is not in cloud.pin_sha256; refusing it even though a CA vouches for it`,
    },
  ];

  it.each(failures)('$name fails with its own message, and the agent keeps retrying until the server is fixed', async ({ own, bad, keys, message }) => {
    const { cloud, device } = await startTlsCloud({ cert: bad().cert, key: bad().key });
    // Scaled time: retries at max_backoff (2s) come every 200ms.
    const agent = await startTlsAgent(cloud, device, keys(), { CLOUDJOBS_TEST_TIME_SCALE: '10' });
    // A TLS failure will not fix itself soon: retried at max_backoff (2s in agent time).
    const pattern = escapeRegExp(message(cloud.port)).replaceAll('<TIME>', '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ');
    await agent.waitForOutput(new RegExp(`ERROR polling for jobs failed: ${pattern}.*; retrying in 2s cloudStatus=tls`));
    // No request got through the handshake.
    expect(cloud.requests()).toEqual([]);
    for (const other of otherHeadlines(own)) expect(agent.output()).not.toContain(other);
    expect(agent.child.exitCode).toBeNull();
    // The agent is still retrying: once the server presents the good certificate, it polls and runs a job.
    cloud.setCertificate(pki.server.cert, pki.server.key);
    await expectJobSucceeds(cloud, device);
    expect((await stopAgent(agent)).code).toBe(0);
  });

  it('mTLS: a server that requires a client certificate accepts client_cert/client_key and refuses an agent without one', async () => {
    const { cloud, device } = await startTlsCloud({ cert: pki.server.cert, key: pki.server.key, ca: pki.caCert, requestCert: true });
    const without = await startTlsAgent(cloud, device, {}, { CLOUDJOBS_TEST_TIME_SCALE: '10' });
    await without.waitForOutput(/TLS client certificate refused: 127\.0\.0\.1:\d+ requires a client certificate and did not accept this device's \(ERR_SSL_\w+\); check cloud\.client_cert and cloud\.client_key/);
    expect(cloud.requests()).toEqual([]);
    for (const other of otherHeadlines('clientCert')) expect(without.output()).not.toContain(other);
    expect((await stopAgent(without)).code).toBe(0);

    const agent = await startTlsAgent(cloud, device, { client_cert: pki.client.certFile, client_key: pki.client.keyFile });
    await expectJobSucceeds(cloud, device);
    expect(agent.output()).not.toMatch(/TLS /);
    expect((await stopAgent(agent)).code).toBe(0);
  });
});

describe('registration over HTTPS', () => {
  it('stores the CA of api.tlsConfig.caCert, and run trusts it without cloud.ca_file', async () => {
    const provisioningKey = 'prov-tls-0123456789abcdef';
    const cloud = await startReferenceCloud({
      generation: 'agents',
      tls: { cert: pki.server.cert, key: pki.server.key },
      provisioningKeys: [{ key: provisioningKey }],
      registrationCaCert: pki.caCert,
    });
    clouds.push(cloud);
    const dirs = await createUnregisteredDirs(cloud, provisioningKey, { ini: { cloud: { ca_file: pki.caFile } } });
    allDirs.push(dirs);
    const result = await runCommand(['--config', dirs.configFile, 'register', '--provisioning-key-file', dirs.provisioningKeyFile]);
    expect(result.code).toBe(0);
    const identity = await readIdentityFile(dirs.identityFile);
    expect(identity.caCertPem).toBe(pki.caCert);

    // Without ca_file the test CA is trusted only through the stored identity.
    const config = await readFile(dirs.configFile, 'utf8');
    expect(config).toContain(`ca_file = ${pki.caFile}\n`);
    await writeFile(dirs.configFile, config.replace(`ca_file = ${pki.caFile}\n`, ''), { mode: 0o600 });
    const agent = startAgent(dirs);
    agents.push(agent);
    await expectJobSucceeds(cloud, { uuid: identity.uuid, apiKey: identity.apiKey });
    expect(agent.output()).not.toMatch(/TLS /);
    expect((await stopAgent(agent)).code).toBe(0);
  });
});

describe('http:// to a non-loopback host', () => {
  const insecure: IniSections = { cloud: { api_url: 'http://192.0.2.1/api/v1' } };
  const device: TestDevice = { uuid: '0b9f3a52-61c4-4d33-9a55-5f0c8a1f2e77', apiKey: 'a'.repeat(64) };

  it('is refused by check-config (exit 78) with the reason and allow_insecure_http named', async () => {
    const dirs = await createAgentDirs(null, device, insecure);
    allDirs.push(dirs);
    const result = await runCommand(['--config', dirs.configFile, 'check-config']);
    expect(result.code).toBe(78);
    const text = result.stdout + result.stderr;
    expect(text).toContain('http://192.0.2.1/api/v1');
    expect(text).toContain('an https:// URL (http:// is allowed only to loopback hosts: 127.0.0.0/8, ::1, localhost)');
    expect(text).toContain('set allow_insecure_http = true in [cloud] if the network itself is trusted');
  });

  it('is refused by run (exit 78) before any request', async () => {
    const dirs = await createAgentDirs(null, device, insecure);
    allDirs.push(dirs);
    const agent = startAgent(dirs);
    agents.push(agent);
    const exit = await agent.exited;
    expect(exit).toEqual({ code: 78, signal: null });
    expect(agent.output()).toContain('set allow_insecure_http = true in [cloud] if the network itself is trusted');
  });

  it('is accepted by check-config when allow_insecure_http = true', async () => {
    const dirs = await createAgentDirs(null, device, { cloud: { ...insecure.cloud!, allow_insecure_http: 'true' } });
    allDirs.push(dirs);
    const result = await runCommand(['--config', dirs.configFile, 'check-config']);
    expect(result.stderr).not.toContain('allowed only to loopback');
    expect(result.code).toBe(0);
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
