import { afterEach, describe, expect, it } from 'vitest';
import { startReferenceCloud, type ReferenceCloud, type ReferenceCloudOptions } from '../../cloud/reference-cloud.js';
import { send } from './http-client.js';

const UUID = 'c0ffee00-0000-4000-8000-000000000001';
const KEY = 'k'.repeat(64);
const auth = { 'X-Device-API-Key': KEY };
const DOC = { version: '1.0', steps: [{ action: { name: 'True', type: 'runCommand', input: { command: 'true' } } }] };

let cloud: ReferenceCloud | null = null;
afterEach(async () => {
  await cloud?.close();
  cloud = null;
});

async function start(options: ReferenceCloudOptions = {}): Promise<ReferenceCloud> {
  cloud = await startReferenceCloud({ devices: [{ uuid: UUID, apiKey: KEY }], ...options });
  return cloud;
}

const next = (c: ReferenceCloud) => send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth });

function errorCode(error: unknown): string {
  return (error as { code?: string }).code ?? (error as Error).name;
}

describe('reference cloud: fault injection', () => {
  it('answers the next N matching requests with a 5xx, then normally again', async () => {
    const c = await start();
    c.injectFault({ kind: 'status', status: 503, times: 2, match: '^PATCH ' });
    expect((await next(c)).status).toBe(200);
    const patch = () => send(`${c.url}/devices/${UUID}/jobs/j/status`, { method: 'PATCH', headers: auth, json: { status: 'FAILED' } });
    const first = await patch();
    expect(first.status).toBe(503);
    expect(first.json()).toEqual({ error: 'Internal Server Error' });
    expect((await patch()).status).toBe(503);
    expect((await patch()).status).toBe(404);
    expect(c.listFaults()).toEqual([]);
    expect(c.requests().map((r) => [r.route, r.fault, r.status])).toEqual([
      ['GET /devices/:uuid/jobs/next', null, 200],
      ['PATCH /devices/:uuid/jobs/:jobId/status', 'status', 503],
      ['PATCH /devices/:uuid/jobs/:jobId/status', 'status', 503],
      ['PATCH /devices/:uuid/jobs/:jobId/status', null, 404],
    ]);
  });

  it('loses the answer after doing the work: the job is IN_PROGRESS but the client never hears of it', async () => {
    const c = await start();
    const job = c.queueJob(UUID, { name: 'Lost', document: DOC });
    c.injectFault({ kind: 'lose-answer', match: 'jobs/next$' });
    const error = await next(c).then(
      () => null,
      (e: unknown) => e,
    );
    expect(errorCode(error)).toBe('ECONNRESET');
    expect(c.getJob(job.job_id)?.status).toBe('IN_PROGRESS');
    expect((await next(c)).json()).toEqual({ message: 'No pending jobs' });

    c.injectFault({ kind: 'lose-answer' });
    const lost = await send(`${c.url}/devices/${UUID}/jobs/${job.job_id}/status`, { method: 'PATCH', headers: auth, json: { status: 'SUCCEEDED' } }).then(
      () => null,
      (e: unknown) => errorCode(e),
    );
    expect(lost).toBe('ECONNRESET');
    expect(c.getJob(job.job_id)?.status).toBe('SUCCEEDED');
    expect(c.patches().map((p) => [p.answer, p.answerLost])).toEqual([[200, true]]);
  });

  it('can add Retry-After to a 503', async () => {
    const c = await start();
    c.injectFault({ kind: 'status', status: 503, retryAfterSeconds: 4, body: { error: 'Service Unavailable' } });
    const res = await next(c);
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('4');
    expect(res.json()).toEqual({ error: 'Service Unavailable' });
  });

  it('keeps an "always" fault until cleared', async () => {
    const c = await start();
    c.injectFault({ kind: 'status', status: 500, times: 'always' });
    for (let i = 0; i < 3; i += 1) expect((await next(c)).status).toBe(500);
    expect(c.listFaults()).toEqual([{ id: 1, spec: { kind: 'status', status: 500, times: 'always' }, remaining: 'always', used: 3 }]);
    c.clearFaults();
    expect((await next(c)).status).toBe(200);
  });

  it('answers 429 with Retry-After in seconds, as an HTTP date, or without the header', async () => {
    const now = Date.parse('2026-11-28T10:00:00.000Z');
    const c = await start({ now: () => now });
    c.injectFault({ kind: 'rate-limit', retryAfterSeconds: 7 });
    c.injectFault({ kind: 'rate-limit', retryAfterSeconds: 30, retryAfterForm: 'date' });
    c.injectFault({ kind: 'rate-limit', retryAfterSeconds: 2, retryAfterForm: 'none' });
    const seconds = await next(c);
    expect(seconds.status).toBe(429);
    expect(seconds.headers['retry-after']).toBe('7');
    expect(seconds.json()).toEqual({ error: 'Too many requests', message: 'Rate limit exceeded, retry later', retryAfter: 7 });
    const date = await next(c);
    expect(date.status).toBe(429);
    expect(date.headers['retry-after']).toBe('Sat, 28 Nov 2026 10:00:30 GMT');
    const none = await next(c);
    expect(none.status).toBe(429);
    expect(none.headers['retry-after']).toBeUndefined();
    expect((none.json() as { retryAfter: number }).retryAfter).toBe(2);
  });

  it('drops the connection without an answer', async () => {
    const c = await start();
    c.injectFault({ kind: 'drop' });
    const error = await next(c).then(
      () => null,
      (e: unknown) => e,
    );
    expect(errorCode(error)).toBe('ECONNRESET');
    expect(c.requests()[0]).toMatchObject({ fault: 'drop', status: 0 });
    expect((await next(c)).status).toBe(200);
  });

  it('hangs: accepts the request and never answers', async () => {
    const c = await start();
    c.injectFault({ kind: 'hang' });
    const pending = next(c).then(
      () => 'answered',
      (e: unknown) => errorCode(e),
    );
    await c.waitFor((cc) => cc.requests().length === 1, 5000, 'the hanging request');
    expect((await next(c)).status).toBe(200);
    await c.close();
    expect(await pending).toBe('ECONNRESET');
  });

  it('answers a slow request normally after its delay', async () => {
    const c = await start();
    c.queueJob(UUID, { name: 'Slow', document: DOC });
    c.injectFault({ kind: 'slow', delayMs: 50 });
    const res = await next(c);
    expect(res.status).toBe(200);
    expect((res.json() as { job_name: string }).job_name).toBe('Slow');
    expect(c.requests()[0]).toMatchObject({ fault: 'slow', status: 200, route: 'GET /devices/:uuid/jobs/next' });
  });

  it('leaves no timer running after close, even with a slow answer pending', async () => {
    const timeoutsBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const c = await start();
    c.injectFault({ kind: 'slow', delayMs: 60_000 });
    const pending = next(c).then(
      () => 'answered',
      (e: unknown) => errorCode(e),
    );
    await c.waitFor((cc) => cc.requests().length === 1, 5000, 'the slow request');
    await c.close();
    expect(await pending).toBe('ECONNRESET');
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBeLessThanOrEqual(timeoutsBefore);
  });

  it('sends each kind of garbage body', async () => {
    const c = await start();
    c.injectFault({ kind: 'html' });
    const html = await next(c);
    expect(html.status).toBe(502);
    expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(html.text).toContain('<h1>502 Bad Gateway</h1>');

    c.injectFault({ kind: 'html', status: 200 });
    expect((await next(c)).status).toBe(200);
    c.injectFault({ kind: 'html', status: 400 });
    const portal = await next(c);
    expect(portal.status).toBe(400);
    expect(portal.text).toContain('<title>400 Bad Request</title>');

    c.injectFault({ kind: 'truncated-json' });
    const truncated = await next(c);
    expect(truncated.status).toBe(200);
    expect(truncated.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(() => truncated.json()).toThrow(SyntaxError);

    c.injectFault({ kind: 'wrong-shape' });
    const wrong = await next(c);
    expect(wrong.json()).toEqual([{ id: 42, name: 'not a job offer' }]);

    c.injectFault({ kind: 'job-without-id' });
    const noId = (await next(c)).json() as Record<string, unknown>;
    expect(noId.job_id).toBeUndefined();
    expect(noId.job_name).toBe('Job without id');
    expect(noId.job_document).toEqual({ version: '1.0', steps: [{ action: { name: 'noop', type: 'runCommand', input: { command: 'true' } } }] });

    c.injectFault({ kind: 'redirect-loop' });
    const redirect = await next(c);
    expect(redirect.status).toBe(302);
    expect(redirect.headers.location).toBe(`/api/v1/devices/${UUID}/jobs/next`);
  });

  it('sends a 50 MiB body', async () => {
    const c = await start();
    c.injectFault({ kind: 'huge' });
    const res = await next(c);
    expect(res.status).toBe(200);
    expect(res.headers['content-length']).toBe(String(50 * 1024 * 1024));
    expect(res.bytes).toBe(50 * 1024 * 1024);
    expect(res.text.startsWith('{"job_id":"huge","job_name":"huge","job_document":{"pad":"aaaa')).toBe(true);
  });

  it('rejects a fault it cannot apply', async () => {
    const c = await start();
    expect(() => c.injectFault({ kind: 'nonsense' as 'drop' })).toThrow(/fault kind must be one of status, rate-limit/);
    expect(() => c.injectFault({ kind: 'drop', times: 0 })).toThrow('reference cloud: times must be a positive integer or "always", got 0');
    expect(() => c.injectFault({ kind: 'drop', match: '(' })).toThrow('reference cloud: match is not a valid regular expression: (');
  });
});

describe('reference cloud: down and up', () => {
  it('closes the listener entirely and comes back on the same port with its state', async () => {
    const c = await start();
    const job = c.queueJob(UUID, { name: 'Survives', document: DOC });
    await c.down();
    expect(c.isUp()).toBe(false);
    const refused = await next(c).then(
      () => null,
      (e: unknown) => errorCode(e),
    );
    expect(refused).toBe('ECONNREFUSED');
    await c.up();
    expect(c.isUp()).toBe(true);
    const res = await next(c);
    expect(res.status).toBe(200);
    expect((res.json() as { job_id: string }).job_id).toBe(job.job_id);
    expect(new URL(c.url).port).toBe(String(c.port));
  });

  it('cuts open connections when it goes down', async () => {
    const c = await start();
    c.injectFault({ kind: 'hang' });
    const pending = next(c).then(
      () => 'answered',
      (e: unknown) => errorCode(e),
    );
    await c.waitFor((cc) => cc.requests().length === 1, 5000, 'the hanging request');
    await c.down();
    expect(await pending).toBe('ECONNRESET');
    await c.up();
    expect((await next(c)).status).toBe(200);
  });
});

describe('reference cloud: admin HTTP API', () => {
  it('queues jobs, reads PATCHes, counts requests and injects faults over HTTP', async () => {
    const c = await start();
    const queued = await send(`${c.adminUrl}/devices/${UUID}/jobs`, { method: 'POST', json: { name: 'Over HTTP', document: DOC, timeout_seconds: 60 } });
    expect(queued.status).toBe(201);
    const jobId = (queued.json() as { job_id: string }).job_id;
    const batch = await send(`${c.adminUrl}/devices/${UUID}/jobs`, { method: 'POST', json: { name: 'Batch', document: DOC, count: 3 } });
    expect((batch.json() as { jobs: { job_name: string }[] }).jobs.map((j) => j.job_name)).toEqual(['Batch #1', 'Batch #2', 'Batch #3']);

    const offer = await next(c);
    expect((offer.json() as { job_id: string; timeout_seconds: number }).timeout_seconds).toBe(60);
    await send(`${c.url}/devices/${UUID}/jobs/${jobId}/status`, { method: 'PATCH', headers: auth, json: { status: 'SUCCEEDED', exit_code: 0 } });

    const patches = (await send(`${c.adminUrl}/patches?jobId=${jobId}`)).json() as { patches: { body: unknown; answer: number }[] };
    expect(patches.patches.map((p) => [p.body, p.answer])).toEqual([[{ status: 'SUCCEEDED', exit_code: 0 }, 200]]);
    const row = (await send(`${c.adminUrl}/jobs/${jobId}`)).json() as { status: string; exit_code: number; stdout: null };
    expect(row).toMatchObject({ status: 'SUCCEEDED', exit_code: 0, stdout: null });
    const jobs = (await send(`${c.adminUrl}/jobs?uuid=${UUID}`)).json() as { jobs: { status: string }[] };
    expect(jobs.jobs.map((j) => j.status)).toEqual(['SUCCEEDED', 'QUEUED', 'QUEUED', 'QUEUED']);
    expect((await send(`${c.adminUrl}/counts`)).json()).toEqual({
      counts: { 'GET /devices/:uuid/jobs/next': 1, 'PATCH /devices/:uuid/jobs/:jobId/status': 1 },
    });

    const fault = await send(`${c.adminUrl}/faults`, { method: 'POST', json: { kind: 'status', status: 502 } });
    expect(fault.status).toBe(201);
    expect((await next(c)).status).toBe(502);
    const badFault = await send(`${c.adminUrl}/faults`, { method: 'POST', json: { kind: 'explode' } });
    expect(badFault.status).toBe(400);

    const cancel = await send(`${c.adminUrl}/jobs/${jobId}/cancel`, { method: 'POST' });
    expect((cancel.json() as { status: string }).status).toBe('CANCELED');
    expect((await send(`${c.adminUrl}/jobs/${jobId}`, { method: 'DELETE' })).status).toBe(204);
    expect((await send(`${c.adminUrl}/jobs/${jobId}`)).status).toBe(404);
    expect((await send(`${c.adminUrl}/nothing-here`)).status).toBe(404);
  });

  it('goes down for a while over HTTP and comes back on the same port by itself', async () => {
    const c = await start();
    const down = await send(`${c.adminUrl}/down`, { method: 'POST', json: { ms: 200 } });
    expect(down.status).toBe(202);
    await c.waitFor((cc) => !cc.isUp(), 5000, 'the listener to close');
    await c.waitFor((cc) => cc.isUp(), 5000, 'the listener to come back');
    expect((await send(`${c.adminUrl}/health`)).json()).toEqual({ ok: true, generation: 'devices', url: c.url });
  });

  it('admin requests are neither counted nor subject to faults', async () => {
    const c = await start();
    c.injectFault({ kind: 'drop', times: 'always' });
    expect((await send(`${c.adminUrl}/health`)).status).toBe(200);
    expect(c.requestCounts()).toEqual({});
  });
});
