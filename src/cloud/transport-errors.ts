// Turns what Node and node-fetch throw (a code and a terse message) into a
// CloudError whose message tells a user reading the journal what to fix.
import { BUILD_TIME_MS, describeCertificateTime, isCertificateTimeCode } from './certificate-time.js';
import { CloudError } from './cloud-error.js';
import { isDnsFailureCode, isTlsHandshakeCode, isUnknownCaCode, isUnreachableCode } from './error-codes.js';
import type { TlsRefusal } from './tls-options.js';

const CLIENT_CERT_REFUSED = new Set([
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED',
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
]);

const CLOSED = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'UND_ERR_SOCKET']);

/** Where the failed request went and what the TLS check saw, for the message. */
export interface FailureContext {
  url: URL;
  refusal?: TlsRefusal;
  /** The device's wall clock, for a certificate refused for its dates. @default Date.now() */
  now?: number;
  /** When this agent was built. @default BUILD_TIME_MS */
  builtAt?: number | null;
}

/** Maps a low-level request failure to a CloudError with actionable words (never the API key). */
export function describeTransportFailure(error: unknown, context: FailureContext): CloudError {
  const code = errorCode(error);
  const message = error instanceof Error ? error.message : String(error);
  const where = context.url.host;
  const origin = context.url.origin;
  const fail = (kind: 'network' | 'tls', text: string): CloudError => new CloudError(kind, text, { cause: error });

  if (code === 'ERR_CLOUDJOBS_PIN_MISMATCH' || context.refusal?.kind === 'pin') {
    const seen = context.refusal?.detail ?? 'of the server';
    return fail('tls', `TLS pin mismatch: ${where} presented public key ${seen}, which is not in cloud.pin_sha256; refusing it even though a CA vouches for it (update cloud.pin_sha256 only if the server's key really changed)`);
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = context.refusal?.kind === 'name' ? ` (it names ${context.refusal.detail})` : '';
    return fail('tls', `TLS host name mismatch: the server's certificate is not valid for ${context.url.hostname}${names}; use a host name the certificate names in cloud.api_url`);
  }
  if (isCertificateTimeCode(code)) {
    return fail('tls', describeCertificateTime({
      code,
      subject: `the server's certificate for ${where}`,
      now: context.now ?? Date.now(),
      validity: context.refusal?.kind === 'time' ? context.refusal.validity ?? null : null,
      builtAt: context.builtAt === undefined ? BUILD_TIME_MS : context.builtAt,
    }));
  }
  if (isUnknownCaCode(code)) {
    return fail('tls', `TLS unknown CA: the server's certificate for ${where} is not signed by a trusted CA; set cloud.ca_file to the CA that signed it`);
  }
  if (code !== undefined && CLIENT_CERT_REFUSED.has(code)) {
    return fail('tls', `TLS client certificate refused: ${where} requires a client certificate and did not accept this device's (${code}); check cloud.client_cert and cloud.client_key`);
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number/i.test(message)) {
    return fail('tls', `TLS handshake failed: ${where} does not speak TLS on this port; check the scheme and port of cloud.api_url`);
  }
  if (isTlsHandshakeCode(code)) {
    return fail('tls', `TLS handshake with ${where} failed (${code}): ${firstLine(message)}`);
  }
  if (code === 'ECONNREFUSED') {
    return fail('network', `connection refused by ${where}: is the cloud API running there, and is the port in cloud.api_url right?`);
  }
  if (isDnsFailureCode(code)) {
    return fail('network', `DNS failure: cannot resolve ${context.url.hostname} (${code}); check cloud.api_url and this device's network and DNS settings`);
  }
  if (isUnreachableCode(code)) {
    return fail('network', `cannot reach ${where} (${code}); check this device's network connection`);
  }
  if (code !== undefined && CLOSED.has(code)) {
    return fail('network', `the connection to ${origin} closed before the answer was complete (${code})`);
  }
  return fail('network', `request to ${origin} failed${code ? ` (${code})` : ''}: ${firstLine(stripUrl(message))}`);
}

function errorCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? text;
}

// node-fetch prefixes "request to <url> failed, reason: "; keep only the reason.
function stripUrl(text: string): string {
  return text.replace(/^request to \S+ failed, reason: /, '');
}
