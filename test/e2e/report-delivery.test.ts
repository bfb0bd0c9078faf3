// Issue 16.2 and 14.4 against the built executable: a report larger than the
// server takes never blocks later reports (every report fits a budget measured
// on its JSON; a 413 makes the agent cut further, and gives a report up once it
// cannot be cut more), and a final report is dropped only on the API's own
// JSON refusal: a proxy's HTML 400 is retried until the report is delivered.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REPORT_BUDGET_BYTES, SERVER_BODY_LIMIT } from '../../src/contract/fit-report.js';
import { runCommand, waitFor } from './harness.js';
import { createScope, expectCleanStop, logLines } from './polling-helpers.js';

const scope = createScope();
afterEach(() => scope.cleanup());

// A step writing `bytes` of control character `char` (octal) to stdout and to stderr.
function floodStep(name: string, bytes: number, char = '001'): Record<string, unknown> {
  const flood = `head -c ${bytes} /dev/zero | tr '\\000' '\\${char}'`;
  return { name, type: 'runCommand', ignoreStepFailure: true, input: { command: ['/bin/sh', '-c', `${flood}; ${flood} >&2`] } };
}

// The reproduction: one parallel step of `members` members, each flooding both streams.
function parallelFloodJob(members: number, bytes: number): Record<string, unknown> {
  return {
    version: '1.0',
    includeStdOut: true,
    steps: [{ name: 'flood', parallel: Array.from({ length: members }, (_, i) => floodStep(`member ${i + 1}`, bytes)) }],
  };
}

const echoJob = { version: '1.0', includeStdOut: true, steps: [{ name: 'hello', type: 'runCommand', input: { command: ['echo', 'hello'] } }] };

async function readStatus(configFile: string): Promise<{ reports: { delivered: number; refused: number; retried: number; cut: number } }> {
  const result = await runCommand(['--config', configFile, 'status', '--json']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as { reports: { delivered: number; refused: number; retried: number; cut: number } };
}

describe('report size', () => {
  it('a parallel step of 40 members writing 200 KB of control characters each: every report fits, the next job is reported', async () => {
    const { cloud, device } = await scope.cloud();
    const dirs = await scope.dirs(cloud, device, { jobs: { progress_interval: '1s', max_parallel: '8' } });
    const big = cloud.queueJob(device.uuid, { name: 'flood', document: parallelFloodJob(40, 200_000) });
    const next = cloud.queueJob(device.uuid, { name: 'after', document: echoJob });
    const agent = scope.agent(dirs);
    await cloud.waitForJobStatus(next.job_id, 'SUCCEEDED', 120_000);
    const patches = cloud.patches(big.job_id);
    // without the budget the final would be ~31 MB of JSON: 80 streams x 64 KiB kept x 6 bytes per \u0001
    expect(patches.every((p) => p.answer === 200)).toBe(true);
    for (const p of patches) expect(Buffer.byteLength(p.rawBody)).toBeLessThanOrEqual(REPORT_BUDGET_BYTES);
    expect(REPORT_BUDGET_BYTES).toBeLessThan(SERVER_BODY_LIMIT);
    const final = patches.at(-1)!.body as { status: string; stdout: string; stderr: string; status_details: Record<string, unknown> };
    expect(final.status).toBe('SUCCEEDED');
    expect(Buffer.byteLength(patches.at(-1)!.rawBody)).toBeGreaterThan(REPORT_BUDGET_BYTES * 0.9);
    for (const text of [final.stdout, final.stderr]) {
      expect(text).toMatch(/^=== Step: member \d+ ===\n\u0001/);
      expect(text).toMatch(/\n\[\.\.\. \d+ bytes omitted to fit the report size limit \.\.\.\]\n/);
    }
    expect(final.status_details.truncated).toMatchObject({ budget_bytes: REPORT_BUDGET_BYTES });
    expect(logLines(agent.output(), 'INFO', /the SUCCEEDED report is \d+ bytes as JSON, over the 12582912-byte report budget; its output was cut/)).toHaveLength(1);
    await expectCleanStop(agent);
  }, 180_000);

  it('a 413 makes the agent send the report smaller, never the same body again', async () => {
    const limit = 1024 * 1024;
    const { cloud, device } = await scope.cloud({ maxBodyBytes: limit });
    const dirs = await scope.dirs(cloud, device, { jobs: { progress_interval: '10m' } });
    const big = cloud.queueJob(device.uuid, { name: 'flood', document: parallelFloodJob(6, 100_000) });
    const next = cloud.queueJob(device.uuid, { name: 'after', document: echoJob });
    const agent = scope.agent(dirs);
    await cloud.waitForJobStatus(next.job_id, 'SUCCEEDED', 60_000);
    const sizes = cloud.patches(big.job_id).map((p) => ({ answer: p.answer, bytes: p.answer === 413 ? null : Buffer.byteLength(p.rawBody) }));
    const refused = sizes.filter((s) => s.answer === 413).length;
    // ~4.7 MB made: refused, then cut to half and half again until it fits in 1 MiB
    expect(refused).toBeGreaterThanOrEqual(2);
    expect(refused).toBeLessThanOrEqual(4);
    const final = cloud.getJob(big.job_id)!;
    expect(final.status).toBe('SUCCEEDED');
    expect(sizes.at(-1)).toEqual({ answer: 200, bytes: expect.any(Number) });
    expect(sizes.at(-1)!.bytes!).toBeLessThanOrEqual(limit);
    expect(logLines(agent.output(), 'WARN', /the cloud refused the SUCCEEDED report of \d+ bytes as too large \(413\); sending it and later reports cut to at most \d+ bytes/)).toHaveLength(refused);
    await waitFor(async () => (await readStatus(dirs.configFile)).reports.cut === refused, 10_000, `${refused} cuts in the status`);
    expect((await readStatus(dirs.configFile)).reports.refused).toBe(0);
    await expectCleanStop(agent);
  }, 120_000);

  it('a report still too large at the smallest size is given up with an error, kept in history, and later jobs are reported', async () => {
    const { cloud, device } = await scope.cloud({ maxBodyBytes: 4096 });
    const dirs = await scope.dirs(cloud, device, { jobs: { progress_interval: '10m' } });
    const big = cloud.queueJob(device.uuid, { name: 'flood', document: { version: '1.0', includeStdOut: true, steps: [floodStep('flood', 20_000, '101')] } });
    const next = cloud.queueJob(device.uuid, { name: 'after', document: echoJob });
    const agent = scope.agent(dirs);
    await cloud.waitForJobStatus(next.job_id, 'SUCCEEDED', 60_000);
    expect(cloud.getJob(big.job_id)!.status).toBe('IN_PROGRESS');
    const given = logLines(agent.output(), 'ERROR', /the cloud refused the SUCCEEDED report as too large \(413\) even cut to \d+ bytes; gave it up so later reports are sent; its full result is kept in history/);
    expect(given).toHaveLength(1);
    // the whole 413 episode is bounded: at most one try per halving down to the minimum
    expect(cloud.patches(big.job_id).filter((p) => p.answer === 413).length).toBeLessThanOrEqual(4);
    await waitFor(async () => (await readStatus(dirs.configFile)).reports.refused === 1, 10_000, 'one refused report in the status');
    const history = await runCommand(['--config', dirs.configFile, 'history', '--json']);
    const entries = JSON.parse(history.stdout) as { jobId: string; report: { status: string; stdout: string } }[];
    expect(entries.map((e) => [e.jobId, e.report.status])).toEqual([
      [next.job_id, 'SUCCEEDED'],
      [big.job_id, 'SUCCEEDED'],
    ]);
    expect(entries[1]!.report.stdout).toContain('A'.repeat(1000));
    await expectCleanStop(agent);
  }, 120_000);
});

describe('history bounded in bytes', () => {
  it('after 30 jobs of 360 KB reports each the history directory stays within history_max_bytes', async () => {
    const { cloud, device } = await scope.cloud();
    const maxBytes = 65_536;
    const dirs = await scope.dirs(cloud, device, { agent: { history_max_bytes: '64KiB' }, jobs: { progress_interval: '10m' } });
    const document = { version: '1.0', includeStdOut: true, steps: [floodStep('flood', 30_000)] };
    const jobs = cloud.queueJobs(device.uuid, 30, { name: 'flood', document });
    const agent = scope.agent(dirs);
    await waitFor(() => jobs.every((j) => cloud.getJob(j.job_id)!.status === 'SUCCEEDED'), 120_000, 'every job SUCCEEDED');
    // the last job enters history after its final was queued: measure once the agent stopped
    await expectCleanStop(agent);
    const historyDir = path.join(dirs.stateDir, 'history');
    let bytes = 0;
    const names = await readdir(historyDir);
    for (const name of names) bytes += (await stat(path.join(historyDir, name))).size;
    expect(bytes).toBeLessThanOrEqual(maxBytes);
    // a quarter each: the newest four jobs, their output cut and saying so
    const history = await runCommand(['--config', dirs.configFile, 'history', '--json']);
    const entries = JSON.parse(history.stdout) as { jobId: string; report: { stdout: string; status_details: Record<string, unknown> } }[];
    expect(entries.map((e) => e.jobId)).toEqual(jobs.slice(-4).map((j) => j.job_id).reverse());
    for (const entry of entries) {
      expect(entry.report.stdout).toMatch(/bytes omitted to fit the report size limit/);
      expect(entry.report.status_details.truncated).toBeDefined();
    }
    // the cloud got the whole reports (within the report budget): only history is cut
    const final = cloud.patches(jobs[29]!.job_id).at(-1)!;
    expect(Buffer.byteLength(final.rawBody)).toBeGreaterThan(300_000);
  }, 180_000);
});

describe('refused or retried', () => {
  it('a proxy-style HTML 400 on the final PATCH is retried with backoff and the report delivered later, not dropped', async () => {
    const { cloud, device } = await scope.cloud();
    const dirs = await scope.dirs(cloud, device, { jobs: { progress_interval: '10m' } });
    cloud.injectFault({ kind: 'html', status: 400, match: '^PATCH ', times: 'always' });
    const job = cloud.queueJob(device.uuid, { name: 'portal', document: echoJob });
    const agent = scope.agent(dirs);
    await agent.waitForOutput(/ ended SUCCEEDED: /);
    await waitFor(() => logLines(agent.output(), 'WARN', /sending the (IN_PROGRESS|SUCCEEDED) report failed: the server answered PATCH .* with an unexpected 400: an HTML page titled "400 Bad Request"; it stays queued, retrying in/).length >= 1, 20_000, 'a retry warning');
    await waitFor(async () => (await readStatus(dirs.configFile)).reports.retried >= 3, 30_000, 'three retries');
    expect(cloud.getJob(job.job_id)!.status).toBe('IN_PROGRESS');
    cloud.clearFaults();
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 30_000);
    expect(cloud.getJob(job.job_id)).toMatchObject({ status: 'SUCCEEDED', stdout: '=== Step: hello ===\nhello\n' });
    const status = await readStatus(dirs.configFile);
    expect(status.reports.refused).toBe(0);
    expect(status.reports.retried).toBeGreaterThanOrEqual(3);
    expect(logLines(agent.output(), 'ERROR', /refused/)).toEqual([]);
    await expectCleanStop(agent);
  }, 90_000);

  it('the API\u2019s own JSON 404 "Job status not found" still drops the report, counted as refused', async () => {
    const { cloud, device } = await scope.cloud();
    const dirs = await scope.dirs(cloud, device, { jobs: { progress_interval: '10m' } });
    const slow = { version: '1.0', includeStdOut: true, steps: [{ name: 'wait', type: 'runCommand', input: { command: ['sleep', '1'] } }] };
    const job = cloud.queueJob(device.uuid, { name: 'deleted', document: slow });
    const agent = scope.agent(dirs);
    await cloud.waitFor((c) => c.patches(job.job_id).some((p) => p.answer === 200), 20_000, 'the first IN_PROGRESS');
    cloud.deleteJob(job.job_id);
    await agent.waitForOutput(/the cloud no longer knows this job \(Job status not found\); nothing more is reported for it/);
    await waitFor(async () => (await readStatus(dirs.configFile)).reports.refused === 1, 10_000, 'one refused report');
    expect(cloud.patches(job.job_id).filter((p) => p.answer === 404)).toHaveLength(1);
    await expectCleanStop(agent);
  }, 60_000);
});
