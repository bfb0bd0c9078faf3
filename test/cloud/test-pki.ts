// A throw-away PKI made at test time with the openssl CLI: a test CA, server
// certificates for 127.0.0.1/localhost (two independent keys, to prove
// pinning), an expired one, one for the wrong host name, and a client
// certificate for mTLS. Nothing is checked in; everything lives in `dir`.
import { execFile } from 'node:child_process';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A certificate with its private key, both PEM, and the base64 SHA-256 of its SubjectPublicKeyInfo. */
export interface CertificatePair {
  cert: string;
  key: string;
  /** base64(sha256(SPKI DER)), the form of HPKP and curl --pinnedpubkey "sha256//...". */
  pin: string;
  certFile: string;
  keyFile: string;
}

/** Everything a TLS test needs. */
export interface TestPki {
  dir: string;
  caCert: string;
  caFile: string;
  caPin: string;
  /** For 127.0.0.1 and localhost, signed by the CA. */
  server: CertificatePair;
  /** Same names, same CA, another key: passes CA checks, fails a pin on `server`. */
  alternate: CertificatePair;
  /** For 127.0.0.1 and localhost, signed by the CA, expired yesterday. */
  expired: CertificatePair;
  /** Signed by the CA for wrong.example.invalid only. */
  wrongHost: CertificatePair;
  /** A client certificate (extendedKeyUsage clientAuth) signed by the CA, for mTLS. */
  client: CertificatePair;
  /** A CA nobody trusts and a server certificate from it for 127.0.0.1/localhost. */
  unknownCa: { caCert: string; caFile: string; server: CertificatePair };
}

/** Returns base64(sha256(SubjectPublicKeyInfo DER)) of a PEM certificate. */
export function computeSpkiPin(certPem: string): string {
  const spki = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function makeCa(dir: string, name: string, cn: string): Promise<{ cert: string; certFile: string; keyFile: string }> {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  await openssl(
    ['req', '-x509', ...EC, '-keyout', keyFile, '-out', certFile, '-days', '3650', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    dir,
  );
  return { cert: await readFile(certFile, 'utf8'), certFile, keyFile };
}

async function makeLeaf(
  dir: string,
  ca: { certFile: string; keyFile: string },
  name: string,
  cn: string,
  extensions: string,
  days: number,
): Promise<CertificatePair> {
  const keyFile = join(dir, `${name}.key`);
  const csrFile = join(dir, `${name}.csr`);
  const certFile = join(dir, `${name}.crt`);
  const extFile = join(dir, `${name}.ext`);
  await writeFile(extFile, extensions);
  await openssl(['req', '-new', ...EC, '-keyout', keyFile, '-out', csrFile, '-subj', `/CN=${cn}`], dir);
  await openssl(
    ['x509', '-req', '-in', csrFile, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
      '-days', String(days), '-extfile', extFile, '-out', certFile],
    dir,
  );
  const cert = await readFile(certFile, 'utf8');
  return { cert, key: await readFile(keyFile, 'utf8'), pin: computeSpkiPin(cert), certFile, keyFile };
}

const SERVER_EXT = 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n';

/** Makes a fresh test PKI in `dir` (default: a new temp directory). Takes well under a second. */
export async function createTestPki(dir?: string): Promise<TestPki> {
  const root = dir ?? (await mkdtemp(join(tmpdir(), 'cloudjobs-pki-')));
  const ca = await makeCa(root, 'ca', 'cloudjobs test CA');
  const other = await makeCa(root, 'unknown-ca', 'cloudjobs untrusted CA');
  const [server, alternate, expired, wrongHost, client, otherServer] = await Promise.all([
    makeLeaf(root, ca, 'server', 'localhost', SERVER_EXT, 825),
    makeLeaf(root, ca, 'alternate', 'localhost', SERVER_EXT, 825),
    // -days -1: notAfter is yesterday, so every verifier reports "certificate has expired".
    makeLeaf(root, ca, 'expired', 'localhost', SERVER_EXT, -1),
    makeLeaf(root, ca, 'wrong-host', 'wrong.example.invalid',
      'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:wrong.example.invalid\n', 825),
    makeLeaf(root, ca, 'client', 'cloudjobs-test-client',
      'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n', 825),
    makeLeaf(root, other, 'unknown-ca-server', 'localhost', SERVER_EXT, 825),
  ]);
  return {
    dir: root,
    caCert: ca.cert,
    caFile: ca.certFile,
    caPin: computeSpkiPin(ca.cert),
    server,
    alternate,
    expired,
    wrongHost,
    client,
    unknownCa: { caCert: other.cert, caFile: other.certFile, server: otherServer },
  };
}
