// The device side of the cloud jobs API (test/cloud/CONTRACT.md): asks for the next job
// and reports statuses over either path generation, detecting which one the
// server speaks and remembering it until a route 404 says otherwise.
import { checkJobId } from '../contract/limits.js';
import type { ApiGeneration, JobOffer, StatusReport } from '../contract/types.js';
import { showText } from '../log/escape.js';
import type { Log } from '../log/log.js';
import { CloudError } from './cloud-error.js';
import type { HttpResponse, HttpTransport } from './http.js';
import {
  isNoPendingJobs,
  isRecord,
  parseJsonBody,
  parseNextAnswer,
  readErrorWords,
  readRetryAfterMs,
  readServerMessage,
  type RefusedOffer,
} from './parse-answer.js';

/** What a poll for the next job found; refused: an offer whose id cannot be reported on (nothing runs). */
export type PollAnswer = { kind: 'job'; offer: JobOffer } | { kind: 'none' } | RefusedOffer;

/**
 * accepted: stored; canceled: the server canceled the job (409/410, or a row
 * saying CANCELED); gone: the job no longer exists (404 "Job status not
 * found"), stop reporting it; refused: the API's own 400 {"error":"status is
 * required"}, permanent, do not retry; too-large: 413, the body is over the
 * server's limit, send it smaller. Any other answer (an HTML 400 from a
 * proxy or captive portal, an empty body, an unknown 4xx) is a CloudError:
 * retried with backoff, never dropped.
 */
export type StatusOutcome = 'accepted' | 'canceled' | 'gone' | 'refused' | 'too-large';

/** Options of createCloudClient. */
export interface CloudClientOptions {
  /** cloud.api_url, e.g. https://cloud.example.com/api/v1 */
  apiUrl: string;
  generation: 'auto' | ApiGeneration;
  uuid: string;
  apiKey: string;
  transport: HttpTransport;
  log: Log;
  /** Wall-clock time for Retry-After dates when the answer has no Date header. */
  now?: () => number;
}

/** The agent's view of the cloud. */
export interface CloudClient {
  /** Asks for the next job; throws CloudError for anything but a job or "no job". */
  nextJob(signal?: AbortSignal): Promise<PollAnswer>;
  /** Sends one status report (every field, the server overwrites all); throws CloudError when it should be retried. */
  sendStatus(jobId: string, report: StatusReport, signal?: AbortSignal): Promise<StatusOutcome>;
  /** The generation in use: the configured one, or the detected one; null while `auto` has not seen an answer yet. */
  generation(): ApiGeneration | null;
}

type Attempt<T> = { kind: 'route'; response: HttpResponse; path: string } | { kind: 'done'; value: T };

/**
 * Returns the path of `what` for a generation (test/cloud/CONTRACT.md "Two generations of paths").
 * Throws for a job id that is not one path segment (".", "..", "%2E%2E", ...):
 * encodeURIComponent keeps those, and the URL would address another route.
 */
export function buildJobPath(generation: ApiGeneration, uuid: string, jobId?: string): string {
  const base = `/${generation}/${encodeURIComponent(uuid)}/jobs`;
  if (jobId === undefined) return `${base}/next`;
  const problem = checkJobId(jobId);
  if (problem !== null) throw new Error(`internal: job id ${JSON.stringify(showText(jobId, 80))} cannot be put in a URL: ${problem}`);
  return `${base}/${encodeURIComponent(jobId)}/status`;
}

/** Creates the client. In `auto` it tries generation agents first and switches on a route 404. */
export function createCloudClient(options: CloudClientOptions): CloudClient {
  const { transport, log, uuid } = options;
  const base = options.apiUrl.replace(/\/+$/, '');
  const now = options.now ?? (() => Date.now());
  const auto = options.generation === 'auto';
  let current: ApiGeneration = auto ? 'agents' : (options.generation as ApiGeneration);
  let detected: ApiGeneration | null = auto ? null : current;

  const headers = { 'x-device-api-key': options.apiKey };

  function confirm(generation: ApiGeneration): void {
    if (detected === generation) return;
    const before = detected;
    detected = generation;
    current = generation;
    if (auto) {
      log.info(
        before === null
          ? `cloud API generation detected: ${generation}`
          : `cloud API generation changed from ${before} to ${generation}`,
        { cloudStatus: generation },
      );
    }
  }

  // Runs `attempt` on the current generation; in auto, a route 404 tries the other one once.
  async function withGeneration<T>(
    method: string,
    attempt: (generation: ApiGeneration) => Promise<Attempt<T>>,
  ): Promise<T> {
    const first = current;
    const one = await attempt(first);
    if (one.kind === 'done') return one.value;
    if (!auto) throw routeError(method, [one]);
    const other: ApiGeneration = first === 'agents' ? 'devices' : 'agents';
    log.debug(`no route ${method} ${one.path} (generation ${first}); trying generation ${other}`);
    const two = await attempt(other);
    if (two.kind === 'done') return two.value;
    throw routeError(method, [one, two]);
  }

  function routeError(method: string, misses: { response: HttpResponse; path: string }[]): CloudError {
    const last = misses[misses.length - 1]!;
    const said = readServerMessage(last.response.body);
    const tried = misses.map((m) => `${method} ${base}${m.path}`).join(' and ');
    const generationAdvice = auto ? '' : ` and cloud.api_generation (${current})`;
    return new CloudError(
      'route',
      `the server has no such route: ${tried} answered 404${said ? ` (${said})` : ''}; check cloud.api_url (it usually ends in /api/v1)${generationAdvice}`,
      { status: 404, serverMessage: said },
    );
  }

  // The poll path of each generation, built once (the agent polls for months).
  const nextPaths: Record<ApiGeneration, string> = { agents: buildJobPath('agents', uuid), devices: buildJobPath('devices', uuid) };

  async function nextJob(signal?: AbortSignal): Promise<PollAnswer> {
    return withGeneration<PollAnswer>('GET', async (generation) => {
      const path = nextPaths[generation];
      const response = await transport.request({ method: 'GET', url: base + path, headers, signal });
      const status = response.status;
      if (status === 204) {
        confirm(generation);
        return done<PollAnswer>({ kind: 'none' });
      }
      if (status === 200) {
        const answer = parseNextAnswer(parseJsonBody(response), status);
        confirm(generation);
        if (answer.kind === 'none' || answer.kind === 'refused') return done<PollAnswer>(answer);
        for (const warning of answer.warnings) {
          log.warn(`job offer: ${warning}`, { jobId: answer.offer.jobId, jobName: answer.offer.jobName });
        }
        return done<PollAnswer>({ kind: 'job', offer: answer.offer });
      }
      if (status === 404) {
        const words = readErrorWords(response.body);
        if (/no pending jobs?/.test(words) || isNoPendingJobs(safeJson(response.body))) {
          confirm(generation);
          return done<PollAnswer>({ kind: 'none' });
        }
        if (/device not found/.test(words)) {
          confirm(generation);
          throw deviceUnknown(response);
        }
        return { kind: 'route', response, path };
      }
      if (status >= 200 && status < 300) {
        throw new CloudError('protocol', `the server answered GET ${path} with ${status}, which is neither a job nor "no job"`, {
          status,
        });
      }
      throw describeStatus('GET', path, response);
    });
  }

  async function sendStatus(jobId: string, report: StatusReport, signal?: AbortSignal): Promise<StatusOutcome> {
    // a report of such an id can only come from an older version's outbox: it can never be delivered
    const idProblem = checkJobId(jobId);
    if (idProblem !== null) {
      log.warn(
        `dropped a queued ${report.status} report of job ${JSON.stringify(showText(jobId, 80))}: its id cannot name a status URL (${idProblem}); an older agent accepted it`,
        { jobId, jobStatus: report.status },
      );
      return 'refused';
    }
    return withGeneration<StatusOutcome>('PATCH', async (generation) => {
      const path = buildJobPath(generation, uuid, jobId);
      const response = await transport.request({
        method: 'PATCH',
        url: base + path,
        headers,
        json: report,
        ...(signal ? { signal } : {}),
      });
      const status = response.status;
      if (status >= 200 && status < 300) {
        confirm(generation);
        const row = safeJson(response.body);
        if (isRecord(row) && row.status === 'CANCELED' && report.status !== 'CANCELED') return done<StatusOutcome>('canceled');
        return done<StatusOutcome>('accepted');
      }
      if (status === 409 || status === 410) {
        confirm(generation);
        log.info(`the server says job ${jobId} was canceled (${status}: ${readServerMessage(response.body)})`, {
          jobId,
          cloudStatus: status,
        });
        return done<StatusOutcome>('canceled');
      }
      if (status === 400 && isApiRefusal(response.body)) {
        confirm(generation);
        log.warn(`the server refused the ${report.status} report of job ${jobId} (400: ${readServerMessage(response.body)}); not retrying it`, {
          jobId,
          jobStatus: report.status,
          cloudStatus: status,
        });
        return done<StatusOutcome>('refused');
      }
      if (status === 413) return done<StatusOutcome>('too-large');
      if (status === 404) {
        const words = readErrorWords(response.body);
        if (/job status not found|job not found/.test(words)) {
          confirm(generation);
          return done<StatusOutcome>('gone');
        }
        if (/device not found/.test(words)) {
          confirm(generation);
          throw deviceUnknown(response);
        }
        return { kind: 'route', response, path };
      }
      throw describeStatus('PATCH', path, response);
    });
  }

  function deviceUnknown(response: HttpResponse): CloudError {
    const said = readServerMessage(response.body);
    return new CloudError(
      'device-unknown',
      `the server does not know device ${uuid} (404: ${said}); check device.uuid, or register the device with \`cloudjobs register\``,
      { status: 404, serverMessage: said },
    );
  }

  function describeStatus(method: string, path: string, response: HttpResponse): CloudError {
    const status = response.status;
    const said = readServerMessage(response.body);
    const saidPart = said ? `: ${said}` : '';
    if (status === 401) {
      return new CloudError(
        'auth',
        `the server refused this device's API key (401${saidPart}); check cloud.api_key or cloud.api_key_file, or register the device again`,
        { status, serverMessage: said },
      );
    }
    if (status === 403) {
      return new CloudError('auth', `the server refused device ${uuid} (403${saidPart}); ask the fleet administrator`, {
        status,
        serverMessage: said,
      });
    }
    if (status === 429 || status === 503) {
      const retryAfterMs = readRetryAfterMs(response, now);
      const wait = retryAfterMs === undefined ? '' : `; the server asks to wait ${Math.ceil(retryAfterMs / 1000)}s`;
      return new CloudError(
        status === 429 ? 'rate-limited' : 'server',
        status === 429 ? `rate limited by the server (429${saidPart})${wait}` : `the server is unavailable (503${saidPart})${wait}`,
        { status, serverMessage: said, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
      );
    }
    if (status >= 500) {
      return new CloudError('server', `the server failed to answer ${method} ${path} (${status}${saidPart})`, {
        status,
        serverMessage: said,
      });
    }
    return new CloudError('protocol', `the server answered ${method} ${path} with an unexpected ${status}${saidPart}`, {
      status,
      serverMessage: said,
    });
  }

  return { nextJob, sendStatus, generation: () => detected };
}

// The one 400 test/cloud/CONTRACT.md "Status update" names for a status PATCH: JSON {"error":"status is required"}.
// Anything else answered 400 (a proxy's or captive portal's page, another
// message) may go away: it is retried, since dropping a final report loses a
// result for good.
function isApiRefusal(body: string): boolean {
  const value = safeJson(body);
  return isRecord(value) && typeof value.error === 'string' && /^status is required$/i.test(value.error.trim());
}

function done<T>(value: T): Attempt<T> {
  return { kind: 'done', value };
}

function safeJson(body: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch {
    return undefined;
  }
}
