// A tiny HTTP(S) client for the reference cloud tests: one request, no
// keep-alive, raw status/headers/body, TLS options passed straight through.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** What a test request may set. */
export interface TestRequest {
  method?: string;
  headers?: Record<string, string>;
  /** An object is sent as JSON with Content-Type application/json. */
  json?: unknown;
  body?: string;
  ca?: string;
  cert?: string;
  key?: string;
  signal?: AbortSignal;
}

/** The answer as received. */
export interface TestResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  bytes: number;
  json(): unknown;
}

/** Sends one request and collects the whole answer. */
export function send(url: string, options: TestRequest = {}): Promise<TestResponse> {
  const target = new URL(url);
  const headers: Record<string, string> = { ...options.headers };
  let body = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    headers['Content-Type'] ??= 'application/json';
  }
  const requestFn = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = requestFn(
      target,
      {
        method: options.method ?? 'GET',
        headers,
        agent: false,
        ...(options.ca !== undefined ? { ca: options.ca } : {}),
        ...(options.cert !== undefined ? { cert: options.cert } : {}),
        ...(options.key !== undefined ? { key: options.key } : {}),
        ...(options.signal !== undefined ? { signal: options.signal } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes <= 1024 * 1024) chunks.push(chunk);
        });
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, bytes, json: () => JSON.parse(text) as unknown });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
