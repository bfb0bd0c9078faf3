import type http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createSystemClock } from '../../../src/clock/clock.js';
import { CloudError } from '../../../src/cloud/cloud-error.js';
import { createCloudClient, type CloudClient } from '../../../src/cloud/client.js';
import { createHttpTransport, type HttpTransport } from '../../../src/cloud/http.js';
import type { StatusReport } from '../../../src/contract/types.js';
import { createCaptureLog } from './capture-log.js';
import { sendJson, startTestServer, type TestServer, expectCloudError } from './test-server.js';

const UUID = '8479359e-dbeb-4858-813c-e8a9008dde04';
const KEY = 'a'.repeat(64);
const servers: TestServer[] = [];
const transports: HttpTransport[] = [];

afterEach(async () => {
  for (const t of transports.splice(0)) t.close();
  for (const s of servers.splice(0)) await s.close();
});

type Route = (req: http.IncomingMessage, res: http.ServerResponse, body: string) => boolean;

/** A cloud speaking one generation, like the two real server lines do. */
function cloudOf(generation: 'devices' | 'agents', handle: Route): Route {
  return (req, res, body) => {
    if (handle(req, res, body)) return true;
    if (generation === 'agents') {
      sendJson(res, 404, { error: 'Not found', message: `Route ${req.method} ${req.url} not found`, timestamp: 'x' });
    } else {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end(`<!DOCTYPE html><pre>Cannot ${req.method} ${req.url}</pre>`);
    }
    return true;
  };
}

function idleOn(generation: 'devices' | 'agents'): Route {
  return cloudOf(generation, (req, res) => {
    if (req.method === 'GET' && req.url === `/api/v1/${generation}/${UUID}/jobs/next`) {
      if (generation === 'agents') sendJson(res, 404, { error: 'No pending jobs' });
      else sendJson(res, 200, { message: 'No pending jobs' });
      return true;
    }
    return false;
  });
}

async function setup(
  route: Route,
  generation: 'auto' | 'devices' | 'agents' = 'auto',
): Promise<{ server: TestServer; client: CloudClient; log: ReturnType<typeof createCaptureLog> }> {
  const server = await startTestServer((req, res, body) => void route(req, res, body));
  servers.push(server);
  const transport = createHttpTransport({ timeoutMs: 5000, clock: createSystemClock() });
  transports.push(transport);
  const log = createCaptureLog();
  const client = createCloudClient({ apiUrl: `${server.url}/api/v1/`, generation, uuid: UUID, apiKey: KEY, transport, log });
  return { server, client, log };
}

/** Answers GET jobs/next on `generation` with `status` and `body` (raw string or JSON). */
function nextAnswers(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  generation: 'devices' | 'agents' = 'devices',
): Route {
  return cloudOf(generation, (req, res) => {
    if (req.url !== `/api/v1/${generation}/${UUID}/jobs/next`) return false;
    if (typeof body === 'string') {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(body);
    } else sendJson(res, status, body, headers);
    return true;
  });
}

// every client failure is checked for the API key in its message
async function failure(promise: Promise<unknown>): Promise<CloudError> {
  const error = await expectCloudError(promise);
  expect(error.message).not.toContain(KEY);
  return error;
}

const report: StatusReport = {
  status: 'SUCCEEDED',
  exit_code: 0,
  stdout: 'ok\n',
  stderr: '',
  reason: '1 of 1 steps succeeded',
  executed_steps: 1,
  failed_step: null,
  status_details: { steps: [] },
};

describe('cloud client: generations and detection', () => {
  it('speaks generation devices: 200 "No pending jobs" is none, with the device key header', async () => {
    const { server, client } = await setup(idleOn('devices'), 'devices');
    expect(await client.nextJob()).toEqual({ kind: 'none' });
    expect(client.generation()).toBe('devices');
    expect(server.seen.map((r) => [r.method, r.url, r.headers['x-device-api-key']])).toEqual([
      ['GET', `/api/v1/devices/${UUID}/jobs/next`, KEY],
    ]);
  });

  it('speaks generation agents: 404 "No pending jobs" is none', async () => {
    const { server, client } = await setup(idleOn('agents'), 'agents');
    expect(await client.nextJob()).toEqual({ kind: 'none' });
    expect(server.seen.map((r) => r.url)).toEqual([`/api/v1/agents/${UUID}/jobs/next`]);
  });

  it('auto: detects devices after a route 404 on agents, remembers it and logs it once', async () => {
    const { server, client, log } = await setup(idleOn('devices'));
    expect(client.generation()).toBeNull();
    expect(await client.nextJob()).toEqual({ kind: 'none' });
    expect(await client.nextJob()).toEqual({ kind: 'none' });
    expect(client.generation()).toBe('devices');
    expect(server.seen.map((r) => r.url)).toEqual([
      `/api/v1/agents/${UUID}/jobs/next`,
      `/api/v1/devices/${UUID}/jobs/next`,
      `/api/v1/devices/${UUID}/jobs/next`,
    ]);
    expect(log.entries.filter((e) => e.level === 'info').map((e) => e.message)).toEqual(['cloud API generation detected: devices']);
  });

  it('auto: detects agents from its 404 "No pending jobs" without trying devices', async () => {
    const { server, client } = await setup(idleOn('agents'));
    expect(await client.nextJob()).toEqual({ kind: 'none' });
    expect(client.generation()).toBe('agents');
    expect(server.seen).toHaveLength(1);
  });

  it('auto: re-detects when a route 404 appears later (server replaced by the other generation)', async () => {
    let generation: 'devices' | 'agents' = 'agents';
    const { server, client, log } = await setup((req, res, body) => idleOn(generation)(req, res, body));
    expect(await client.nextJob()).toEqual({ kind: 'none' });
    generation = 'devices';
    expect(await client.nextJob()).toEqual({ kind: 'none' });
    expect(client.generation()).toBe('devices');
    expect(server.seen.map((r) => r.url.split('/')[3])).toEqual(['agents', 'agents', 'devices']);
    expect(log.entries.filter((e) => e.level === 'info').map((e) => e.message)).toEqual([
      'cloud API generation detected: agents',
      'cloud API generation changed from agents to devices',
    ]);
  });

  it('auto: a base URL where neither generation exists is a route error naming both paths', async () => {
    const { server, client } = await setup(cloudOf('agents', () => false));
    const error = await failure(client.nextJob());
    expect(error.kind).toBe('route');
    expect(error.status).toBe(404);
    expect(error.message).toBe(
      `the server has no such route: GET ${server.url}/api/v1/agents/${UUID}/jobs/next and GET ${server.url}/api/v1/devices/${UUID}/jobs/next answered 404 (Not found: Route GET /api/v1/devices/${UUID}/jobs/next not found); check cloud.api_url (it usually ends in /api/v1)`,
    );
    expect(client.generation()).toBeNull();
  });

  it('fixed generation on the wrong server: route error that names cloud.api_generation', async () => {
    const { server, client } = await setup(idleOn('devices'), 'agents');
    const error = await failure(client.nextJob());
    expect(error.kind).toBe('route');
    expect(error.message).toBe(
      `the server has no such route: GET ${server.url}/api/v1/agents/${UUID}/jobs/next answered 404 (an HTML page); check cloud.api_url (it usually ends in /api/v1) and cloud.api_generation (agents)`,
    );
    expect(server.seen).toHaveLength(1);
  });

  it('404 "Device not found" is device-unknown and confirms the generation', async () => {
    const { client } = await setup(nextAnswers(404, { error: 'Not Found', message: 'Device not found' }, {}, 'agents'));
    const error = await failure(client.nextJob());
    expect(error.kind).toBe('device-unknown');
    expect(error.serverMessage).toBe('Not Found: Device not found');
    expect(error.message).toBe(
      `the server does not know device ${UUID} (404: Not Found: Device not found); check device.uuid, or register the device with \`cloudjobs register\``,
    );
    expect(client.generation()).toBe('agents');
  });
});

describe('cloud client: job answers', () => {
  it('returns a job offer with its fields', async () => {
    const doc = { version: '1.0', steps: [{ action: { type: 'runCommand', input: { command: 'df,-h' } } }] };
    const { client } = await setup(
      nextAnswers(200, { job_id: 'j-1', job_name: 'Disk', timeout_seconds: 300, created_at: '2026-11-28T10:00:00.000Z', job_document: doc }),
      'devices',
    );
    expect(await client.nextJob()).toEqual({
      kind: 'job',
      offer: { jobId: 'j-1', jobName: 'Disk', timeoutSeconds: 300, createdAt: '2026-11-28T10:00:00.000Z', document: doc },
    });
  });

  it('parses a job_document sent as a JSON string, and names a nameless job by its id', async () => {
    const { client } = await setup(nextAnswers(200, { job_id: 'j-2', job_document: '{"version":"1.0","steps":[]}' }), 'devices');
    expect(await client.nextJob()).toEqual({
      kind: 'job',
      offer: { jobId: 'j-2', jobName: 'j-2', timeoutSeconds: null, createdAt: null, document: { version: '1.0', steps: [] } },
    });
  });

  it('passes a bad document on as received (so the engine rejects it) and warns with the job id', async () => {
    const { client, log } = await setup(
      nextAnswers(200, { job_id: 'j-3', job_name: 'Bad', timeout_seconds: -1, job_document: '{"version":' }),
      'devices',
    );
    expect(await client.nextJob()).toEqual({
      kind: 'job',
      offer: { jobId: 'j-3', jobName: 'Bad', timeoutSeconds: null, createdAt: null, document: '{"version":' },
    });
    expect(log.entries.filter((e) => e.level === 'warn').map((e) => [e.message, e.fields.jobId])).toEqual([
      ['job offer: timeout_seconds is the number -1, not a positive number; using the default job timeout', 'j-3'],
      ['job offer: job_document is a string that is not valid JSON', 'j-3'],
    ]);
    const missing = await setup(nextAnswers(200, { job_id: 'j-4' }), 'devices');
    expect(await missing.client.nextJob()).toEqual({
      kind: 'job',
      offer: { jobId: 'j-4', jobName: 'j-4', timeoutSeconds: null, createdAt: null, document: undefined },
    });
  });

  it('a timeout_seconds nested 300,000 levels deep is described by its type, not serialised (no stack overflow, the job is not lost)', async () => {
    const deep = `${'['.repeat(300_000)}1${']'.repeat(300_000)}`;
    const body = `{"job_id":"j-deep","job_name":"Deep","timeout_seconds":${deep},"job_document":{"version":"1.0","steps":[]}}`;
    const { client, log } = await setup(nextAnswers(200, body), 'devices');
    const answer = await client.nextJob();
    expect(answer).toMatchObject({ kind: 'job', offer: { jobId: 'j-deep', jobName: 'Deep', timeoutSeconds: null } });
    expect(log.entries.filter((e) => e.level === 'warn').map((e) => e.message)).toEqual([
      'job offer: timeout_seconds is a JSON array, not a positive number; using the default job timeout',
    ]);
  });

  it('treats 204 as no job', async () => {
    const { client } = await setup(
      cloudOf('devices', (req, res) => {
        res.writeHead(204);
        res.end();
        return true;
      }),
      'devices',
    );
    expect(await client.nextJob()).toEqual({ kind: 'none' });
  });

  const bad: [string, number, string, Record<string, string>, string][] = [
    ['HTML', 200, '<html><body>Portal</body></html>', { 'content-type': 'text/html' },
      'the server answered 200 with text/html instead of JSON (is cloud.api_url the API and not the web portal?)'],
    ['truncated JSON', 200, '{"job_id":"j-1","job_document":{"ver', {},
      'the server answered 200 with JSON that does not parse (Unterminated string in JSON at position 36; 36 bytes)'],
    ['an array', 200, '[{"job_id":"j"}]', {}, 'the server answered 200 with a JSON array instead of a job object'],
    ['a number', 200, '42', {}, 'the server answered 200 with the number 42 instead of a job object'],
    ['no job_id', 200, '{"job_name":"x","job_document":{}}', {}, 'the server answered 200 with a job without job_id (keys: job_name, job_document)'],
    ['a numeric job_id', 200, '{"job_id":7}', {}, 'the server answered 200 with a job whose job_id is not a string (got the number 7)'],
    ['an empty body', 200, '', {}, 'the server answered 200 with an empty body instead of JSON'],
    ['plain text', 200, 'OK', { 'content-type': 'text/plain' }, 'the server answered 200 with text/plain instead of JSON'],
  ];
  for (const [name, status, body, headers, message] of bad) {
    it(`refuses ${name} with a one-line protocol error`, async () => {
      const { client } = await setup(nextAnswers(status, body, headers), 'devices');
      const error = await failure(client.nextJob());
      expect(error.kind).toBe('protocol');
      expect(error.message).toBe(message);
      expect(error.message).not.toContain('\n');
    });
  }
});

describe('cloud client: job ids that cannot name a status URL (issue 16 item 3)', () => {
  const ids: [string, string][] = [
    ['', 'it is empty'],
    ['  ', 'it is empty'],
    ['.', 'it is "." (also as a %-escape), which URLs remove as a path segment'],
    ['..', 'it is ".." (also as a %-escape), which URLs remove as a path segment'],
    ['%2E%2E', 'it is ".." (also as a %-escape), which URLs remove as a path segment'],
    ['%252e', 'it is "." (also as a %-escape), which URLs remove as a path segment'],
    ['a/b', 'it contains "/" or "\\" (also as a %-escape): it is not one URL path segment'],
    ['a%2Fb', 'it contains "/" or "\\" (also as a %-escape): it is not one URL path segment'],
    ['a\\b', 'it contains "/" or "\\" (also as a %-escape): it is not one URL path segment'],
    ['j\n1', 'it contains control characters'],
    ['x'.repeat(257), 'it is 257 characters long; at most 256 are allowed'],
  ];
  for (const [id, why] of ids) {
    it(`refuses the offer of job id ${JSON.stringify(id.slice(0, 20))}: nothing to run, nothing sent`, async () => {
      const { server, client } = await setup(nextAnswers(200, { job_id: id, job_name: 'odd', job_document: { version: '1.0', steps: [] } }), 'devices');
      const answer = await client.nextJob();
      // kept for the history, shortened like a name
      const kept = id.length > 255 ? `${id.slice(0, 255)}…[${id.length - 255} more characters]` : id;
      expect(answer).toEqual({ kind: 'refused', jobId: kept, jobName: 'odd', reason: expect.stringContaining(`cannot name its status URL: ${why}`) });
      expect(server.seen.map((r) => r.method)).toEqual(['GET']);
    });
  }

  it('accepts ids that are one segment: UUIDs, dots inside, a lone "%"', async () => {
    for (const id of ['8479359e-dbeb-4858-813c-e8a9008dde04', 'v1.2..3', '...', '100%', 'a b']) {
      const { client } = await setup(nextAnswers(200, { job_id: id, job_document: { version: '1.0', steps: [] } }), 'devices');
      expect((await client.nextJob()).kind).toBe('job');
    }
  });

  it('drops a queued report of such an id (from an older version) with one warning, without a request', async () => {
    const { server, client, log } = await setup(nextAnswers(200, {}), 'devices');
    expect(await client.sendStatus('..', report)).toBe('refused');
    expect(server.seen).toEqual([]);
    expect(log.entries.map((e) => [e.level, e.message])).toEqual([
      [
        'warn',
        'dropped a queued SUCCEEDED report of job "..": its id cannot name a status URL (it is ".." (also as a %-escape), which URLs remove as a path segment); an older agent accepted it',
      ],
    ]);
  });

  it('buildJobPath refuses such an id instead of building another route', async () => {
    const { buildJobPath } = await import('../../../src/cloud/client.js');
    expect(() => buildJobPath('devices', UUID, '..')).toThrow(/^internal: job id "\.\." cannot be put in a URL/);
    expect(buildJobPath('devices', UUID, 'j 1')).toBe(`/devices/${UUID}/jobs/j%201/status`);
  });
});

describe('cloud client: bounded offers (issue 16 items 4 and 5)', () => {
  const deep = (levels: number): unknown => {
    let value: unknown = 1;
    for (let i = 0; i < levels; i += 1) value = { a: value };
    return value;
  };

  it('drops a job_document nested 2000 levels deep, as an object or a JSON string, with a problem that REJECTs it', async () => {
    for (const document of [deep(2000), JSON.stringify(deep(2000))]) {
      const { client } = await setup(nextAnswers(200, { job_id: 'deep', job_name: 'deep', job_document: document }), 'devices');
      const answer = await client.nextJob();
      expect(answer).toEqual({
        kind: 'job',
        offer: {
          jobId: 'deep',
          jobName: 'deep',
          timeoutSeconds: null,
          createdAt: null,
          document: null,
          problems: ['job_document nests objects and arrays more than 32 levels deep'],
        },
      });
    }
  });

  it('keeps a document 32 levels deep', async () => {
    const { client } = await setup(nextAnswers(200, { job_id: 'ok', job_document: deep(31) }), 'devices');
    const answer = await client.nextJob();
    expect(answer.kind === 'job' && answer.offer.problems).toBeUndefined();
  });

  it('shortens a job_name over 255 characters with a marker, and the problem REJECTs it', async () => {
    const { client } = await setup(nextAnswers(200, { job_id: 'long', job_name: 'n'.repeat(200_000), job_document: {} }), 'devices');
    const answer = await client.nextJob();
    if (answer.kind !== 'job') throw new Error('expected a job');
    expect(answer.offer.jobName).toBe(`${'n'.repeat(255)}…[199745 more characters]`);
    expect(answer.offer.problems).toEqual(['job_name is 200000 characters long; at most 255 are allowed']);
  });
});

describe('cloud client: error answers', () => {
  it('401 and 403 are auth errors carrying the server message', async () => {
    const unauthorized = await setup(nextAnswers(401, { error: 'Unauthorized', message: 'Invalid device API key' }), 'devices');
    const e401 = await failure(unauthorized.client.nextJob());
    expect([e401.kind, e401.status, e401.serverMessage]).toEqual(['auth', 401, 'Unauthorized: Invalid device API key']);
    expect(e401.message).toBe(
      "the server refused this device's API key (401: Unauthorized: Invalid device API key); check cloud.api_key or cloud.api_key_file, or register the device again",
    );
    const forbidden = await setup(
      nextAnswers(403, { error: 'Forbidden', message: 'Device is inactive. Contact administrator.' }),
      'devices',
    );
    const e403 = await failure(forbidden.client.nextJob());
    expect([e403.kind, e403.status]).toEqual(['auth', 403]);
    expect(e403.message).toBe(
      `the server refused device ${UUID} (403: Forbidden: Device is inactive. Contact administrator.); ask the fleet administrator`,
    );
  });

  it('429 with Retry-After seconds', async () => {
    const { client } = await setup(nextAnswers(429, { error: 'Too many requests', message: 'slow down', retryAfter: 5 }, { 'retry-after': '30' }), 'devices');
    const error = await failure(client.nextJob());
    expect([error.kind, error.status, error.retryAfterMs]).toEqual(['rate-limited', 429, 30_000]);
    expect(error.message).toBe('rate limited by the server (429: Too many requests: slow down); the server asks to wait 30s');
  });

  it('429 with an HTTP-date Retry-After, measured against the server Date header', async () => {
    const { client } = await setup(
      nextAnswers(429, { error: 'Too many requests' }, { date: 'Sat, 28 Nov 2026 10:00:00 GMT', 'retry-after': 'Sat, 28 Nov 2026 10:02:00 GMT' }),
      'devices',
    );
    const error = await failure(client.nextJob());
    expect([error.kind, error.retryAfterMs]).toEqual(['rate-limited', 120_000]);
  });

  it('429 without the header uses the body retryAfter', async () => {
    const { client } = await setup(nextAnswers(429, { error: 'Too many requests', retryAfter: 42 }), 'devices');
    const error = await failure(client.nextJob());
    expect([error.kind, error.retryAfterMs]).toEqual(['rate-limited', 42_000]);
  });

  it('503 with Retry-After and a plain 500', async () => {
    const unavailable = await setup(nextAnswers(503, { error: 'maintenance' }, { 'retry-after': '7' }), 'devices');
    const e503 = await failure(unavailable.client.nextJob());
    expect([e503.kind, e503.status, e503.retryAfterMs]).toEqual(['server', 503, 7000]);
    expect(e503.message).toBe('the server is unavailable (503: maintenance); the server asks to wait 7s');
    const broken = await setup(nextAnswers(500, { error: 'Internal server error' }), 'devices');
    const e500 = await failure(broken.client.nextJob());
    expect([e500.kind, e500.status, e500.retryAfterMs]).toEqual(['server', 500, undefined]);
    expect(e500.message).toBe(`the server failed to answer GET /devices/${UUID}/jobs/next (500: Internal server error)`);
  });
});

describe('cloud client: status reports', () => {
  function statusCloud(answer: (res: http.ServerResponse, body: string) => void, generation: 'devices' | 'agents' = 'devices'): Route {
    return cloudOf(generation, (req, res, body) => {
      if (req.method !== 'PATCH' || !req.url!.startsWith(`/api/v1/${generation}/${UUID}/jobs/`)) return false;
      answer(res, body);
      return true;
    });
  }

  it('PATCHes the whole report and takes a 200 row as accepted', async () => {
    const { server, client } = await setup(statusCloud((res, body) => sendJson(res, 200, { ...JSON.parse(body), job_id: 'j 1' })), 'devices');
    expect(await client.sendStatus('j 1', report)).toBe('accepted');
    expect(server.seen).toHaveLength(1);
    expect(server.seen[0]!.url).toBe(`/api/v1/devices/${UUID}/jobs/j%201/status`);
    expect(server.seen[0]!.headers['x-device-api-key']).toBe(KEY);
    expect(JSON.parse(server.seen[0]!.body)).toEqual(report);
  });

  it('a 200 row saying CANCELED means canceled, unless we sent CANCELED', async () => {
    const { client } = await setup(statusCloud((res) => sendJson(res, 200, { status: 'CANCELED' })), 'devices');
    expect(await client.sendStatus('j', report)).toBe('canceled');
    expect(await client.sendStatus('j', { ...report, status: 'CANCELED' })).toBe('accepted');
  });

  it('409 and 410 mean canceled', async () => {
    for (const status of [409, 410]) {
      const { client } = await setup(statusCloud((res) => sendJson(res, status, { error: 'Job canceled' }), 'agents'), 'agents');
      expect(await client.sendStatus('j', report)).toBe('canceled');
    }
  });

  it('404 "Job status not found" means gone', async () => {
    const { client } = await setup(statusCloud((res) => sendJson(res, 404, { error: 'Job status not found' }), 'agents'), 'agents');
    expect(await client.sendStatus('j', report)).toBe('gone');
  });

  it('400 is refused for good and the server body is logged', async () => {
    const { client, log } = await setup(statusCloud((res) => sendJson(res, 400, { error: 'status is required' })), 'devices');
    expect(await client.sendStatus('j-9', report)).toBe('refused');
    expect(log.entries.filter((e) => e.level === 'warn').map((e) => [e.message, e.fields.jobId])).toEqual([
      ['the server refused the SUCCEEDED report of job j-9 (400: status is required); not retrying it', 'j-9'],
    ]);
  });

  it('a 400 that is not the API\'s own JSON refusal throws so the report is retried', async () => {
    const html = '<html><head><title>400 Bad Request</title></head><body>captive portal</body></html>';
    const answers: [string, (res: http.ServerResponse) => void][] = [
      ['an HTML page titled "400 Bad Request"', (res) => {
        res.writeHead(400, { 'content-type': 'text/html' });
        res.end(html);
      }],
      ['', (res) => {
        res.writeHead(400);
        res.end();
      }],
      ['Bad Request: Invalid JSON body', (res) => sendJson(res, 400, { error: 'Bad Request', message: 'Invalid JSON body' })],
    ];
    for (const [said, answer] of answers) {
      const { client } = await setup(statusCloud(answer), 'devices');
      const error = await failure(client.sendStatus('j', report));
      expect([error.kind, error.status, error.serverMessage]).toEqual(['protocol', 400, said]);
    }
  });

  it('413 means too large: the caller sends it smaller', async () => {
    const { client } = await setup(statusCloud((res) => sendJson(res, 413, { error: 'Payload Too Large' })), 'devices');
    expect(await client.sendStatus('j', report)).toBe('too-large');
  });

  it('an unknown 4xx throws so the report is retried', async () => {
    const { client } = await setup(statusCloud((res) => sendJson(res, 422, { error: 'Unprocessable' })), 'devices');
    const error = await failure(client.sendStatus('j', report));
    expect([error.kind, error.status]).toEqual(['protocol', 422]);
  });

  it('5xx and 429 throw so the report is retried', async () => {
    const { client } = await setup(statusCloud((res) => sendJson(res, 502, { error: 'bad gateway' })), 'devices');
    const error = await failure(client.sendStatus('j', report));
    expect([error.kind, error.status]).toEqual(['server', 502]);
  });

  it('auto: a route 404 on PATCH switches generation', async () => {
    const { server, client } = await setup(statusCloud((res) => sendJson(res, 200, { status: 'SUCCEEDED' }), 'devices'));
    expect(await client.sendStatus('j', report)).toBe('accepted');
    expect(client.generation()).toBe('devices');
    expect(server.seen.map((r) => r.url)).toEqual([
      `/api/v1/agents/${UUID}/jobs/j/status`,
      `/api/v1/devices/${UUID}/jobs/j/status`,
    ]);
  });
});
