// The poll loop of the built executable against the reference cloud: both
// path generations and their detection, the two "no job" forms, jitter,
// back-to-back draining, failure backoff, Retry-After and the "not transient"
// errors (issue 2, "Done when").
import { randomBytes, randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { ApiGeneration } from '../../src/contract/types.js';
import type { RequestRecord } from '../cloud/reference-cloud.js';
import { commandJob, runCommand, waitFor } from './harness.js';
import { createScope, expectCleanStop, expectOneFinal, logLines, parseLoggedDelay, pollRetryDelays, unexpectedWarnings } from './polling-helpers.js';

const scope = createScope();
afterEach(() => scope.cleanup());

const nextRoute = (g: ApiGeneration): string => `GET /${g}/:uuid/jobs/next`;
const statusRoute = (g: ApiGeneration): string => `PATCH /${g}/:uuid/jobs/:jobId/status`;
const jobGets = (requests: RequestRecord[], generation: ApiGeneration = 'devices'): RequestRecord[] =>
  requests.filter((r) => r.method === 'GET' && r.path.startsWith(`/api/v1/${generation}/`) && /\/jobs\/next$/.test(r.path));

describe('path generations', () => {
  const cases: { server: ApiGeneration; configured: 'auto' | ApiGeneration }[] = [
    { server: 'devices', configured: 'devices' },
    { server: 'agents', configured: 'agents' },
    { server: 'devices', configured: 'auto' },
    { server: 'agents', configured: 'auto' },
  ];
  it.each(cases)('a $server server with api_generation=$configured: only its paths are used after detection', async ({ server, configured }) => {
    const { cloud, device } = await scope.cloud({ generation: server });
    const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: configured } });
    const agent = scope.agent(dirs);
    // a few idle polls first: the generation's own "no job" answer must be taken as idle
    await cloud.waitFor((c) => (c.requestCounts()[nextRoute(server)] ?? 0) >= 3, 15_000, `3 polls on ${server} paths`);
    const job = cloud.queueJob(device.uuid, { name: 'gen', document: commandJob(['echo', `hello ${server}`]) });
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 15_000);
    const status = await runCommand(['--config', dirs.configFile, 'status', '--json']);
    expect(status.code).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ generation: server, polling: true });
    const output = await expectCleanStop(agent);

    const requests = cloud.requests();
    const other: ApiGeneration = server === 'devices' ? 'agents' : 'devices';
    const answered = jobGets(requests, server);
    // the "no job" answers were the contract's: 200 on devices, 404 on agents; none was a warning
    expect(answered.filter((r) => r.status !== 200).every((r) => r.status === (server === 'devices' ? 200 : 404))).toBe(true);
    expect(answered.filter((r) => r.status === (server === 'devices' ? 200 : 404)).length).toBeGreaterThanOrEqual(4);
    expect(unexpectedWarnings(output)).toEqual([]);
    expect(cloud.patches(job.job_id).every((p) => p.path.startsWith(`/api/v1/${server}/${device.uuid}/jobs/`))).toBe(true);
    expect(cloud.requestCounts()[statusRoute(server)]).toBe(cloud.patches(job.job_id).length);
    const probes = requests.filter((r) => r.path.startsWith(`/api/v1/${other}/`));
    if (configured === 'auto' && server === 'devices') {
      // auto tries agents first: exactly one miss, answered as an unknown route, before the devices path
      expect(probes).toHaveLength(1);
      expect(probes[0]).toMatchObject({ method: 'GET', path: `/api/v1/agents/${device.uuid}/jobs/next`, route: 'unknown', status: 404 });
      expect(requests[0]?.seq).toBe(probes[0]?.seq);
      expect(requests[1]).toMatchObject({ route: nextRoute('devices') });
    } else {
      expect(probes).toEqual([]);
    }
    const detected = logLines(output, 'INFO', /cloud API generation detected/);
    expect(detected).toHaveLength(configured === 'auto' ? 1 : 0);
    if (configured === 'auto') expect(detected[0]).toContain(`cloud API generation detected: ${server}`);
  });
});

describe('no job', () => {
  it.each(['devices', 'agents'] as const)('204 No Content from a %s server is "no job"', async (generation) => {
    const { cloud, device } = await scope.cloud({ generation, noJobAnswer: '204' });
    const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: 'auto' } });
    const agent = scope.agent(dirs);
    await cloud.waitFor((c) => jobGets(c.requests(), generation).filter((r) => r.status === 204).length >= 3, 15_000, 'three 204 answers');
    // 204 says nothing about the generation; the agent stays on it (no fallback to the other one)
    const job = cloud.queueJob(device.uuid, { name: 'after 204', document: commandJob(['true']) });
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 15_000);
    const output = await expectCleanStop(agent);
    expect(unexpectedWarnings(output)).toEqual([]);
    expect(logLines(output, 'DEBUG', /no pending job; polling again in \d+ms/).length).toBeGreaterThanOrEqual(3);
    const misses = cloud.requests().filter((r) => r.route === 'unknown');
    expect(misses.length).toBe(generation === 'devices' ? 1 : 0);
  });
});

describe('schedule', () => {
  it('idle waits lie within interval*(1±jitter), and the cloud saw no poll earlier than that', async () => {
    const scale = 20;
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    const dirs = await scope.dirs(cloud, device, { polling: { interval: '10s', jitter: '30%' } });
    const agent = scope.agent(dirs, { CLOUDJOBS_TEST_TIME_SCALE: String(scale) });
    await agent.waitForOutput(/(no pending job; polling again in \d+ms[\s\S]*){10}/, 30_000);
    const gets = jobGets(cloud.requests());
    await expectCleanStop(agent);
    const delays = logLines(agent.output(), 'DEBUG', /no pending job; polling again in/).map((line) =>
      Number(/polling again in (\d+)ms/.exec(line)?.[1]),
    );
    expect(delays.length).toBeGreaterThanOrEqual(10);
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(7000);
      expect(d).toBeLessThanOrEqual(13000);
    }
    // jitter spreads: ten draws from 7..13 s are not all the same
    expect(new Set(delays).size).toBeGreaterThan(1);
    // the i-th logged wait separates poll i and poll i+1 (cloud time is real time: scale it)
    for (let i = 0; i + 1 < gets.length && i < delays.length; i += 1) {
      const gap = ((gets[i + 1] as RequestRecord).at - (gets[i] as RequestRecord).at) * scale;
      expect(gap, `gap after poll ${i + 1}`).toBeGreaterThanOrEqual((delays[i] as number) - 2 * scale);
    }
  });

  it('a queue of 10 jobs drains back to back: all done long before one 30 s interval', async () => {
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    const jobs = cloud.queueJobs(device.uuid, 10, { name: 'drain', document: commandJob(['true']) });
    const dirs = await scope.dirs(cloud, device, { polling: { interval: '30s', jitter: '10%' } });
    const agent = scope.agent(dirs);
    // budget: less than the shortest single idle wait (27 s), so no interval can have been waited
    await cloud.waitFor((c) => c.listJobs(device.uuid).every((j) => j.status === 'SUCCEEDED'), 25_000, 'all 10 jobs SUCCEEDED');
    const gets = jobGets(cloud.requests());
    // 10 polls that got a job, at most one "no job" poll after them, and no second idle poll
    expect(gets.slice(0, 10).every((r) => r.status === 200)).toBe(true);
    expect(gets.length === 10 || gets.length === 11).toBe(true);
    const output = await expectCleanStop(agent);
    expect(logLines(output, 'DEBUG', /no pending job; polling again in/).length).toBeLessThanOrEqual(1);
    for (const job of jobs) expectOneFinal(cloud.patches(job.job_id), 'SUCCEEDED');
    // the jobs ran in queue order, one at a time
    const order = cloud
      .patches()
      .filter((p) => (p.body as { status?: string } | null)?.status === 'SUCCEEDED')
      .map((p) => p.jobId);
    expect(order).toEqual(jobs.map((j) => j.job_id));
  });
});

describe('failures', () => {
  it('repeated 500s back off 1s, 2s, 4s, ... with full jitter, capped by max_backoff, then polling recovers', async () => {
    const scale = 20;
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    cloud.injectFault({ kind: 'status', status: 500, times: 'always', match: '^GET .*/jobs/next$' });
    const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: 'devices' }, polling: { max_backoff: '16s' } });
    const agent = scope.agent(dirs, { CLOUDJOBS_TEST_TIME_SCALE: String(scale) });
    await cloud.waitFor((c) => jobGets(c.requests()).length >= 10, 30_000, '10 failed polls');
    cloud.clearFaults();
    const job = cloud.queueJob(device.uuid, { name: 'after 500s', document: commandJob(['true']) });
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 15_000);
    const output = await expectCleanStop(agent);

    const failed = jobGets(cloud.requests()).filter((r) => r.fault === 'status');
    const delays = pollRetryDelays(output).slice(0, failed.length);
    expect(delays.length).toBe(failed.length);
    const message = `the server failed to answer GET /devices/${device.uuid}/jobs/next (500: Internal Server Error)`;
    // one warning for the problem, then debug lines while it stays the same
    expect(logLines(output, 'WARN', /polling for jobs failed/)).toHaveLength(1);
    expect(logLines(output, 'WARN', /polling for jobs failed/)[0]).toContain(`polling for jobs failed: ${message}; retrying in `);
    expect(logLines(output, 'DEBUG', /polling for jobs failed again/).length).toBe(failed.length - 1);
    delays.forEach((d, i) => {
      const step = Math.min(1000 * 2 ** i, 16_000);
      expect(d, `delay after failure ${i + 1}`).toBeGreaterThanOrEqual(0);
      expect(d, `delay after failure ${i + 1}`).toBeLessThanOrEqual(step);
    });
    // the steps grow: from failure 5 on the step is the 16 s cap, so some wait is above the 2 s step
    expect(Math.max(...delays.slice(4))).toBeGreaterThan(2000);
    // no retry came earlier than the logged wait (rounded to whole seconds above 1 s)
    const gets = jobGets(cloud.requests());
    for (let i = 0; i < delays.length && i + 1 < gets.length; i += 1) {
      const gap = ((gets[i + 1] as RequestRecord).at - (gets[i] as RequestRecord).at) * scale;
      const d = delays[i] as number;
      expect(gap, `gap after failure ${i + 1}`).toBeGreaterThanOrEqual((d >= 1000 ? d - 500 : d) - 2 * scale);
    }
    expect(logLines(output, 'INFO', /the cloud answers again/)).toHaveLength(1);
  });

  it.each([
    { form: 'seconds' as const, kind: 'rate-limit' as const, status: 429, seconds: 2 },
    { form: 'date' as const, kind: 'rate-limit' as const, status: 429, seconds: 3 },
    { form: 'seconds' as const, kind: 'status' as const, status: 503, seconds: 2 },
  ])('$status with Retry-After as $form: no request before it', async ({ form, kind, status, seconds }) => {
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    cloud.injectFault({ kind, status, times: 1, retryAfterSeconds: seconds, retryAfterForm: form, match: '^GET .*/jobs/next$' });
    const job = cloud.queueJob(device.uuid, { name: 'after retry-after', document: commandJob(['true']) });
    const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: 'devices' } });
    const agent = scope.agent(dirs);
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 20_000);
    const output = await expectCleanStop(agent);
    const gets = jobGets(cloud.requests());
    expect(gets[0]).toMatchObject({ status, fault: kind });
    const limited = gets[0] as RequestRecord;
    const next = gets[1] as RequestRecord;
    // the header's moment: seconds after the answer, or the HTTP date (whole seconds)
    const notBefore = form === 'date' ? Math.floor((limited.at + seconds * 1000) / 1000) * 1000 : limited.at + seconds * 1000;
    expect(next.at).toBeGreaterThanOrEqual(notBefore);
    const warn = logLines(output, 'WARN', /polling for jobs failed/);
    expect(warn).toHaveLength(1);
    const said = status === 429 ? 'rate limited by the server (429: Too many requests: Rate limit exceeded, retry later)' : 'the server is unavailable (503: Internal Server Error)';
    expect(warn[0]).toContain(`polling for jobs failed: ${said}; the server asks to wait `);
    const delay = parseLoggedDelay(/retrying in (\S+)/.exec(warn[0] as string)?.[1] ?? '');
    // Retry-After above max_backoff (2s): exactly the server's wait, no spread on top
    expect(delay).toBeGreaterThanOrEqual((seconds - (form === 'date' ? 1 : 0)) * 1000);
    expect(delay).toBeLessThanOrEqual((seconds + (form === 'date' ? 1 : 0)) * 1000);
  });

  it('401, 403 and "Device not found" are logged once per change with the server\'s message and retried at max_backoff', async () => {
    const scale = 20;
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    cloud.setDeviceActive(device.uuid, false);
    const ini = { cloud: { api_generation: 'devices' }, polling: { max_backoff: '10s', jitter: '10%' } };
    const env = { CLOUDJOBS_TEST_TIME_SCALE: String(scale) };
    const main = scope.agent(await scope.dirs(cloud, device, ini), env);
    // a second device, so the wrong key is not first refused for the first device's inactivity
    const other = { uuid: randomUUID(), apiKey: randomBytes(32).toString('hex') };
    cloud.addDevice(other);
    const wrongKey = scope.agent(await scope.dirs(cloud, { uuid: other.uuid, apiKey: randomBytes(32).toString('hex') }, ini), env);
    const strangerUuid = randomUUID();
    const stranger = scope.agent(await scope.dirs(cloud, { uuid: strangerUuid, apiKey: device.apiKey }, ini), env);

    const answered = (status: number, uuid: string, text: RegExp): number =>
      cloud.requests().filter((r) => r.status === status && r.path.includes(uuid) && text.test(r.path)).length;
    await cloud.waitFor(() => answered(403, device.uuid, /next$/) >= 3, 30_000, 'three 403 answers');
    await cloud.waitFor(() => answered(401, other.uuid, /next$/) >= 3, 30_000, 'three 401 answers');
    await cloud.waitFor(() => answered(404, strangerUuid, /next$/) >= 3, 30_000, 'three "Device not found" answers');
    // a different refusal is a change: logged once more
    cloud.setDeviceActive(device.uuid, true);
    cloud.setRegistrationComplete(device.uuid, false);
    await main.waitForOutput(/ERROR polling for jobs failed: .*registration incomplete/, 20_000);
    await waitFor(() => logLines(main.output(), 'DEBUG', /failed again: .*registration incomplete/).length >= 2, 20_000, 'repeated refusals after the change');
    cloud.setRegistrationComplete(device.uuid, true);
    const job = cloud.queueJob(device.uuid, { name: 'after auth', document: commandJob(['true']) });
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 20_000);

    const outputs = {
      main: await expectCleanStop(main),
      wrongKey: await expectCleanStop(wrongKey),
      stranger: await expectCleanStop(stranger),
    };
    const warnings = (o: string): string[] => logLines(o, 'ERROR', /polling for jobs failed/);
    expect(warnings(outputs.main)).toEqual([
      expect.stringContaining(`polling for jobs failed: the server refused device ${device.uuid} (403: Forbidden: Device is inactive. Contact administrator.); ask the fleet administrator; retrying in `),
      expect.stringContaining(`polling for jobs failed: the server refused device ${device.uuid} (403: Forbidden: Device registration incomplete. Complete the key exchange before calling the API.); ask the fleet administrator; retrying in `),
    ]);
    expect(warnings(outputs.wrongKey)).toEqual([
      expect.stringContaining("polling for jobs failed: the server refused this device's API key (401: Unauthorized: Invalid device API key); check cloud.api_key or cloud.api_key_file"),
    ]);
    expect(warnings(outputs.stranger)).toEqual([
      expect.stringContaining(`polling for jobs failed: the server does not know device ${strangerUuid} (404: Not Found: Device not found); check device.uuid`),
    ]);
    // every retry waits max_backoff less at most the 10% jitter (the log rounds to whole seconds)
    for (const [name, output] of Object.entries(outputs)) {
      const delays = pollRetryDelays(output);
      expect(delays.length, name).toBeGreaterThanOrEqual(3);
      for (const d of delays) expect([9000, 10000], `${name} delay ${d}`).toContain(d);
      // the server's message reaches the log only in the warnings, the repeats are debug lines
      expect(logLines(output, 'DEBUG', /polling for jobs failed again/).length, name).toBe(delays.length - warnings(output).length);
    }
    expect(logLines(outputs.main, 'INFO', /the cloud answers again/)).toHaveLength(1);
  });
});
