import { describe, expect, it } from 'vitest';
import { describeCertificateTime, isCertificateTimeCode } from '../../../src/cloud/certificate-time.js';
import { classifyPushFailure } from '../../../src/cloud/push-errors.js';
import { describeTransportFailure } from '../../../src/cloud/transport-errors.js';

const at = (iso: string) => Date.parse(iso);
const VALIDITY = { validFrom: at('2026-01-01T00:00:00Z'), validTo: at('2027-01-01T00:00:00Z') };
const BUILT = at('2026-12-01T23:00:00Z');
const SUBJECT = "the server's certificate for cloud.example:443";
const CLOCK = 'the clock is probably wrong (no RTC, NTP not synced yet): check `timedatectl`; the agent retries and connects once the clock is set';

describe('describeCertificateTime', () => {
  it('not yet valid on a Pi that booted without RTC (1970): the clock, the dates, and the clock to blame', () => {
    expect(describeCertificateTime({ code: 'CERT_NOT_YET_VALID', subject: SUBJECT, now: 0, validity: VALIDITY, builtAt: BUILT })).toBe(
      'TLS certificate not yet valid: the device clock says 1970-01-01T00:00:00Z; ' +
        `${SUBJECT} is valid from 2026-01-01T00:00:00Z to 2027-01-01T00:00:00Z; ${CLOCK} (it is before this agent was built, 2026-12-01T23:00:00Z)`,
    );
  });

  it('not yet valid with a clock after the build: still the clock, without the build date', () => {
    const now = at('2026-12-02T00:00:00Z');
    const validity = { validFrom: at('2026-12-03T00:00:00Z'), validTo: at('2027-12-03T00:00:00Z') };
    expect(describeCertificateTime({ code: 'CERT_NOT_YET_VALID', subject: SUBJECT, now, validity, builtAt: BUILT })).toBe(
      `TLS certificate not yet valid: the device clock says 2026-12-02T00:00:00Z; ${SUBJECT} is valid from 2026-12-03T00:00:00Z to 2027-12-03T00:00:00Z; ${CLOCK}`,
    );
  });

  it('expired: the certificate to renew, unless the clock is before the build or far past the validity', () => {
    const soon = describeCertificateTime({ code: 'CERT_HAS_EXPIRED', subject: SUBJECT, now: at('2027-01-05T00:00:00Z'), validity: VALIDITY, builtAt: BUILT });
    expect(soon).toBe(
      `TLS certificate expired: the device clock says 2027-01-05T00:00:00Z; ${SUBJECT} is valid from 2026-01-01T00:00:00Z to 2027-01-01T00:00:00Z; ` +
        'the certificate must be renewed on the server, unless the device clock is wrong (check `timedatectl` and NTP)',
    );
    const far = describeCertificateTime({ code: 'CERT_HAS_EXPIRED', subject: SUBJECT, now: at('2030-01-01T00:00:00Z'), validity: VALIDITY, builtAt: BUILT });
    expect(far).toMatch(new RegExp(`; ${CLOCK.replace(/[()`]/g, '\\$&')}, or the certificate was not renewed for over a year$`));
    const behindBuild = describeCertificateTime({ code: 'CERT_HAS_EXPIRED', subject: SUBJECT, now: at('2026-06-01T00:00:00Z'), validity: { validFrom: 0, validTo: at('2026-05-01T00:00:00Z') }, builtAt: BUILT });
    expect(behindBuild).toContain('(it is before this agent was built, 2026-12-01T23:00:00Z)');
  });

  it('without the certificate\'s dates (the handshake was not seen): says what is known', () => {
    expect(describeCertificateTime({ code: 'CERT_NOT_YET_VALID', subject: SUBJECT, now: 0, validity: null, builtAt: null })).toBe(
      `TLS certificate not yet valid: ${SUBJECT} starts in the future: the device clock says 1970-01-01T00:00:00Z; ${CLOCK}`,
    );
    expect(describeCertificateTime({ code: 'CERT_HAS_EXPIRED', subject: SUBJECT, now: at('2027-01-05T00:00:00Z'), validity: null, builtAt: null })).toBe(
      `TLS certificate expired: ${SUBJECT} has expired: the device clock says 2027-01-05T00:00:00Z; ` +
        'the certificate must be renewed on the server, unless the device clock is wrong (check `timedatectl` and NTP)',
    );
  });

  it('knows its two codes only', () => {
    expect(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID', undefined].map(isCertificateTimeCode)).toEqual([true, true, false, false]);
  });
});

// The HTTP and MQTT sides say it with the one description, naming their peer.
describe('one wording for the cloud API and the broker', () => {
  const error = Object.assign(new Error('certificate is not yet valid'), { code: 'CERT_NOT_YET_VALID' });
  const refusal = { kind: 'time' as const, host: 'cloud.example', detail: '', validity: VALIDITY };

  it('HTTP', () => {
    const failure = describeTransportFailure(error, { url: new URL('https://cloud.example/api/v1'), refusal, now: 0, builtAt: BUILT });
    expect(failure.kind).toBe('tls');
    expect(failure.message).toBe(describeCertificateTime({ code: 'CERT_NOT_YET_VALID', subject: "the server's certificate for cloud.example", now: 0, validity: VALIDITY, builtAt: BUILT }));
  });

  it('MQTT', () => {
    const failure = classifyPushFailure(error, { broker: 'mqtts://cloud.example:8883', refusal, wasConnected: false, now: 0, builtAt: BUILT });
    expect(failure).toEqual({
      kind: 'tls',
      loud: true,
      message: describeCertificateTime({ code: 'CERT_NOT_YET_VALID', subject: "the broker's certificate for mqtts://cloud.example:8883", now: 0, validity: VALIDITY, builtAt: BUILT }),
    });
  });
});
