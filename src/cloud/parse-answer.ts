// Reading the server's answers: JSON bodies, the server's own error message, and
// the shape of a job offer. Anything unusable becomes a one-line protocol error.
import { checkJobId, isNestedDeeperThan, MAX_DOCUMENT_DEPTH, MAX_JOB_NAME_CHARS } from '../contract/limits.js';
import type { JobOffer } from '../contract/types.js';
import { showText, truncateText } from '../log/escape.js';
import { parseRetryAfter } from './backoff.js';
import { CloudError } from './cloud-error.js';
import type { HttpResponse } from './http.js';

/** Parses a JSON body; HTML, empty, non-JSON and truncated bodies throw a protocol CloudError naming the problem. */
export function parseJsonBody(response: HttpResponse): unknown {
  const text = response.body.trim();
  const status = response.status;
  if (response.contentType === 'text/html' || text.startsWith('<')) {
    throw new CloudError(
      'protocol',
      `the server answered ${status} with ${response.contentType || 'markup'} instead of JSON (is cloud.api_url the API and not the web portal?)`,
      { status },
    );
  }
  if (text === '') {
    throw new CloudError('protocol', `the server answered ${status} with an empty body instead of JSON`, { status });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    const kind = response.contentType && !response.contentType.includes('json') ? response.contentType : 'JSON';
    const reason = error instanceof Error ? error.message : String(error);
    throw new CloudError(
      'protocol',
      kind === 'JSON'
        ? `the server answered ${status} with JSON that does not parse (${reason}; ${response.body.length} bytes)`
        : `the server answered ${status} with ${kind} instead of JSON`,
      { status, cause: error },
    );
  }
}

/**
 * Returns the server's explanation from an error body ({"error","message"}), or
 * a short excerpt of a non-JSON body: at most 300 characters, control
 * characters escaped (it goes into log lines and status).
 */
export function readServerMessage(body: string): string {
  return showText(findServerMessage(body), 300);
}

function findServerMessage(body: string): string {
  try {
    const value = JSON.parse(body) as unknown;
    if (isRecord(value)) {
      const error = typeof value.error === 'string' ? value.error : '';
      const message = typeof value.message === 'string' ? value.message : '';
      if (error && message && error !== message) return `${error}: ${message}`;
      if (message || error) return message || error;
    }
  } catch {
    // not JSON: fall through to an excerpt
  }
  if (body.trimStart().startsWith('<')) {
    const title = /<title[^>]*>([^<]*)<\/title>/i.exec(body)?.[1]?.replace(/\s+/g, ' ').trim();
    return title ? `an HTML page titled ${JSON.stringify(title)}` : 'an HTML page';
  }
  const flat = body.replace(/\s+/g, ' ').trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}...` : flat;
}

/** Returns the `error` and `message` strings of a JSON body, lower-cased, for telling 404s apart. */
export function readErrorWords(body: string): string {
  try {
    const value = JSON.parse(body) as unknown;
    if (isRecord(value)) {
      return [value.error, value.message].filter((v): v is string => typeof v === 'string').join(' | ').toLowerCase();
    }
  } catch {
    // not JSON
  }
  return '';
}

/** What a 200 on jobs/next held. */
export type NextAnswer = { kind: 'none' } | { kind: 'job'; offer: JobOffer; warnings: string[] } | RefusedOffer;

/** An offer whose job id cannot address its own status URL: nothing runs and nothing can be reported. */
export interface RefusedOffer {
  kind: 'refused';
  jobId: string;
  /** Bounded (MAX_JOB_NAME_CHARS) like any offer's name. */
  jobName: string;
  /** One sentence naming the id (escaped) and why. */
  reason: string;
}

/**
 * Validates a 200 answer of jobs/next. No job_id (and no "No pending jobs"),
 * or not an object: protocol error. A job_id with a bad document still comes
 * back as an offer: its document is passed on as received so the job engine
 * REJECTs it and the job does not stay IN_PROGRESS on the server forever.
 */
export function parseNextAnswer(value: unknown, status: number): NextAnswer {
  if (!isRecord(value)) {
    throw new CloudError('protocol', `the server answered ${status} with ${describeJsonType(value)} instead of a job object`, {
      status,
    });
  }
  if (value.job_id === undefined || value.job_id === null) {
    if (isNoPendingJobs(value)) return { kind: 'none' };
    const keys = Object.keys(value).slice(0, 8).map((key) => showText(key, 40)).join(', ');
    throw new CloudError('protocol', `the server answered ${status} with a job without job_id (keys: ${keys || 'none'})`, {
      status,
    });
  }
  if (typeof value.job_id !== 'string') {
    throw new CloudError(
      'protocol',
      `the server answered ${status} with a job whose job_id is not a string (got ${describeJsonType(value.job_id)})`,
      { status },
    );
  }
  const warnings: string[] = [];
  const problems: string[] = [];
  const jobId = value.job_id;
  let jobName = jobId;
  if (typeof value.job_name === 'string' && value.job_name.trim() !== '') jobName = value.job_name;
  else if (value.job_name !== undefined && value.job_name !== null) warnings.push(`job_name is ${describeJsonType(value.job_name)}, using the job_id as name`);
  if (jobName.length > MAX_JOB_NAME_CHARS) {
    // REJECTED like a step name over the limit; the name is kept shortened for logs, status and history
    problems.push(`job_name is ${jobName.length} characters long; at most ${MAX_JOB_NAME_CHARS} are allowed`);
    jobName = truncateText(jobName, MAX_JOB_NAME_CHARS);
  }
  const idProblem = checkJobId(jobId);
  if (idProblem !== null) {
    return {
      kind: 'refused',
      jobId: truncateText(jobId, MAX_JOB_NAME_CHARS),
      jobName,
      reason: `job id ${JSON.stringify(showText(jobId, 80))} cannot name its status URL: ${idProblem}`,
    };
  }

  let timeoutSeconds: number | null = null;
  const rawTimeout = value.timeout_seconds;
  if (typeof rawTimeout === 'number' && Number.isFinite(rawTimeout) && rawTimeout > 0) timeoutSeconds = rawTimeout;
  else if (rawTimeout !== undefined && rawTimeout !== null) {
    // described by type, never serialised: a server value may be nested 300,000 levels deep (JSON.stringify would overflow the stack)
    warnings.push(`timeout_seconds is ${describeJsonType(rawTimeout)}, not a positive number; using the default job timeout`);
  }
  const createdAt = typeof value.created_at === 'string' ? value.created_at : null;
  const document = readDocument(value.job_document, warnings, problems);
  return {
    kind: 'job',
    offer: { jobId, jobName, timeoutSeconds, createdAt, document, ...(problems.length > 0 ? { problems } : {}) },
    warnings,
  };
}

// An object stays; a JSON string of an object is parsed; anything else goes on as received (the engine rejects it).
// A document nested deeper than MAX_DOCUMENT_DEPTH is not kept at all (null): copying
// it (journal, history) would recurse that deep; the problem REJECTs the job.
function readDocument(raw: unknown, warnings: string[], problems: string[]): unknown {
  if (typeof raw !== 'string') {
    if (!isRecord(raw)) warnings.push(`job_document is ${describeJsonType(raw)}, not an object`);
    return keepShallow(raw, problems);
  }
  try {
    // V8's JSON.parse is iterative: any nesting parses; the depth is checked on the result
    const parsed = JSON.parse(raw) as unknown;
    if (isRecord(parsed)) return keepShallow(parsed, problems);
    warnings.push(`job_document is a JSON string holding ${describeJsonType(parsed)}, not an object`);
  } catch {
    warnings.push('job_document is a string that is not valid JSON');
  }
  return raw;
}

function keepShallow(document: unknown, problems: string[]): unknown {
  if (!isNestedDeeperThan(document, MAX_DOCUMENT_DEPTH)) return document;
  problems.push(`job_document nests objects and arrays more than ${MAX_DOCUMENT_DEPTH} levels deep`);
  return null;
}

/** Returns whether a body says "No pending jobs" (in `message` or `error`). */
export function isNoPendingJobs(value: unknown): boolean {
  if (!isRecord(value)) return false;
  return [value.message, value.error].some((v) => typeof v === 'string' && /no pending jobs?/i.test(v));
}

/** Names a JSON value's type for messages: "a JSON array", "the number 42", "null". */
export function describeJsonType(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a JSON array';
  if (typeof value === 'string') return value.length > 40 ? 'a string' : `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number' || typeof value === 'boolean') return `the ${typeof value} ${String(value)}`;
  return 'a JSON object';
}

/** Returns whether `value` is a plain JSON object. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Returns how long a 429/503 answer asks us to wait: the Retry-After header
 * (an HTTP date is measured against the answer's own Date header, since a Pi
 * without a clock battery may be years off), else a JSON body's `retryAfter`
 * seconds; undefined when the answer says nothing.
 */
export function readRetryAfterMs(response: HttpResponse, now: () => number): number | undefined {
  const date = Date.parse(response.header('date') ?? '');
  const header = parseRetryAfter(response.header('retry-after'), Number.isNaN(date) ? now() : date);
  if (header !== null) return header;
  try {
    const body = JSON.parse(response.body) as unknown;
    if (isRecord(body) && typeof body.retryAfter === 'number' && Number.isFinite(body.retryAfter) && body.retryAfter >= 0) {
      return Math.round(body.retryAfter * 1000);
    }
  } catch {
    // no hint in the body
  }
  return undefined;
}
