import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSystemClock } from '../../../src/clock/clock.js';
import { CloudError } from '../../../src/cloud/cloud-error.js';
import { createHttpTransport, type HttpTransport } from '../../../src/cloud/http.js';
import { TlsConfigError, computeSpkiSha256, loadTlsSettings, type TlsSources } from '../../../src/cloud/tls-options.js';
import { createTestPki, type ServerPem, type TestPki } from './test-pki.js';
import { sendJson, startTestServer, type TestServer, expectCloudError } from './test-server.js';

let pki: TestPki;
const servers: TestServer[] = [];
const transports: HttpTransport[] = [];

beforeAll(() => {
  pki = createTestPki();
});
afterAll(() => pki.remove());
afterEach(async () => {
  for (const t of transports.splice(0)) t.close();
  for (const s of servers.splice(0)) await s.close();
});

async function serveTls(pem: ServerPem, extra: Record<string, unknown> = {}): Promise<TestServer> {
  const server = await startTestServer((_req, res) => sendJson(res, 200, { ok: true }), { cert: pem.cert, key: pem.key, ...extra });
  servers.push(server);
  return server;
}

async function client(sources: Partial<TlsSources> = {}): Promise<HttpTransport> {
  const tls = await loadTlsSettings({ caFile: '', pinSha256: [], clientCert: '', clientKey: '', ...sources });
  const t = createHttpTransport({ timeoutMs: 5000, clock: createSystemClock(), tls });
  transports.push(t);
  return t;
}

const failure = expectCloudError;

// computed by openssl, independently of the code under test
function opensslPin(certPem: string): string {
  const file = join(pki.dir, `pin-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(file, certPem);
  const der = execFileSync('sh', ['-c', `openssl x509 -in "${file}" -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`]);
  return der.toString().trim();
}

describe('TLS', () => {
  it('accepts a server whose CA is in cloud.ca_file, by IP and by name', async () => {
    const server = await serveTls(pki.good);
    const t = await client({ caFile: pki.caFile });
    expect((await t.request({ method: 'GET', url: `${server.url}/x` })).status).toBe(200);
    expect((await t.request({ method: 'GET', url: `https://localhost:${server.port}/x` })).status).toBe(200);
  });

  it('accepts the CA stored by registration', async () => {
    const server = await serveTls(pki.good);
    const t = await client({ storedCaPem: pki.caCert });
    expect((await t.request({ method: 'GET', url: `${server.url}/x` })).status).toBe(200);
  });

  it('explains an unknown CA', async () => {
    const server = await serveTls(pki.good);
    const error = await failure((await client()).request({ method: 'GET', url: `${server.url}/x` }));
    expect(error.kind).toBe('tls');
    expect(error.message).toBe(
      `TLS unknown CA: the server's certificate for 127.0.0.1:${server.port} is not signed by a trusted CA; set cloud.ca_file to the CA that signed it`,
    );
  });

  it('explains a certificate from another CA even with cloud.ca_file set', async () => {
    const server = await serveTls(pki.unknownCa);
    const error = await failure((await client({ caFile: pki.caFile })).request({ method: 'GET', url: `${server.url}/x` }));
    expect(error.kind).toBe('tls');
    expect(error.message).toMatch(/^TLS unknown CA: /);
  });

  it('explains a host name mismatch and names what the certificate is for', async () => {
    const server = await serveTls(pki.wrongName);
    const error = await failure(
      (await client({ caFile: pki.caFile })).request({ method: 'GET', url: `https://localhost:${server.port}/x` }),
    );
    expect(error.kind).toBe('tls');
    expect(error.message).toBe(
      "TLS host name mismatch: the server's certificate is not valid for localhost (it names DNS:other.invalid); use a host name the certificate names in cloud.api_url",
    );
  });

  it('explains an expired certificate with the device clock and the certificate\'s dates', async () => {
    const server = await serveTls(pki.expired);
    const error = await failure((await client({ caFile: pki.caFile })).request({ method: 'GET', url: `${server.url}/x` }));
    expect(error.kind).toBe('tls');
    expect(error.message).toMatch(
      new RegExp(
        `^TLS certificate expired: the device clock says \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ; ` +
          `the server's certificate for 127\\.0\\.0\\.1:${server.port} is valid from 2020-01-01T00:00:00Z to 2020-02-01T00:00:00Z; ` +
          'the clock is probably wrong \\(no RTC, NTP not synced yet\\): .*, or the certificate was not renewed for over a year$',
      ),
    );
  });

  it('a certificate not valid yet by the device clock: says the clock is probably wrong, with both times', async () => {
    const server = await serveTls(pki.future);
    const error = await failure((await client({ caFile: pki.caFile })).request({ method: 'GET', url: `${server.url}/x` }));
    expect(error.kind).toBe('tls');
    expect(error.message).toMatch(
      new RegExp(
        `^TLS certificate not yet valid: the device clock says \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ; ` +
          `the server's certificate for 127\\.0\\.0\\.1:${server.port} is valid from 2099-01-01T00:00:00Z to 2099-02-01T00:00:00Z; ` +
          'the clock is probably wrong \\(no RTC, NTP not synced yet\\): check `timedatectl`; the agent retries and connects once the clock is set$',
      ),
    );
  });

  it('accepts a pinned key and refuses another key even though the CA vouches for it', async () => {
    const goodPin = opensslPin(pki.good.cert);
    expect(computeSpkiSha256(Buffer.from(pki.good.cert.split('\n').filter((l) => !l.startsWith('-----')).join(''), 'base64'))).toBe(goodPin);
    const good = await serveTls(pki.good);
    const t = await client({ caFile: pki.caFile, pinSha256: [goodPin] });
    expect((await t.request({ method: 'GET', url: `${good.url}/x` })).status).toBe(200);

    const impostor = await serveTls(pki.otherKey);
    const error = await failure(t.request({ method: 'GET', url: `${impostor.url}/x` }));
    expect(error.kind).toBe('tls');
    expect(error.message).toBe(
      `TLS pin mismatch: 127.0.0.1:${impostor.port} presented public key sha256//${opensslPin(pki.otherKey.cert)}, which is not in cloud.pin_sha256; refusing it even though a CA vouches for it (update cloud.pin_sha256 only if the server's key really changed)`,
    );
    expect(impostor.seen).toHaveLength(0);
  });

  it('accepts pins written with the curl prefix sha256//', async () => {
    const server = await serveTls(pki.good);
    const t = await client({ caFile: pki.caFile, pinSha256: [`sha256//${opensslPin(pki.good.cert)}`] });
    expect((await t.request({ method: 'GET', url: `${server.url}/x` })).status).toBe(200);
  });

  it('presents the client certificate for mutual TLS, and explains a refusal without one', async () => {
    const server = await serveTls(pki.good, { requestCert: true, rejectUnauthorized: true, ca: pki.caCert });
    const certFile = join(pki.dir, 'client.crt');
    const keyFile = join(pki.dir, 'client.key');
    const withCert = await client({ caFile: pki.caFile, clientCert: certFile, clientKey: keyFile });
    expect((await withCert.request({ method: 'GET', url: `${server.url}/x` })).status).toBe(200);
    const error = await failure((await client({ caFile: pki.caFile })).request({ method: 'GET', url: `${server.url}/x` }));
    expect(error.kind).toBe('tls');
    expect(error.message).toBe(
      `TLS client certificate refused: 127.0.0.1:${server.port} requires a client certificate and did not accept this device's (ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED); check cloud.client_cert and cloud.client_key`,
    );
    expect(server.seen).toHaveLength(1);
  });

  it('explains https:// to a port that speaks plain HTTP', async () => {
    const plain = await startTestServer((_req, res) => sendJson(res, 200, {}));
    servers.push(plain);
    const error = await failure((await client()).request({ method: 'GET', url: `https://127.0.0.1:${plain.port}/x` }));
    expect(error.kind).toBe('tls');
    expect(error.message).toBe(
      `TLS handshake failed: 127.0.0.1:${plain.port} does not speak TLS on this port; check the scheme and port of cloud.api_url`,
    );
  });

  it('names the key and file when TLS material cannot be read or is malformed', async () => {
    await expect(loadTlsSettings({ caFile: '/nonexistent/ca.pem', pinSha256: [], clientCert: '', clientKey: '' })).rejects.toThrow(
      new TlsConfigError('cloud.ca_file: cannot read /nonexistent/ca.pem (ENOENT)'),
    );
    await expect(loadTlsSettings({ caFile: '', pinSha256: ['abc'], clientCert: '', clientKey: '' })).rejects.toThrow(
      'cloud.pin_sha256: expected base64 SHA-256 values (44 characters ending in "="), got "abc"',
    );
    await expect(loadTlsSettings({ caFile: '', pinSha256: [], clientCert: '/a.pem', clientKey: '' })).rejects.toThrow(
      'cloud.client_cert and cloud.client_key must be set together (mutual TLS needs both)',
    );
    const notPem = join(pki.dir, 'not.pem');
    writeFileSync(notPem, 'hello');
    await expect(loadTlsSettings({ caFile: notPem, pinSha256: [], clientCert: '', clientKey: '' })).rejects.toThrow(
      `cloud.ca_file: ${notPem} does not hold a PEM certificate`,
    );
  });
});
