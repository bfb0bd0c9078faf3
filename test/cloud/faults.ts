// Fault injection for the reference cloud: the next N matching device-side
// requests get a broken answer instead of the real one.
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { writeJson, writeRaw } from './http-io.js';

/** Every kind of broken answer the server can give. */
export type FaultKind =
  | 'status' // an HTTP error status (default 500) with a JSON body
  | 'rate-limit' // 429 with Retry-After in seconds or as an HTTP date
  | 'drop' // destroy the socket without answering
  | 'lose-answer' // handle the request for real (a job is marked IN_PROGRESS), then destroy the socket instead of answering
  | 'hang' // accept the request and never answer
  | 'slow' // answer normally after delayMs
  | 'html' // an HTML error page
  | 'truncated-json' // JSON cut off in the middle
  | 'wrong-shape' // valid JSON of the wrong shape
  | 'job-without-id' // a job offer lacking job_id
  | 'huge' // a body of `bytes` (default 50 MiB)
  | 'redirect-loop'; // 302 to itself, forever

/** A fault to inject; JSON-serialisable so the admin HTTP API takes the same shape. */
export interface FaultSpec {
  kind: FaultKind;
  /** How many matching requests it answers; 'always' until cleared. @default 1 */
  times?: number | 'always';
  /** A regular expression tested against `METHOD /path` (path without query). @default every device-side request */
  match?: string;
  /** For 'status' (default 500) and 'html' (default 502): the HTTP status. */
  status?: number;
  /** For 'status': the JSON body. @default {"error":"Internal Server Error"} */
  body?: unknown;
  /** For 'rate-limit' (default 1) and 'status' (no header unless set): seconds until retry. */
  retryAfterSeconds?: number;
  /** For 'rate-limit' and 'status': send Retry-After as seconds, as an HTTP date, or not at all. @default 'seconds' */
  retryAfterForm?: 'seconds' | 'date' | 'none';
  /** For 'slow': how long to wait before the real answer. @default 1000 */
  delayMs?: number;
  /** For 'huge': body size in bytes. @default 52428800 */
  bytes?: number;
}

/** An installed fault with its remaining budget. */
export interface ActiveFault {
  id: number;
  spec: FaultSpec;
  remaining: number;
  pattern: RegExp | null;
  used: number;
}

/** Validates a fault spec (from tests or the admin API) and returns a problem, or null when it is usable. */
export function checkFaultSpec(spec: unknown): string | null {
  if (typeof spec !== 'object' || spec === null) return 'fault must be an object';
  const s = spec as Record<string, unknown>;
  const kinds: FaultKind[] = ['status', 'rate-limit', 'drop', 'lose-answer', 'hang', 'slow', 'html', 'truncated-json', 'wrong-shape', 'job-without-id', 'huge', 'redirect-loop'];
  if (!kinds.includes(s.kind as FaultKind)) return `fault kind must be one of ${kinds.join(', ')}, got ${JSON.stringify(s.kind)}`;
  if (s.times !== undefined && s.times !== 'always' && !(Number.isInteger(s.times) && (s.times as number) > 0)) {
    return `times must be a positive integer or "always", got ${JSON.stringify(s.times)}`;
  }
  if (s.match !== undefined) {
    if (typeof s.match !== 'string') return 'match must be a regular expression string';
    try {
      new RegExp(s.match);
    } catch {
      return `match is not a valid regular expression: ${s.match}`;
    }
  }
  return null;
}

/** Builds an active fault from a checked spec. */
export function activateFault(id: number, spec: FaultSpec): ActiveFault {
  return {
    id,
    spec: { ...spec },
    remaining: spec.times === 'always' ? Number.POSITIVE_INFINITY : spec.times ?? 1,
    pattern: spec.match === undefined ? null : new RegExp(spec.match),
    used: 0,
  };
}

/** Takes one use of the first fault that matches `METHOD path`, or returns null. */
export function takeFault(faults: ActiveFault[], method: string, path: string): ActiveFault | null {
  if (faults.length === 0) return null;
  const line = `${method} ${path}`;
  for (let i = 0; i < faults.length; i += 1) {
    const fault = faults[i] as ActiveFault;
    if (fault.pattern && !fault.pattern.test(line)) continue;
    fault.remaining -= 1;
    fault.used += 1;
    if (fault.remaining <= 0) faults.splice(i, 1);
    return fault;
  }
  return null;
}

/** Returns the value of a Retry-After header for a rate-limit fault, or null when none is sent. */
export function formatRetryAfter(spec: FaultSpec, nowMs: number): string | null {
  const seconds = spec.retryAfterSeconds ?? 1;
  const form = spec.retryAfterForm ?? 'seconds';
  if (form === 'none') return null;
  if (form === 'date') return new Date(nowMs + seconds * 1000).toUTCString();
  return String(seconds);
}

const CHUNK = Buffer.alloc(1024 * 1024, 'a');

/**
 * Answers a request with the fault's broken response. Returns false for 'slow'
 * and 'lose-answer' (the caller handles the request itself). 'hang' leaves the request open.
 */
export function answerWithFault(req: IncomingMessage, res: ServerResponse, spec: FaultSpec, nowMs: number): boolean {
  switch (spec.kind) {
    case 'status': {
      const header = spec.retryAfterSeconds === undefined ? null : formatRetryAfter(spec, nowMs);
      writeJson(res, spec.status ?? 500, spec.body ?? { error: 'Internal Server Error' }, header === null ? {} : { 'Retry-After': header });
      return true;
    }
    case 'rate-limit': {
      const seconds = spec.retryAfterSeconds ?? 1;
      const header = formatRetryAfter(spec, nowMs);
      writeJson(
        res,
        429,
        { error: 'Too many requests', message: 'Rate limit exceeded, retry later', retryAfter: seconds },
        header === null ? {} : { 'Retry-After': header },
      );
      return true;
    }
    case 'drop':
      req.socket.destroy();
      return true;
    case 'hang':
      return true;
    case 'slow':
    case 'lose-answer':
      return false;
    case 'html': {
      // nginx's page for the status, as a proxy or captive portal in front of the API sends it
      const status = spec.status ?? 502;
      const title = `${status} ${STATUS_CODES[status] ?? 'Error'}`;
      writeRaw(
        res,
        status,
        'text/html; charset=utf-8',
        `<html>\r\n<head><title>${title}</title></head>\r\n<body>\r\n<center><h1>${title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`,
      );
      return true;
    }
    case 'truncated-json':
      writeRaw(res, 200, 'application/json; charset=utf-8', '{"job_id":"7d1f3c9e-0000-4000-8000-000000000000","job_name":"Trunc","job_document":{"version":"1.0","st');
      return true;
    case 'wrong-shape':
      writeJson(res, 200, [{ id: 42, name: 'not a job offer' }]);
      return true;
    case 'job-without-id':
      writeJson(res, 200, {
        job_name: 'Job without id',
        timeout_seconds: 60,
        created_at: new Date(nowMs).toISOString(),
        job_document: { version: '1.0', steps: [{ action: { name: 'noop', type: 'runCommand', input: { command: 'true' } } }] },
      });
      return true;
    case 'huge':
      writeHuge(res, spec.bytes ?? 50 * 1024 * 1024);
      return true;
    case 'redirect-loop':
      res.writeHead(302, { Location: req.url ?? '/', 'Content-Length': 0 });
      res.end();
      return true;
  }
}

// Streams `bytes` of a JSON-looking body with backpressure, stopping if the client goes away.
function writeHuge(res: ServerResponse, bytes: number): void {
  const head = Buffer.from('{"job_id":"huge","job_name":"huge","job_document":{"pad":"');
  const tail = Buffer.from('"}}');
  const padTotal = Math.max(0, bytes - head.length - tail.length);
  res.writeHead(200, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': head.length + padTotal + tail.length });
  res.write(head);
  let left = padTotal;
  const pump = (): void => {
    while (left > 0) {
      if (res.destroyed) return;
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        res.once('drain', pump);
        return;
      }
    }
    if (!res.destroyed) res.end(tail);
  };
  pump();
}
