// The Node error codes that the cloud API's and the MQTT broker's failure
// messages sort on, in one place, so the two cannot drift apart: a code the
// API calls "TLS unknown CA" is the same for the broker.

// The chain does not lead to a CA this device trusts (a private CA, a self-signed server).
const UNKNOWN_CA = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);

const DNS_FAILURE = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL']);

// Nothing answers at that address (ECONNREFUSED, which does answer, is not among them).
const UNREACHABLE = new Set(['EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'ETIMEDOUT']);

/** Tells whether a code says the peer's certificate is not signed by a trusted CA. */
export function isUnknownCaCode(code: string | undefined): boolean {
  return code !== undefined && UNKNOWN_CA.has(code);
}

/** Tells whether a code is a failed TLS handshake of any other kind (OpenSSL's and Node's TLS errors, EPROTO). */
export function isTlsHandshakeCode(code: string | undefined): boolean {
  return code !== undefined && (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || code === 'EPROTO');
}

/** Tells whether a code says a host name did not resolve. */
export function isDnsFailureCode(code: string | undefined): boolean {
  return code !== undefined && DNS_FAILURE.has(code);
}

/** Tells whether a code says nothing could be reached at the address (no route, network down, connect timeout). */
export function isUnreachableCode(code: string | undefined): boolean {
  return code !== undefined && UNREACHABLE.has(code);
}
