// The one HTTP(S) transport every cloud call goes through: keep-alive sockets,
// one deadline per request (headers and body alike), a streamed size cap,
// same-origin redirects only, and TLS with extra CAs, pinning and mTLS.
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import fetch, { type Response } from 'node-fetch';
import type { Clock } from '../clock/clock.js';
import { AbortedError } from '../errors/errors.js';
import { CloudError } from './cloud-error.js';
import { buildTlsAgentOptions, watchAgentCertificateTimes, type TlsRefusal, type TlsSettings } from './tls-options.js';
import { describeTransportFailure } from './transport-errors.js';

/** Default answer size limit: the server itself refuses bodies over 16 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 17 * 1024 * 1024;
/** Redirects followed before a request fails with "redirect loop". */
export const MAX_REDIRECTS = 3;

/** One request. The body, when given, is sent as JSON. */
export interface HttpRequest {
  method: 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';
  url: string;
  headers?: Readonly<Record<string, string>>;
  json?: unknown;
  signal?: AbortSignal;
  /** Overrides the transport's timeout for this request (e.g. a short supervisor probe). */
  timeoutMs?: number;
}

/** A complete answer, body fully read and decoded as UTF-8. */
export interface HttpResponse {
  status: number;
  /** The URL that answered (after redirects). */
  url: string;
  /** Lower-cased media type without parameters, '' when absent. */
  contentType: string;
  body: string;
  header(name: string): string | null;
}

/** What the cloud client, registration and the supervisor probe call. */
export interface HttpTransport {
  /** Sends a request; resolves with any HTTP status, throws CloudError when there is no usable answer. */
  request(request: HttpRequest): Promise<HttpResponse>;
  /** Closes idle keep-alive sockets. */
  close(): void;
}

/** Options of createHttpTransport. */
export interface HttpTransportOptions {
  /** cloud.request_timeout: covers connecting, waiting for headers and reading the body. */
  timeoutMs: number;
  clock: Clock;
  tls?: TlsSettings;
  maxBodyBytes?: number;
  /** Sockets per origin; the agent makes one request at a time, so a few suffice. */
  maxSockets?: number;
  userAgent?: string;
}

/** Creates the keep-alive transport. */
export function createHttpTransport(options: HttpTransportOptions): HttpTransport {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const refusals = new Map<string, TlsRefusal>();
  const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 2, maxFreeSockets: 1 };
  const httpAgent = new http.Agent(agentOptions);
  // Made with the first https request: its CA list (Node's roots and the system
  // bundle as strings) is not built for a cloud reached over http.
  let httpsAgent: https.Agent | null = null;
  const pickAgent = (url: URL): http.Agent => {
    if (url.protocol !== 'https:') return httpAgent;
    const onRefusal = (refusal: TlsRefusal): void => void refusals.set(refusal.host, refusal);
    httpsAgent ??= watchAgentCertificateTimes(
      new https.Agent({ ...agentOptions, ...buildTlsAgentOptions(options.tls ?? { extraCaPems: [], pinSha256: [] }, onRefusal) }),
      onRefusal,
    );
    return httpsAgent;
  };

  // The headers of requests without a body, per caller headers object (the client passes the same one every poll).
  const headersFor = new WeakMap<object, Record<string, string>>();
  const noHeaders = {};
  function headersOf(req: HttpRequest): Record<string, string> {
    if (req.json !== undefined) return buildHeaders(req, options.userAgent);
    const key = req.headers ?? noHeaders;
    let headers = headersFor.get(key);
    if (headers === undefined) {
      headers = buildHeaders(req, options.userAgent);
      headersFor.set(key, headers);
    }
    return headers;
  }

  // Idle polls make one request every few seconds for months: the happy path
  // allocates little (one AbortController for node-fetch, one plain timer for the
  // deadline; nothing is aborted, so no DOMException or AbortedError is built).
  async function request(req: HttpRequest): Promise<HttpResponse> {
    const outer = req.signal;
    if (outer?.aborted) throw new AbortedError();
    const timeoutMs = req.timeoutMs ?? options.timeoutMs;
    const controller = new AbortController();
    const state: RequestState = { timedOut: false, phase: 'answer' };
    const cancelDeadline = options.clock.timer(timeoutMs, () => {
      state.timedOut = true;
      controller.abort();
    });
    const onOuterAbort = (): void => controller.abort();
    outer?.addEventListener('abort', onOuterAbort, { once: true });
    let href = req.url;
    let url: URL | null = null;
    try {
      for (let redirects = 0; ; redirects += 1) {
        if (refusals.size > 0) refusals.delete((url ??= parseUrl(href)).hostname);
        let response: Response;
        try {
          response = await fetch(href, {
            method: req.method,
            headers: headersOf(req),
            body: req.json === undefined ? undefined : JSON.stringify(req.json),
            redirect: 'manual',
            agent: pickAgent,
            signal: controller.signal,
          });
        } catch (error) {
          throw classify(error, (url ??= parseUrl(href)), req, state, timeoutMs);
        }
        if (isRedirect(response.status)) {
          (response.body as Readable | null)?.destroy();
          url = followRedirect((url ??= parseUrl(href)), response, redirects, req.method);
          href = url.href;
          continue;
        }
        state.phase = 'body';
        let body: string;
        try {
          body = await readCapped(response, maxBodyBytes, href, controller);
        } catch (error) {
          throw classify(error, (url ??= parseUrl(href)), req, state, timeoutMs);
        }
        const headers = response.headers;
        const contentType = headers.get('content-type');
        return {
          status: response.status,
          url: response.url,
          contentType: contentType === null ? '' : contentType.split(';')[0]!.trim().toLowerCase(),
          body,
          header: (name) => headers.get(name),
        };
      }
    } finally {
      cancelDeadline();
      outer?.removeEventListener('abort', onOuterAbort);
    }
  }

  function classify(error: unknown, at: URL, req: HttpRequest, state: RequestState, timeoutMs: number): Error {
    if (error instanceof CloudError) return error;
    if (req.signal?.aborted) return new AbortedError();
    if (state.timedOut) {
      const what = state.phase === 'answer' ? 'no answer' : 'the answer did not finish';
      return new CloudError(
        'timeout',
        `timeout: ${what} from ${at.origin} within ${formatMs(timeoutMs)}${req.timeoutMs === undefined ? ' (cloud.request_timeout)' : ''}`,
        { cause: error },
      );
    }
    const refusal = refusals.get(at.hostname);
    return describeTransportFailure(error, refusal ? { url: at, refusal } : { url: at });
  }

  return {
    request,
    close() {
      httpAgent.destroy();
      httpsAgent?.destroy();
    },
  };
}

/** What one request's deadline saw: whether it fired, and while waiting for what. */
interface RequestState {
  timedOut: boolean;
  phase: 'answer' | 'body';
}

function parseUrl(href: string): URL {
  return new URL(href);
}

function buildHeaders(req: HttpRequest, userAgent: string | undefined): Record<string, string> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (userAgent) headers['user-agent'] = userAgent;
  if (req.json !== undefined) headers['content-type'] = 'application/json';
  return { ...headers, ...req.headers };
}

function isRedirect(status: number): boolean {
  return status === 301 || status === 302 || status === 303 || status === 307 || status === 308;
}

// Same origin only: the API key travels in a header and must not reach another host.
function followRedirect(from: URL, response: Response, redirects: number, method: string): URL {
  const location = response.headers.get('location');
  if (!location) {
    throw new CloudError('protocol', `the server answered ${response.status} without a Location header at ${from.href}`, {
      status: response.status,
    });
  }
  let to: URL;
  try {
    to = new URL(location, from);
  } catch {
    throw new CloudError('protocol', `the server answered ${response.status} with an invalid Location ${JSON.stringify(location)}`, {
      status: response.status,
    });
  }
  if (redirects >= MAX_REDIRECTS) {
    throw new CloudError(
      'protocol',
      `redirect loop: ${from.origin} redirected more than ${MAX_REDIRECTS} times (last to ${to.href}); set cloud.api_url to the final address`,
      { status: response.status },
    );
  }
  if (to.origin !== from.origin) {
    throw new CloudError(
      'protocol',
      `the server redirected ${from.href} to another origin (${to.origin}); not following it with the API key: set cloud.api_url to the address the server wants`,
      { status: response.status },
    );
  }
  if (method !== 'GET' && response.status !== 307 && response.status !== 308) {
    throw new CloudError(
      'protocol',
      `the server answered ${method} ${from.pathname} with ${response.status} to ${to.pathname}, which would drop the request body; set cloud.api_url to the final address`,
      { status: response.status },
    );
  }
  return to;
}

// Reads the body chunk by chunk and stops at the cap without buffering the rest.
// Plain stream events: one promise per answer (for-await makes one per chunk
// and wraps the stream in an async iterator).
function readCapped(response: Response, maxBytes: number, href: string, controller: AbortController): Promise<string> {
  const tooLarge = (): CloudError =>
    new CloudError(
      'protocol',
      `the server's answer from ${new URL(href).origin} is larger than the ${formatBytes(maxBytes)} limit; not reading it`,
      { status: response.status },
    );
  const declared = Number(response.headers.get('content-length') ?? 'NaN');
  if (Number.isFinite(declared) && declared > maxBytes) {
    controller.abort();
    return Promise.reject(tooLarge());
  }
  const body = response.body as Readable | null;
  if (!body) return Promise.resolve('');
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    // The listeners stay until the stream is dropped: an abort after the cap
    // still emits 'error', which must not go unheard.
    let settled = false;
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      reject(error);
    };
    body.on('data', (chunk: Buffer | string) => {
      if (settled) return;
      const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      total += buffer.length;
      if (total > maxBytes) {
        fail(tooLarge());
        controller.abort();
        return;
      }
      chunks.push(buffer);
    });
    body.on('end', () => {
      if (settled) return;
      settled = true;
      resolve(chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks, total).toString('utf8'));
    });
    body.on('error', fail);
    // destroyed without an error and without its end: the answer is incomplete
    body.on('close', () => fail(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })));
  });
}

/** Formats a duration for messages: 250ms, 30s, 5m. */
export function formatMs(ms: number): string {
  if (ms < 1000 || ms % 1000 !== 0) return `${ms}ms`;
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  return `${ms / 1000}s`;
}

function formatBytes(bytes: number): string {
  if (bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}
