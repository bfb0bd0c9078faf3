// The one description of a certificate refused for its dates (CERT_HAS_EXPIRED,
// CERT_NOT_YET_VALID), for the cloud API and the MQTT broker alike. A Pi has no
// RTC: until NTP syncs, its clock may say the last shutdown (fake-hwclock) or
// 1970, and a valid certificate then looks "not yet valid". The message gives
// the device's time next to the certificate's validity and says which of the
// two is probably wrong.

/** A certificate's validity period, as the handshake saw it (ms since the epoch). */
export interface CertificateValidity {
  validFrom: number;
  validTo: number;
}

/** What is known when a certificate was refused for its dates. */
export interface CertificateTimeFailure {
  code: 'CERT_HAS_EXPIRED' | 'CERT_NOT_YET_VALID';
  /** Whose certificate, for the message: "the server's certificate for host:443". */
  subject: string;
  /** The device's wall clock when the failure is described. */
  now: number;
  /** The certificate's dates, when the handshake was observed (see watchCertificateTime). */
  validity: CertificateValidity | null;
  /** When this agent was built (its release date); a clock before it is certainly wrong. */
  builtAt: number | null;
}

declare const __CLOUDJOBS_BUILD_TIME__: number | undefined;

/** When this build was made (debian/changelog's date, src/build/bundle.mjs), or null when running from source. */
export const BUILD_TIME_MS: number | null = typeof __CLOUDJOBS_BUILD_TIME__ === 'number' ? __CLOUDJOBS_BUILD_TIME__ : null;

// Beyond this from the certificate's validity, an expiry is more likely the clock's fault.
const FAR_MS = 365 * 24 * 3600 * 1000;
const CLOCK_ADVICE = 'the clock is probably wrong (no RTC, NTP not synced yet): check `timedatectl`; the agent retries and connects once the clock is set';

/** Tells whether a TLS error code is a certificate refused for its dates. */
export function isCertificateTimeCode(code: unknown): code is CertificateTimeFailure['code'] {
  return code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID';
}

/** The message: what was refused, the device's time, the certificate's dates, and which is probably wrong. */
export function describeCertificateTime(failure: CertificateTimeFailure): string {
  const { code, subject, now, validity, builtAt } = failure;
  const head = code === 'CERT_NOT_YET_VALID' ? 'TLS certificate not yet valid' : 'TLS certificate expired';
  const dates = validity ? `; ${subject} is valid from ${iso(validity.validFrom)} to ${iso(validity.validTo)}` : '';
  const what = validity ? '' : `: ${subject} ${code === 'CERT_NOT_YET_VALID' ? 'starts in the future' : 'has expired'}`;
  return `${head}${what}: the device clock says ${iso(now)}${dates}; ${verdict(failure)}`;
}

function verdict({ code, now, validity, builtAt }: CertificateTimeFailure): string {
  if (builtAt !== null && now < builtAt) return `${CLOCK_ADVICE} (it is before this agent was built, ${iso(builtAt)})`;
  if (code === 'CERT_NOT_YET_VALID') return CLOCK_ADVICE;
  if (validity !== null && now - validity.validTo > FAR_MS) {
    return `${CLOCK_ADVICE}, or the certificate was not renewed for over a year`;
  }
  return 'the certificate must be renewed on the server, unless the device clock is wrong (check `timedatectl` and NTP)';
}

// An ISO time, or what the clock holds when it is not a date (NaN, out of range).
function iso(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? `an invalid time (${ms})` : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
