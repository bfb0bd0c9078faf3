// The one error the cloud client throws for everything that is not a usable
// answer: what went wrong (kind), the HTTP status and server message when there
// was one, and how long the server asked us to wait.
import { AgentError, type ErrorCode } from '../errors/errors.js';

/**
 * network: no answer (refused, DNS, reset); timeout: no (complete) answer in time;
 * tls: certificate, CA, host name or pin problem; auth: 401/403; device-unknown:
 * 404 "Device not found"; route: the path does not exist (wrong generation or
 * api_url); rate-limited: 429; server: 5xx; protocol: an answer we cannot use.
 */
export type CloudErrorKind =
  | 'network'
  | 'timeout'
  | 'tls'
  | 'auth'
  | 'device-unknown'
  | 'route'
  | 'rate-limited'
  | 'server'
  | 'protocol';

/** Extra context carried by a CloudError. */
export interface CloudErrorDetails {
  status?: number;
  serverMessage?: string;
  retryAfterMs?: number;
  cause?: unknown;
}

const CODES: Record<CloudErrorKind, ErrorCode> = {
  network: 'CLOUD_NETWORK',
  timeout: 'CLOUD_NETWORK',
  tls: 'CLOUD_TLS',
  auth: 'CLOUD_AUTH',
  'device-unknown': 'CLOUD_AUTH',
  route: 'CLOUD_HTTP',
  'rate-limited': 'CLOUD_HTTP',
  server: 'CLOUD_HTTP',
  protocol: 'CLOUD_PROTOCOL',
};

/** A failed exchange with the cloud; never carries the API key. */
export class CloudError extends AgentError {
  readonly kind: CloudErrorKind;
  readonly status?: number;
  readonly serverMessage?: string;
  readonly retryAfterMs?: number;
  constructor(kind: CloudErrorKind, message: string, details: CloudErrorDetails = {}) {
    super(CODES[kind], message, details.cause === undefined ? undefined : { cause: details.cause });
    this.kind = kind;
    if (details.status !== undefined) this.status = details.status;
    if (details.serverMessage !== undefined) this.serverMessage = details.serverMessage;
    if (details.retryAfterMs !== undefined) this.retryAfterMs = details.retryAfterMs;
  }
}
