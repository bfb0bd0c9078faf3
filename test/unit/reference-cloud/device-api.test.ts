import { afterEach, describe, expect, it } from 'vitest';
import { startReferenceCloud, type ReferenceCloud, type ReferenceCloudOptions } from '../../cloud/reference-cloud.js';
import { send } from './http-client.js';

const UUID = '8479359e-dbeb-4858-813c-e8a9008dde04';
const KEY = 'a'.repeat(64);
const DOC = { version: '1.0', includeStdOut: true, steps: [{ action: { name: 'Disk', type: 'runCommand', input: { command: 'df,-h' } } }] };

let cloud: ReferenceCloud | null = null;
afterEach(async () => {
  await cloud?.close();
  cloud = null;
});

async function start(options: ReferenceCloudOptions = {}): Promise<ReferenceCloud> {
  cloud = await startReferenceCloud({
    devices: [
      { uuid: UUID, apiKey: KEY },
      { uuid: 'inactive-1', apiKey: 'k-inactive', active: false },
      { uuid: 'incomplete-1', apiKey: 'k-incomplete', registrationComplete: false },
    ],
    ...options,
  });
  return cloud;
}

const auth = { 'X-Device-API-Key': KEY };

describe('reference cloud: authentication', () => {
  it('answers each test/cloud/CONTRACT.md auth error exactly', async () => {
    const c = await start();
    const next = (uuid: string, headers: Record<string, string>) => send(`${c.url}/devices/${uuid}/jobs/next`, { headers });

    const missing = await next(UUID, {});
    expect(missing.status).toBe(401);
    expect(missing.json()).toEqual({
      error: 'Unauthorized',
      message: 'Device API key required. Send in X-Device-API-Key header or Authorization: Bearer header.',
    });
    const invalid = await next(UUID, { 'X-Device-API-Key': 'wrong' });
    expect(invalid.status).toBe(401);
    expect(invalid.json()).toEqual({ error: 'Unauthorized', message: 'Invalid device API key' });
    const unknown = await next('no-such-device', auth);
    expect(unknown.status).toBe(404);
    expect(unknown.json()).toEqual({ error: 'Not Found', message: 'Device not found' });
    const inactive = await next('inactive-1', { 'X-Device-API-Key': 'k-inactive' });
    expect(inactive.status).toBe(403);
    expect(inactive.json()).toEqual({ error: 'Forbidden', message: 'Device is inactive. Contact administrator.' });
    const incomplete = await next('incomplete-1', { 'X-Device-API-Key': 'k-incomplete' });
    expect(incomplete.status).toBe(403);
    expect((incomplete.json() as { message: string }).message).toMatch(/^Device registration incomplete/);
    expect((incomplete.json() as { error: string }).error).toBe('Forbidden');
  });

  it('accepts Authorization: Bearer as well and logs which header was used', async () => {
    const c = await start();
    const res = await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: { Authorization: `Bearer ${KEY}` } });
    expect(res.status).toBe(200);
    await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth });
    expect(c.requests().map((r) => r.auth)).toEqual(['bearer', 'x-device-api-key']);
  });

  it('limits requests per key when a rate limit is configured', async () => {
    let now = Date.parse('2026-11-28T10:00:00.000Z');
    const c = await start({ deviceRateLimit: { max: 3, windowMs: 60_000 }, now: () => now });
    for (let i = 0; i < 3; i += 1) expect((await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth })).status).toBe(200);
    now += 15_000;
    const limited = await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth });
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('45');
    expect(limited.json()).toEqual({ error: 'Too many requests', message: 'Rate limit exceeded: 3 requests per 60s', retryAfter: 45 });
    // Another key has its own budget.
    c.addDevice({ uuid: 'second', apiKey: 'k-second' });
    expect((await send(`${c.url}/devices/second/jobs/next`, { headers: { 'X-Device-API-Key': 'k-second' } })).status).toBe(200);
    now += 45_000;
    expect((await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth })).status).toBe(200);
  });

  it('follows admin changes to the active flag', async () => {
    const c = await start();
    c.setDeviceActive(UUID, false);
    expect((await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth })).status).toBe(403);
    c.setDeviceActive(UUID, true);
    expect((await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth })).status).toBe(200);
  });
});

describe('reference cloud: next job', () => {
  it('answers "no job" per generation, and 204 when asked to', async () => {
    const c = await start();
    const devices = await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth });
    expect(devices.status).toBe(200);
    expect(devices.json()).toEqual({ message: 'No pending jobs' });
    c.setNoJobAnswer('204');
    const empty = await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth });
    expect(empty.status).toBe(204);
    expect(empty.text).toBe('');
    await c.close();

    const a = await start({ generation: 'agents' });
    const agents = await send(`${a.url}/agents/${UUID}/jobs/next`, { headers: auth });
    expect(agents.status).toBe(404);
    expect(agents.json()).toEqual({ error: 'No pending jobs' });
  });

  it('hands jobs out oldest first and marks each IN_PROGRESS as it answers', async () => {
    const c = await start();
    const first = c.queueJob(UUID, { name: 'First', document: DOC, timeoutSeconds: 300 });
    const second = c.queueJob(UUID, { name: 'Second', document: DOC });
    expect(c.getJob(first.job_id)?.status).toBe('QUEUED');

    const one = await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth });
    expect(one.status).toBe(200);
    expect(one.json()).toEqual({
      job_id: first.job_id,
      job_name: 'First',
      timeout_seconds: 300,
      created_at: first.created_at,
      job_document: DOC,
    });
    expect(c.getJob(first.job_id)?.status).toBe('IN_PROGRESS');
    expect(c.getJob(second.job_id)?.status).toBe('QUEUED');

    // Generation `devices` omits timeout_seconds when the job has none.
    const two = await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth });
    expect(Object.keys(two.json() as object)).toEqual(['job_id', 'job_name', 'created_at', 'job_document']);
    expect(c.getJob(second.job_id)?.status).toBe('IN_PROGRESS');

    expect((await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth })).json()).toEqual({ message: 'No pending jobs' });
  });

  it('always sends timeout_seconds 3600 in generation agents, and can send the document as a string', async () => {
    const c = await start({ generation: 'agents' });
    const job = c.queueJob(UUID, { name: 'Str', document: DOC, documentAsString: true });
    const res = await send(`${c.url}/agents/${UUID}/jobs/next`, { headers: auth });
    const offer = res.json() as Record<string, unknown>;
    expect(offer.job_id).toBe(job.job_id);
    expect(offer.timeout_seconds).toBe(3600);
    expect(offer.job_document).toBe(JSON.stringify(DOC));
  });

  it('never gives one device the jobs of another', async () => {
    const c = await start();
    c.addDevice({ uuid: 'other', apiKey: 'k-other' });
    c.queueJob('other', { name: 'Theirs', document: DOC });
    const res = await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth });
    expect(res.json()).toEqual({ message: 'No pending jobs' });
  });
});

describe('reference cloud: status PATCH', () => {
  async function started(c: ReferenceCloud): Promise<string> {
    const job = c.queueJob(UUID, { name: 'J', document: DOC });
    await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth });
    return job.job_id;
  }
  const patch = (c: ReferenceCloud, jobId: string, json: unknown) =>
    send(`${c.url}/devices/${UUID}/jobs/${jobId}/status`, { method: 'PATCH', headers: auth, json });

  it('overwrites every column on every PATCH: a field left out becomes null', async () => {
    const c = await start();
    const jobId = await started(c);
    const full = {
      status: 'SUCCEEDED',
      exit_code: 0,
      stdout: 'out',
      stderr: '',
      reason: '1 of 1 steps succeeded',
      executed_steps: 1,
      failed_step: null,
      status_details: { steps: 1 },
    };
    const first = await patch(c, jobId, full);
    expect(first.status).toBe(200);
    expect(first.json()).toMatchObject({ job_id: jobId, device_uuid: UUID, ...full });
    expect(c.getJob(jobId)).toMatchObject(full);

    const partial = await patch(c, jobId, { status: 'FAILED', stderr: 'boom' });
    expect(partial.status).toBe(200);
    expect(c.getJob(jobId)).toMatchObject({
      status: 'FAILED',
      exit_code: null,
      stdout: null,
      stderr: 'boom',
      reason: null,
      executed_steps: null,
      failed_step: null,
      status_details: null,
    });
    // No transition checks: the last PATCH wins, even back to IN_PROGRESS.
    expect((await patch(c, jobId, { status: 'IN_PROGRESS' })).status).toBe(200);
    expect(c.getJob(jobId)?.status).toBe('IN_PROGRESS');
    expect(c.getJob(jobId)?.completed_at).toBeNull();
  });

  it('waits for a job to reach a status', async () => {
    const c = await start();
    const jobId = await started(c);
    const waiting = c.waitForJobStatus(jobId);
    await patch(c, jobId, { status: 'IN_PROGRESS' });
    await patch(c, jobId, { status: 'TIMED_OUT', reason: 'timeout' });
    expect(await waiting).toMatchObject({ job_id: jobId, status: 'TIMED_OUT', reason: 'timeout' });
    const late = c.waitForJobStatus(jobId, 'SUCCEEDED', 1000);
    await patch(c, jobId, { status: 'FAILED' });
    await expect(late).rejects.toThrow(`timed out after 1000 ms waiting for job ${jobId} to reach SUCCEEDED (now FAILED)`);
    await expect(c.waitForJobStatus(jobId, 'SUCCEEDED', 50)).rejects.toThrow(`timed out after 50 ms waiting for job ${jobId} to reach SUCCEEDED (now FAILED)`);
  });

  it('records every PATCH in order with the body as received and the answer given', async () => {
    const c = await start();
    const jobId = await started(c);
    await patch(c, jobId, { status: 'IN_PROGRESS', executed_steps: 0 });
    await patch(c, jobId, { exit_code: 1 });
    await patch(c, 'no-such-job', { status: 'FAILED' });
    const seen = c.patches();
    expect(seen.map((p) => [p.jobId, p.answer, p.body])).toEqual([
      [jobId, 200, { status: 'IN_PROGRESS', executed_steps: 0 }],
      [jobId, 400, { exit_code: 1 }],
      ['no-such-job', 404, { status: 'FAILED' }],
    ]);
    expect(seen[0]?.rawBody).toBe('{"status":"IN_PROGRESS","executed_steps":0}');
    expect(seen.map((p) => p.seq)).toEqual([1, 2, 3]);
    expect(c.patches(jobId)).toHaveLength(2);
  });

  it('answers 400 "status is required" and 404 "Job status not found" exactly', async () => {
    const c = await start();
    const jobId = await started(c);
    const missing = await patch(c, jobId, { exit_code: 0 });
    expect(missing.status).toBe(400);
    expect(missing.json()).toEqual({ error: 'status is required' });
    // Without a JSON content type express.json() leaves the body empty.
    const plain = await send(`${c.url}/devices/${UUID}/jobs/${jobId}/status`, {
      method: 'PATCH',
      headers: { ...auth, 'Content-Type': 'text/plain' },
      body: '{"status":"SUCCEEDED"}',
    });
    expect(plain.status).toBe(400);
    expect(plain.json()).toEqual({ error: 'status is required' });

    const unknown = await patch(c, 'd0d0d0d0-0000-4000-8000-000000000000', { status: 'SUCCEEDED' });
    expect(unknown.status).toBe(404);
    expect(unknown.json()).toEqual({ error: 'Job status not found' });

    c.deleteJob(jobId);
    const deleted = await patch(c, jobId, { status: 'SUCCEEDED' });
    expect(deleted.status).toBe(404);
    expect(deleted.json()).toEqual({ error: 'Job status not found' });
  });

  it('rejects values the database columns would reject with a 500', async () => {
    const c = await start();
    const jobId = await started(c);
    const cases: [unknown, string][] = [
      [{ status: 'DONE' }, 'invalid input value for enum job_status: "DONE"'],
      [{ status: 'FAILED', exit_code: '1' }, 'invalid input syntax for type integer: "1" (column exit_code)'],
      [{ status: 'FAILED', failed_step: 'x'.repeat(256) }, 'value too long for type character varying(255) (column failed_step)'],
      [{ status: 'FAILED', status_details: [1] }, 'column status_details must be a JSON object'],
    ];
    for (const [body, message] of cases) {
      const res = await patch(c, jobId, body);
      expect(res.status).toBe(500);
      expect(res.json()).toEqual({ error: 'Failed to update job status', message });
    }
    expect(c.getJob(jobId)?.status).toBe('IN_PROGRESS');
  });

  it('checks auth on PATCH like on every device route', async () => {
    const c = await start();
    const jobId = await started(c);
    const res = await send(`${c.url}/devices/${UUID}/jobs/${jobId}/status`, { method: 'PATCH', json: { status: 'SUCCEEDED' } });
    expect(res.status).toBe(401);
    expect(c.patches().map((p) => p.answer)).toEqual([401]);
    expect(c.getJob(jobId)?.status).toBe('IN_PROGRESS');
  });

  it('cancel extension off: a canceled job is overwritten by the next PATCH like on the real server', async () => {
    const c = await start();
    const jobId = await started(c);
    expect(c.cancelJob(jobId).status).toBe('CANCELED');
    const res = await patch(c, jobId, { status: 'SUCCEEDED' });
    expect(res.status).toBe(200);
    expect(c.getJob(jobId)?.status).toBe('SUCCEEDED');
  });

  it.each([
    ['409', 409, { error: 'Conflict', message: 'Job was canceled by the server' }],
    ['410', 410, { error: 'Gone', message: 'Job was canceled by the server' }],
  ] as const)('cancel extension %s: refuses progress for a canceled job, accepts a final CANCELED', async (mode, status, body) => {
    const c = await start({ cancelMode: mode });
    const jobId = await started(c);
    c.cancelJob(jobId);
    const refused = await patch(c, jobId, { status: 'IN_PROGRESS', executed_steps: 1 });
    expect(refused.status).toBe(status);
    expect(refused.json()).toEqual(body);
    expect(c.getJob(jobId)).toMatchObject({ status: 'CANCELED', executed_steps: null });
    const final = await patch(c, jobId, { status: 'CANCELED', reason: 'canceled by server' });
    expect(final.status).toBe(200);
    expect(c.getJob(jobId)).toMatchObject({ status: 'CANCELED', reason: 'canceled by server' });
  });

  it('cancel extension 200-canceled: applies the PATCH but answers and keeps status CANCELED', async () => {
    const c = await start({ cancelMode: '200-canceled' });
    const jobId = await started(c);
    c.cancelJob(jobId);
    const res = await patch(c, jobId, { status: 'IN_PROGRESS', executed_steps: 2 });
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ job_id: jobId, status: 'CANCELED', executed_steps: 2 });
  });

  it('answers 413 for a body over 16 MiB', async () => {
    const c = await start({ maxBodyBytes: 1024 });
    const jobId = await started(c);
    const res = await patch(c, jobId, { status: 'SUCCEEDED', stdout: 'x'.repeat(2000) });
    expect(res.status).toBe(413);
  });
});

describe('reference cloud: routes', () => {
  it('answers unknown routes in each generation\'s shape, including the other generation\'s paths', async () => {
    const c = await start();
    const wrongGen = await send(`${c.url}/agents/${UUID}/jobs/next`, { headers: auth });
    expect(wrongGen.status).toBe(404);
    expect(wrongGen.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(wrongGen.text).toContain(`<pre>Cannot GET /api/v1/agents/${UUID}/jobs/next</pre>`);
    await c.close();

    const a = await start({ generation: 'agents' });
    const other = await send(`${a.url}/devices/${UUID}/jobs/next`, { headers: auth });
    expect(other.status).toBe(404);
    const body = other.json() as Record<string, unknown>;
    expect(body.error).toBe('Not found');
    expect(body.message).toBe(`Route GET /api/v1/devices/${UUID}/jobs/next not found`);
    const register = await send(`${a.url}/device/register`, { method: 'POST', json: {} });
    expect(register.status).toBe(404);
    expect((register.json() as Record<string, unknown>).message).toBe('Route POST /api/v1/device/register not found');
  });

  it('counts requests per route template', async () => {
    const c = await start();
    await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth });
    await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth });
    await send(`${c.url}/devices/${UUID}/jobs/x/status`, { method: 'PATCH', headers: auth, json: { status: 'FAILED' } });
    await send(`${c.origin}/elsewhere`);
    expect(c.requestCounts()).toEqual({
      'GET /devices/:uuid/jobs/next': 2,
      'PATCH /devices/:uuid/jobs/:jobId/status': 1,
      unknown: 1,
    });
    expect(c.requests().map((r) => r.status)).toEqual([200, 200, 404, 404]);
  });

  it('reset forgets jobs, PATCHes, requests and faults but keeps the seeded devices', async () => {
    const c = await start();
    c.queueJob(UUID, { name: 'J', document: DOC });
    c.injectFault({ kind: 'status', times: 'always' });
    await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth });
    c.reset();
    expect(c.listJobs()).toEqual([]);
    expect(c.requests()).toEqual([]);
    expect(c.listFaults()).toEqual([]);
    const res = await send(`${c.url}/devices/${UUID}/jobs/next`, { headers: auth });
    expect(res.json()).toEqual({ message: 'No pending jobs' });
  });
});
