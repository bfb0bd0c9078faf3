// TLS settings of the cloud transport: which CAs to trust, which server keys
// to accept (pinning) and which client certificate to present (mTLS).
import { X509Certificate, createHash } from 'node:crypto';
import { readFile as readFileAsync } from 'node:fs/promises';
import tls, { type PeerCertificate } from 'node:tls';
import https, { type AgentOptions } from 'node:https';
import { AgentError } from '../errors/errors.js';
import type { CertificateValidity } from './certificate-time.js';

/** What the https agent needs, already read from disk. */
export interface TlsSettings {
  /** Extra CA certificates (PEM) trusted on top of the default roots. */
  extraCaPems: readonly string[];
  /** base64 SHA-256 of accepted server SubjectPublicKeyInfos; empty: no pinning. */
  pinSha256: readonly string[];
  clientCertPem?: string;
  clientKeyPem?: string;
}

/** Why checkServerIdentity refused a server (or, kind time, its dates would be), kept so the error can say it in words. */
export interface TlsRefusal {
  kind: 'pin' | 'name' | 'time';
  host: string;
  /** pin: "sha256//<base64>" of the key seen; name: the certificate's subjectAltName; time: "<valid_from> .. <valid_to>". */
  detail: string;
  /** time: the certificate's validity (ms since the epoch). */
  validity?: CertificateValidity;
}

/** Where the TLS material comes from (config keys and the registration-stored CA). */
export interface TlsSources {
  /** cloud.ca_file */
  caFile: string;
  /** The CA stored by registration (api.tlsConfig.caCert), if any. */
  storedCaPem?: string | null;
  /** A system CA bundle added to Node's roots when it exists (Debian: /etc/ssl/certs/ca-certificates.crt). */
  systemBundleFile?: string;
  /** cloud.pin_sha256 */
  pinSha256: readonly string[];
  /** cloud.client_cert / cloud.client_key */
  clientCert: string;
  clientKey: string;
  /** The config section the keys are named after in messages. @default 'cloud' */
  section?: string;
}

/** The TLS material could not be read; names the key and the file. */
export class TlsConfigError extends AgentError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CLOUD_TLS', message, options);
  }
}

type ReadText = (file: string) => Promise<string>;

const defaultRead: ReadText = (file) => readFileAsync(file, 'utf8');

/** Reads ca_file, client_cert/client_key and the system bundle into TlsSettings. */
export async function loadTlsSettings(sources: TlsSources, readText: ReadText = defaultRead): Promise<TlsSettings> {
  const extraCaPems: string[] = [];
  const section = sources.section ?? 'cloud';
  if (sources.systemBundleFile) {
    try {
      extraCaPems.push(await readText(sources.systemBundleFile));
    } catch {
      // no system bundle on this machine: Node's own roots still apply
    }
  }
  if (sources.caFile) extraCaPems.push(await readPem(readText, sources.caFile, `${section}.ca_file`, 'CERTIFICATE'));
  if (sources.storedCaPem) extraCaPems.push(sources.storedCaPem);
  if (Boolean(sources.clientCert) !== Boolean(sources.clientKey)) {
    throw new TlsConfigError(`${section}.client_cert and ${section}.client_key must be set together (mutual TLS needs both)`);
  }
  for (const pin of sources.pinSha256) {
    if (!isPinShaped(pin)) {
      throw new TlsConfigError(
        `${section}.pin_sha256: expected base64 SHA-256 values (44 characters ending in "="), got ${JSON.stringify(pin)}`,
      );
    }
  }
  const settings: TlsSettings = { extraCaPems, pinSha256: sources.pinSha256.map(stripPinPrefix) };
  if (sources.clientCert) {
    settings.clientCertPem = await readPem(readText, sources.clientCert, `${section}.client_cert`, 'CERTIFICATE');
    settings.clientKeyPem = await readPem(readText, sources.clientKey, `${section}.client_key`, 'PRIVATE KEY');
  }
  return settings;
}

async function readPem(readText: ReadText, file: string, key: string, label: string): Promise<string> {
  let text: string;
  try {
    text = await readText(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new TlsConfigError(`${key}: cannot read ${file} (${code})`, { cause: error });
  }
  if (!text.includes('-----BEGIN ') || !text.includes(label)) {
    throw new TlsConfigError(`${key}: ${file} does not hold a PEM ${label.toLowerCase()}`);
  }
  return text;
}

function stripPinPrefix(pin: string): string {
  return pin.replace(/^sha256\/\//, '');
}

function isPinShaped(pin: string): boolean {
  return /^[A-Za-z0-9+/]{43}=$/.test(stripPinPrefix(pin));
}

/** Returns the base64 SHA-256 of a certificate's SubjectPublicKeyInfo (curl --pinnedpubkey form without "sha256//"). */
export function computeSpkiSha256(certDer: Buffer): string {
  const spki = new X509Certificate(certDer).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/**
 * Builds https.Agent options from the settings. `onRefusal` hears why a server
 * was refused after the chain checked out (name or pin), since the error that
 * reaches fetch keeps only a code.
 */
export function buildTlsAgentOptions(settings: TlsSettings, onRefusal: (refusal: TlsRefusal) => void): AgentOptions {
  const options: AgentOptions = {
    checkServerIdentity(host: string, cert: PeerCertificate): Error | undefined {
      const nameError = tls.checkServerIdentity(host, cert);
      if (nameError) {
        onRefusal({ kind: 'name', host, detail: cert.subjectaltname ?? `CN=${String(cert.subject?.CN ?? '?')}` });
        return nameError;
      }
      if (settings.pinSha256.length === 0) return undefined;
      const seen = computeSpkiSha256(cert.raw);
      if (settings.pinSha256.includes(seen)) return undefined;
      onRefusal({ kind: 'pin', host, detail: `sha256//${seen}` });
      return Object.assign(new Error(`public key sha256//${seen} of ${host} is not pinned`), {
        code: 'ERR_CLOUDJOBS_PIN_MISMATCH',
      });
    },
  };
  if (settings.extraCaPems.length > 0) options.ca = [...tls.rootCertificates, ...settings.extraCaPems];
  if (settings.clientCertPem) options.cert = settings.clientCertPem;
  if (settings.clientKeyPem) options.key = settings.clientKeyPem;
  return options;
}

/**
 * Watches one TLS client socket's handshake: when the server's certificate is
 * outside its validity period by this device's clock (`now`, the wall clock:
 * certificates are dated in wall time), `onRefusal` hears the certificate's
 * dates before Node refuses the chain (CERT_HAS_EXPIRED, CERT_NOT_YET_VALID)
 * and drops the certificate, so the error can show them.
 */
export function watchCertificateTime(
  socket: tls.TLSSocket,
  host: string,
  onRefusal: (refusal: TlsRefusal) => void,
  now: () => number = Date.now,
): void {
  // 'secure' is emitted when the handshake is done, before the client acts on its verification
  socket.prependOnceListener('secure', () => {
    const cert = socket.getPeerCertificate();
    const validFrom = Date.parse(cert?.valid_from ?? '');
    const validTo = Date.parse(cert?.valid_to ?? '');
    if (Number.isNaN(validFrom) || Number.isNaN(validTo)) return;
    const at = now();
    if (at >= validFrom && at <= validTo) return;
    onRefusal({ kind: 'time', host, detail: `${cert.valid_from} .. ${cert.valid_to}`, validity: { validFrom, validTo } });
  });
}

/** An https.Agent whose sockets are watched by watchCertificateTime. */
export function watchAgentCertificateTimes(agent: https.Agent, onRefusal: (refusal: TlsRefusal) => void): https.Agent {
  const create = agent.createConnection.bind(agent);
  agent.createConnection = (options, callback) => {
    const socket = create(options, callback);
    if (socket instanceof tls.TLSSocket) watchCertificateTime(socket, options.hostname ?? options.host ?? '', onRefusal);
    return socket;
  };
  return agent;
}
