import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { connect } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startReferenceCloud, type ReferenceCloud } from '../../cloud/reference-cloud.js';
import { computeSpkiPin, createTestPki, type TestPki } from '../../cloud/test-pki.js';
import { send } from './http-client.js';

const UUID = 'aaaabbbb-0000-4000-8000-000000000001';
const KEY = 't'.repeat(64);
const auth = { 'X-Device-API-Key': KEY };

let pki: TestPki;
let cloud: ReferenceCloud | null = null;

beforeAll(async () => {
  pki = await createTestPki();
});
afterAll(async () => {
  await rm(pki.dir, { recursive: true, force: true });
});
afterEach(async () => {
  await cloud?.close();
  cloud = null;
});

async function startTls(requestClientCert = false): Promise<ReferenceCloud> {
  cloud = await startReferenceCloud({
    devices: [{ uuid: UUID, apiKey: KEY }],
    tls: { cert: pki.server.cert, key: pki.server.key, ...(requestClientCert ? { ca: pki.caCert, requestCert: true } : {}) },
  });
  return cloud;
}

async function failure(promise: Promise<unknown>): Promise<string> {
  return promise.then(
    () => 'succeeded',
    (e: unknown) => (e as { code?: string }).code ?? String(e),
  );
}

// The SPKI pin of whatever certificate the server presents right now.
function peerPin(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      if (!cert) return reject(new Error('no peer certificate'));
      resolve(createHash('sha256').update(cert.publicKey.export({ type: 'spki', format: 'der' })).digest('base64'));
    });
    socket.on('error', reject);
  });
}

describe('test PKI', () => {
  it('computes the same SPKI pin as the openssl pipeline curl documents', () => {
    const pubkey = execFileSync('openssl', ['x509', '-pubkey', '-noout', '-in', pki.server.certFile]);
    const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: pubkey });
    const expected = execFileSync('openssl', ['dgst', '-sha256', '-binary'], { input: der }).toString('base64');
    expect(pki.server.pin).toBe(expected);
    expect(computeSpkiPin(pki.server.cert)).toBe(expected);
    expect(pki.alternate.pin).not.toBe(pki.server.pin);
  });
});

describe('reference cloud over HTTPS', () => {
  it('serves the device API to a client that trusts the test CA', async () => {
    const c = await startTls();
    expect(c.url.startsWith('https://127.0.0.1:')).toBe(true);
    const res = await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth, ca: pki.caCert });
    expect(res.status).toBe(200);
    expect(res.json()).toEqual({ message: 'No pending jobs' });
    const byName = await send(`https://localhost:${c.port}/api/v1/devices/${UUID}/jobs/next`, { headers: auth, ca: pki.caCert });
    expect(byName.status).toBe(200);
  });

  it('fails each broken certificate with its own error', async () => {
    const c = await startTls();
    const url = `${c.url}/devices/${UUID}/jobs/next`;
    expect(await failure(send(url, { headers: auth }))).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    c.setCertificate(pki.unknownCa.server.cert, pki.unknownCa.server.key);
    expect(await failure(send(url, { headers: auth, ca: pki.caCert }))).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    c.setCertificate(pki.expired.cert, pki.expired.key);
    expect(await failure(send(url, { headers: auth, ca: pki.caCert }))).toBe('CERT_HAS_EXPIRED');
    c.setCertificate(pki.wrongHost.cert, pki.wrongHost.key);
    expect(await failure(send(url, { headers: auth, ca: pki.caCert }))).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    c.setCertificate(pki.server.cert, pki.server.key);
    expect((await send(url, { headers: auth, ca: pki.caCert })).status).toBe(200);
  });

  it('can present another key from the same CA, which only a pin tells apart', async () => {
    const c = await startTls();
    expect(await peerPin(c.port, pki.caCert)).toBe(pki.server.pin);
    c.setCertificate(pki.alternate.cert, pki.alternate.key);
    expect(await peerPin(c.port, pki.caCert)).toBe(pki.alternate.pin);
    // The CA still vouches for it.
    expect((await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth, ca: pki.caCert })).status).toBe(200);
  });

  it('requires a client certificate from the CA when mTLS is on', async () => {
    const c = await startTls(true);
    const url = `${c.url}/devices/${UUID}/jobs/next`;
    const without = await failure(send(url, { headers: auth, ca: pki.caCert }));
    // TLS 1.3 sends the alert after the handshake, so the client may see a reset first.
    expect(['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'ECONNRESET']).toContain(without);
    const withCert = await send(url, { headers: auth, ca: pki.caCert, cert: pki.client.cert, key: pki.client.key });
    expect(withCert.status).toBe(200);
  });

  it('goes down and comes back up over HTTPS on the same port', async () => {
    const c = await startTls();
    await c.down();
    expect(await failure(send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth, ca: pki.caCert }))).toBe('ECONNREFUSED');
    await c.up();
    expect((await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth, ca: pki.caCert })).status).toBe(200);
  });
});
