// A throw-away PKI made with openssl at test time: a trusted CA, an unknown CA,
// and server certificates that are good, for the wrong name, expired, or carry
// a different key; plus a client certificate for mTLS.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM material for one server identity. */
export interface ServerPem {
  cert: string;
  key: string;
}

/** Everything the TLS tests need. */
export interface TestPki {
  dir: string;
  caCert: string;
  caFile: string;
  otherCaCert: string;
  good: ServerPem;
  /** Same CA, but issued for other.invalid only. */
  wrongName: ServerPem;
  /** Same CA and names, validity ended in 2020. */
  expired: ServerPem;
  /** Same CA and names, valid only in January 2099: what a device whose clock is far behind sees. */
  future: ServerPem;
  /** Same CA and names, a different key pair (pin tests). */
  otherKey: ServerPem;
  /** Signed by the unknown CA. */
  unknownCa: ServerPem;
  client: ServerPem;
  remove(): void;
}

function run(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Builds the PKI in a fresh temp directory. */
export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'cloudjobs-pki-'));
  const read = (name: string): string => readFileSync(join(dir, name), 'utf8');
  const makeCa = (name: string): void =>
    run(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`,
      '-out', `${name}.crt`, '-days', '30', '-subj', `/CN=${name}`]);
  const makeLeaf = (name: string, ca: string, san: string, extra: string[] = []): ServerPem => {
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nbasicConstraints=CA:FALSE\n`);
    run(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`,
      '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    run(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial',
      '-out', `${name}.crt`, '-days', '30', '-extfile', `${name}.ext`, ...extra]);
    return { cert: read(`${name}.crt`), key: read(`${name}.key`) };
  };
  makeCa('ca');
  makeCa('other-ca');
  const good = makeLeaf('good', 'ca', 'DNS:localhost,IP:127.0.0.1');
  const wrongName = makeLeaf('wrong-name', 'ca', 'DNS:other.invalid');
  const otherKey = makeLeaf('other-key', 'ca', 'DNS:localhost,IP:127.0.0.1');
  const unknownCa = makeLeaf('unknown-ca', 'other-ca', 'DNS:localhost,IP:127.0.0.1');
  const client = makeLeaf('client', 'ca', 'DNS:device.invalid');
  // an expired leaf needs explicit dates, which only `openssl ca` takes on OpenSSL 3.0
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '1000\n');
  writeFileSync(
    join(dir, 'ca.cnf'),
    ['[ca]', 'default_ca=test', '[test]', `dir=${dir}`, 'database=$dir/index.txt', 'serial=$dir/serial',
      'new_certs_dir=$dir', 'default_md=sha256', 'policy=any', 'copy_extensions=none', '[any]', 'commonName=supplied',
      '[ext]', 'subjectAltName=DNS:localhost,IP:127.0.0.1', 'basicConstraints=CA:FALSE', ''].join('\n'),
  );
  run(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'expired.key',
    '-out', 'expired.csr', '-subj', '/CN=expired']);
  run(dir, ['ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.crt', '-keyfile', 'ca.key', '-in', 'expired.csr',
    '-out', 'expired.crt', '-startdate', '20200101000000Z', '-enddate', '20200201000000Z', '-extensions', 'ext', '-notext']);
  run(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'future.key',
    '-out', 'future.csr', '-subj', '/CN=future']);
  run(dir, ['ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.crt', '-keyfile', 'ca.key', '-in', 'future.csr',
    '-out', 'future.crt', '-startdate', '20990101000000Z', '-enddate', '20990201000000Z', '-extensions', 'ext', '-notext']);
  return {
    dir,
    caCert: read('ca.crt'),
    caFile: join(dir, 'ca.crt'),
    otherCaCert: read('other-ca.crt'),
    good,
    wrongName,
    expired: { cert: read('expired.crt'), key: read('expired.key') },
    future: { cert: read('future.crt'), key: read('future.key') },
    otherKey,
    unknownCa,
    client,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
