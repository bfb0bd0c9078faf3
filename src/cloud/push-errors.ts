// Why a connection to the MQTT broker failed or ended, in words an operator
// can act on (journalctl -u cloudjobs), naming the [mqtt] key to fix.
import { describeError } from '../errors/errors.js';
import { BUILD_TIME_MS, describeCertificateTime, isCertificateTimeCode } from './certificate-time.js';
import { isDnsFailureCode, isTlsHandshakeCode, isUnknownCaCode, isUnreachableCode } from './error-codes.js';
import type { TlsRefusal } from './tls-options.js';

/**
 * refused: CONNACK said no (credentials, client id); tls: the broker's
 * certificate or key was refused, or the handshake failed; dns: the name does
 * not resolve; unreachable: nothing answers (refused, timeout, no route);
 * lost: an established connection ended; subscribe: the ACL refused our topics.
 */
export type PushFailureKind = 'refused' | 'tls' | 'dns' | 'unreachable' | 'lost' | 'subscribe' | 'other';

/** A classified failure. */
export interface PushFailure {
  kind: PushFailureKind;
  message: string;
  /** Needs a person (credentials, TLS, ACL): logged as an error, not a warning. */
  loud: boolean;
}

// MQTT 3.1.1 CONNACK return codes (section 3.2.2.3).
const CONNACK: Readonly<Record<number, string>> = {
  1: 'unacceptable protocol version',
  2: 'client identifier rejected; check [mqtt] client_id',
  3: 'server unavailable',
  4: 'bad user name or password; check [mqtt] username and password_file (the password is given once, at registration)',
  // mosquitto answers 5, not 4, to a wrong password
  5: 'not authorized; check [mqtt] username and password_file (the password is given once, at registration) and the broker ACL',
};

/** Classifies what ended a connection attempt. */
export function classifyPushFailure(
  error: unknown,
  context: {
    broker: string;
    refusal: TlsRefusal | null;
    wasConnected: boolean;
    /** The device's wall clock, for a certificate refused for its dates. @default Date.now() */
    now?: number;
    /** When this agent was built. @default BUILD_TIME_MS */
    builtAt?: number | null;
  },
): PushFailure {
  const { broker } = context;
  const code = (error as { code?: unknown } | null)?.code;
  const text = error ? describeError(error) : '';
  if (typeof code === 'number' && code > 0) {
    const why = CONNACK[code] ?? `reason code ${code}`;
    return { kind: 'refused', message: `the broker ${broker} refused the connection: ${why} (CONNACK ${code})`, loud: code !== 3 };
  }
  const name = typeof code === 'string' ? code : '';
  if (name === 'ERR_CLOUDJOBS_SUBSCRIBE') return { kind: 'subscribe', message: text, loud: true };
  if (name === 'ERR_CLOUDJOBS_PACKET_TOO_LARGE') return { kind: 'other', message: `${broker}: ${text}`, loud: true };
  if (name === 'ERR_CLOUDJOBS_PIN_MISMATCH' || context.refusal?.kind === 'pin') {
    const seen = context.refusal?.kind === 'pin' ? context.refusal.detail : 'another key';
    return {
      kind: 'tls',
      message: `TLS pin mismatch: the broker ${broker} presented public key ${seen}, which is not in mqtt.pin_sha256; refusing it even though a CA vouches for it`,
      loud: true,
    };
  }
  if (name === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return { kind: 'tls', message: `TLS host name mismatch: the broker's certificate is not valid for ${broker}; use a host name it names in mqtt.broker`, loud: true };
  }
  if (isCertificateTimeCode(name)) {
    const message = describeCertificateTime({
      code: name,
      subject: `the broker's certificate for ${broker}`,
      now: context.now ?? Date.now(),
      validity: context.refusal?.kind === 'time' ? context.refusal.validity ?? null : null,
      builtAt: context.builtAt === undefined ? BUILD_TIME_MS : context.builtAt,
    });
    return { kind: 'tls', message, loud: true };
  }
  if (isUnknownCaCode(name)) {
    return { kind: 'tls', message: `TLS unknown CA: the broker's certificate for ${broker} is not signed by a trusted CA (${name}); set mqtt.ca_file to the CA that signed it`, loud: true };
  }
  if (isTlsHandshakeCode(name)) {
    return { kind: 'tls', message: `TLS handshake with the broker ${broker} failed (${name}): ${firstLine(text)}`, loud: true };
  }
  if (isDnsFailureCode(name)) {
    return { kind: 'dns', message: `the broker's host name in ${broker} does not resolve (${name}); check mqtt.broker and DNS`, loud: false };
  }
  if (name === 'ECONNREFUSED' || isUnreachableCode(name)) {
    return { kind: 'unreachable', message: `the broker ${broker} is unreachable (${name})`, loud: false };
  }
  if (/connack timeout/i.test(text)) {
    return { kind: 'unreachable', message: `the broker ${broker} did not accept the connection in time (no CONNACK)`, loud: false };
  }
  if (context.wasConnected) {
    return { kind: 'lost', message: `the connection to the broker ${broker} was lost${text ? ` (${firstLine(text)})` : ''}`, loud: false };
  }
  return {
    kind: 'other',
    message: `the connection to the broker ${broker} failed${text ? `: ${firstLine(text)}` : ' before the broker answered'}`,
    loud: false,
  };
}

function firstLine(text: string): string {
  return (text.split('\n')[0] ?? '').slice(0, 300);
}
