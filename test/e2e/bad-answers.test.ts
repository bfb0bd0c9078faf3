// Every bad server answer of issue 2 against the built executable: the agent
// logs one clear line, backs off, keeps polling, then runs a job normally, and
// exits 0 on SIGTERM with nothing unhandled in its output.
import { afterEach, describe, expect, it } from 'vitest';
import type { FaultSpec, RequestRecord } from '../cloud/reference-cloud.js';
import { commandJob, waitFor } from './harness.js';
import { createScope, expectCleanStop, expectOneFinal, logLines, pollRetryDelays, unexpectedWarnings } from './polling-helpers.js';

const scope = createScope();
afterEach(() => scope.cleanup());

const NEXT = '^GET .*/jobs/next$';

interface BadAnswer {
  name: string;
  fault: FaultSpec;
  /** What the one log line says after "polling for jobs failed: " (uuid replaced by UUID). */
  says: RegExp;
  requestTimeout?: string;
  /** Requests one poll makes against this answer (a redirect loop is followed MAX_REDIRECTS = 3 times). @default 1 */
  requestsPerPoll?: number;
}

const CASES: BadAnswer[] = [
  { name: 'an HTML error page', fault: { kind: 'html', status: 502 }, says: /^the server failed to answer GET \/devices\/UUID\/jobs\/next \(502: .*502 Bad Gateway.*\)$/ },
  { name: 'truncated JSON', fault: { kind: 'truncated-json' }, says: /^the server answered 200 with JSON that does not parse \(.*; 103 bytes\)$/ },
  { name: 'JSON of the wrong shape', fault: { kind: 'wrong-shape' }, says: /^the server answered 200 with a JSON array instead of a job object$/ },
  { name: 'a job without job_id', fault: { kind: 'job-without-id' }, says: /^the server answered 200 with a job without job_id \(keys: job_name, timeout_seconds, created_at, job_document\)$/ },
  { name: 'a 50 MiB body', fault: { kind: 'huge', bytes: 50 * 1024 * 1024 }, says: /^the server's answer from http:\/\/127\.0\.0\.1:\d+ is larger than the 17 MiB limit; not reading it$/ },
  { name: 'a redirect loop', fault: { kind: 'redirect-loop' }, says: /^redirect loop: http:\/\/127\.0\.0\.1:\d+ redirected more than 3 times/, requestsPerPoll: 4 },
  { name: 'a server that accepts the connection and never answers', fault: { kind: 'hang' }, says: /^timeout: .* within 1s \(cloud\.request_timeout\)$/, requestTimeout: '1s' },
  { name: 'a dropped connection', fault: { kind: 'drop' }, says: /^the connection to http:\/\/127\.0\.0\.1:\d+ closed before the answer was complete \(ECONNRESET\)$/ },
  { name: 'an answer slower than request_timeout', fault: { kind: 'slow', delayMs: 2500 }, says: /^timeout: .* within 1s \(cloud\.request_timeout\)$/, requestTimeout: '1s' },
];

describe('bad answers to GET jobs/next', () => {
  it.each(CASES)('$name: one clear line, backoff, polling goes on, a job then runs', async ({ fault, says, requestTimeout, requestsPerPoll = 1 }) => {
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    cloud.injectFault({ ...fault, times: 2 * requestsPerPoll, match: NEXT });
    const dirs = await scope.dirs(cloud, device, {
      cloud: { api_generation: 'devices', ...(requestTimeout ? { request_timeout: requestTimeout } : {}) },
    });
    const agent = scope.agent(dirs);
    await waitFor(() => pollRetryDelays(agent.output()).length >= 2, 30_000, () => `two failed polls\n${agent.output().slice(-3000)}`);
    await cloud.waitFor((c) => c.listFaults().length === 0, 10_000, 'faults used up');
    // a slow answer would still be routed after its delay if the agent had not hung up: let that moment pass
    const lastSlow = Math.max(0, ...cloud.requests().filter((r) => r.fault === 'slow').map((r) => r.at));
    if (lastSlow > 0) await waitFor(() => Date.now() > lastSlow + (fault.delayMs ?? 1000) + 200, 10_000, 'slow answers due');
    expect(agent.child.exitCode).toBeNull();
    const job = cloud.queueJob(device.uuid, { name: 'after a bad answer', document: commandJob(['echo', 'still alive']) });
    const row = await cloud.waitForJobStatus(job.job_id, undefined, 20_000);
    expect(row.status).toBe('SUCCEEDED');
    const output = await expectCleanStop(agent);

    const faulted = cloud.requests().filter((r: RequestRecord) => r.fault === fault.kind);
    expect(faulted).toHaveLength(2 * requestsPerPoll);
    // a slow answer the agent gave up on was never routed: no job was handed to a closed connection
    expect(faulted.every((r) => r.status === (fault.kind === 'redirect-loop' ? 302 : fault.kind === 'html' ? 502 : r.status))).toBe(true);
    // the first bad answer is one warning naming the problem; the repeat is a debug line
    const first = unexpectedWarnings(output);
    expect(first, output.slice(-3000)).toHaveLength(1);
    const text = (first[0] as string).replace(new RegExp(device.uuid, 'g'), 'UUID');
    const m = /^\S+ WARN polling for jobs failed: (.*); retrying in (\d+ms|\ds) cloudStatus=\S+$/.exec(text);
    expect(m, text).not.toBeNull();
    expect(m?.[1]).toMatch(says);
    expect(logLines(output, 'DEBUG', /polling for jobs failed again: /)).toHaveLength(1);
    // backoff after the bad answers: the first two failures wait at most 1 s and 2 s
    const delays = pollRetryDelays(output);
    expect(delays).toHaveLength(2);
    expect(delays[0]).toBeLessThanOrEqual(1000);
    expect(delays[1]).toBeLessThanOrEqual(2000);
    // polling went on after them and the job ran normally
    expect(logLines(output, 'INFO', /the cloud answers again/)).toHaveLength(1);
    const final = expectOneFinal(cloud.patches(job.job_id), 'SUCCEEDED');
    expect(final.stdout).toBe('=== Step: step 1 ===\nstill alive\n');
  });
});

describe('slow answers', () => {
  it('an answer slower than usual but within request_timeout is taken as normal', async () => {
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    const job = cloud.queueJob(device.uuid, { name: 'slow offer', document: commandJob(['true']) });
    cloud.injectFault({ kind: 'slow', delayMs: 1500, times: 1, match: NEXT });
    const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: 'devices', request_timeout: '5s' } });
    const agent = scope.agent(dirs);
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 20_000);
    const output = await expectCleanStop(agent);
    expect(unexpectedWarnings(output)).toEqual([]);
    expect(cloud.requests()[0]).toMatchObject({ fault: 'slow', status: 200 });
    expectOneFinal(cloud.patches(job.job_id), 'SUCCEEDED');
  });

  it('a dropped connection and a 502 on the status PATCH: the report stays queued and arrives once', async () => {
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    cloud.injectFault({ kind: 'drop', times: 1, match: '^PATCH ' });
    cloud.injectFault({ kind: 'status', status: 502, times: 1, match: '^PATCH ' });
    const job = cloud.queueJob(device.uuid, { name: 'bumpy report', document: commandJob(['echo', 'ok']) });
    const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: 'devices' } });
    const agent = scope.agent(dirs);
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 20_000);
    const output = await expectCleanStop(agent);
    // the dropped and the 502 PATCH never reached the route; what did reach it ends in exactly one final
    expectOneFinal(cloud.patches(job.job_id), 'SUCCEEDED');
    expect(cloud.requests().filter((r) => r.method === 'PATCH' && r.fault !== null).map((r) => r.fault)).toEqual(['drop', 'status']);
    expect(logLines(output, 'WARN', /report failed: .*it stays queued, retrying in/).length).toBeGreaterThanOrEqual(1);
  });
});
