// The cloud API and the MQTT broker sort a failure by the same codes
// (src/cloud/error-codes.ts): each code lands in the same kind of message for both.
import { describe, expect, it } from 'vitest';
import { classifyPushFailure } from '../../../src/cloud/push-errors.js';
import { describeTransportFailure } from '../../../src/cloud/transport-errors.js';

const failing = (code: string): Error => Object.assign(new Error(`failed (${code})`), { code });
const api = (code: string): string => describeTransportFailure(failing(code), { url: new URL('https://cloud.example/api/v1') }).message;
const broker = (code: string): string =>
  classifyPushFailure(failing(code), { broker: 'mqtts://cloud.example:8883', refusal: null, wasConnected: true }).message;

const UNKNOWN_CA = [
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
];

describe('failure codes shared by the API and the broker', () => {
  it.each(UNKNOWN_CA)('%s is an unknown CA for both', (code) => {
    expect(api(code)).toBe("TLS unknown CA: the server's certificate for cloud.example is not signed by a trusted CA; set cloud.ca_file to the CA that signed it");
    expect(broker(code)).toBe(
      `TLS unknown CA: the broker's certificate for mqtts://cloud.example:8883 is not signed by a trusted CA (${code}); set mqtt.ca_file to the CA that signed it`,
    );
  });

  it.each(['ERR_SSL_DECRYPTION_FAILED_OR_BAD_RECORD_MAC', 'ERR_TLS_HANDSHAKE_TIMEOUT', 'EPROTO'])('%s is a failed handshake for both', (code) => {
    expect(api(code)).toBe(`TLS handshake with cloud.example failed (${code}): failed (${code})`);
    expect(broker(code)).toBe(`TLS handshake with the broker mqtts://cloud.example:8883 failed (${code}): failed (${code})`);
  });

  it.each(['ENOTFOUND', 'EAI_AGAIN', 'EAI_NONAME', 'EAI_FAIL'])('%s is a DNS failure for both', (code) => {
    expect(api(code)).toBe(`DNS failure: cannot resolve cloud.example (${code}); check cloud.api_url and this device's network and DNS settings`);
    expect(broker(code)).toBe(`the broker's host name in mqtts://cloud.example:8883 does not resolve (${code}); check mqtt.broker and DNS`);
  });

  it.each(['EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'ETIMEDOUT'])('%s is an unreachable host for both', (code) => {
    expect(api(code)).toBe(`cannot reach cloud.example (${code}); check this device's network connection`);
    expect(broker(code)).toBe(`the broker mqtts://cloud.example:8883 is unreachable (${code})`);
  });

  it('ECONNREFUSED: the API names the port to check; the broker is unreachable', () => {
    expect(api('ECONNREFUSED')).toBe('connection refused by cloud.example: is the cloud API running there, and is the port in cloud.api_url right?');
    expect(broker('ECONNREFUSED')).toBe('the broker mqtts://cloud.example:8883 is unreachable (ECONNREFUSED)');
  });

  it('a code in none of the sets is a plain failure for both', () => {
    expect(api('EWHATEVER')).toBe('request to https://cloud.example failed (EWHATEVER): failed (EWHATEVER)');
    expect(broker('EWHATEVER')).toBe('the connection to the broker mqtts://cloud.example:8883 was lost (failed (EWHATEVER))');
  });
});
