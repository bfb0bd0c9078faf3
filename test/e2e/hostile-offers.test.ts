// Odd offers against the built executable (issue 16 items 3, 4, 5): a job id
// that is not one URL path segment, a job document nested 2000 levels deep, a
// job name that forges a log line or is 200 KB long. None may stall the agent,
// block another job's report, or reach a log line or terminal unescaped.
import { createSystemClock } from '../../src/clock/clock.js';
import { createNullLog } from '../../src/log/log.js';
import { openOutbox } from '../../src/state/outbox.js';
import { afterEach, describe, expect, it } from 'vitest';
import { commandJob, runCommand, waitFor } from './harness.js';
import { createScope, expectCleanStop, logLines, readStatusFile } from './polling-helpers.js';

const scope = createScope();
afterEach(() => scope.cleanup());

const ESC = '\u001b';

function deepDocument(levels: number): Record<string, unknown> {
  let value: unknown = 1;
  for (let i = 0; i < levels; i += 1) value = { a: value };
  return { version: '1.0', steps: [{ action: { name: 'never', type: 'runCommand', input: { command: ['true'] } } }], extra: value };
}

async function historyJson(configFile: string): Promise<{ jobId: string; jobName: string; report: { status: string; reason: string } }[]> {
  const result = await runCommand(['--config', configFile, 'history', '--json']);
  expect(result.code).toBe(0);
  return JSON.parse(result.stdout) as { jobId: string; jobName: string; report: { status: string; reason: string } }[];
}

describe('odd job ids (item 3)', () => {
  it('refuses ".", ".." and "%2E%2E" before anything runs: logged, in history, never sent; the next job reports', async () => {
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: 'devices' } });
    const odd = ['.', '..', '%2E%2E'];
    for (const jobId of odd) cloud.queueJob(device.uuid, { jobId, name: `odd ${jobId}`, document: commandJob(['touch', '/tmp/never']) });
    const normal = cloud.queueJob(device.uuid, { name: 'after the odd ones', document: commandJob(['echo', 'ran']) });
    const agent = scope.agent(dirs);
    const row = await cloud.waitForJobStatus(normal.job_id, undefined, 30_000);
    expect(row.status).toBe('SUCCEEDED');

    expect(logLines(agent.output(), 'ERROR', / refused job /)).toHaveLength(3);
    const expected = [
      'refused job odd .: job id "." cannot name its status URL: it is "." (also as a %-escape), which URLs remove as a path segment; nothing runs and nothing can be reported for it',
      'refused job odd ..: job id ".." cannot name its status URL: it is ".." (also as a %-escape), which URLs remove as a path segment; nothing runs and nothing can be reported for it',
      'refused job odd %2E%2E: job id "%2E%2E" cannot name its status URL: it is ".." (also as a %-escape), which URLs remove as a path segment; nothing runs and nothing can be reported for it',
    ];
    for (const message of expected) expect(agent.output()).toContain(` ERROR ${message} jobId=`);
    // only the normal job was ever PATCHed; the outbox is empty
    const patched = cloud.requests().filter((r) => r.method === 'PATCH').map((r) => r.path);
    expect(patched.length).toBeGreaterThan(0);
    expect(patched.every((p) => p.endsWith(`/jobs/${normal.job_id}/status`))).toBe(true);
    await waitFor(async () => ((await readStatusFile(dirs))?.outbox as { count: number } | undefined)?.count === 0, 10_000, 'an empty outbox');
    await expectCleanStop(agent);

    const history = await historyJson(dirs.configFile);
    expect(history.map((e) => [e.jobId, e.report.status])).toEqual([
      [normal.job_id, 'SUCCEEDED'],
      ['%2E%2E', 'REJECTED'],
      ['..', 'REJECTED'],
      ['.', 'REJECTED'],
    ]);
  });

  it('drops a queued report of such an id left by an older version, then delivers the rest', async () => {
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: 'devices' } });
    const outbox = await openOutbox({ stateDir: dirs.stateDir, log: createNullLog(), clock: createSystemClock(), maxReports: 100, maxBytes: 1 << 20 });
    const report = { status: 'SUCCEEDED' as const, exit_code: 0, stdout: '', stderr: '', reason: 'old', executed_steps: 1, failed_step: null, status_details: {} };
    await outbox.enqueue('..', report);
    const job = cloud.queueJob(device.uuid, { name: 'behind the old report', document: commandJob(['echo', 'ran']) });
    const agent = scope.agent(dirs);
    expect((await cloud.waitForJobStatus(job.job_id, undefined, 30_000)).status).toBe('SUCCEEDED');
    expect(logLines(agent.output(), 'WARN', / dropped a queued /)).toHaveLength(1);
    expect(agent.output()).toContain(
      ' WARN dropped a queued SUCCEEDED report of job "..": its id cannot name a status URL (it is ".." (also as a %-escape), which URLs remove as a path segment); an older agent accepted it jobId=',
    );
    expect(cloud.requests().filter((r) => r.method === 'PATCH' && !r.path.includes(job.job_id))).toEqual([]);
    await expectCleanStop(agent);
  });
});

describe('a job document nested 2000 levels deep (item 4)', () => {
  it.each([
    ['an object', false],
    ['a JSON string', true],
  ])('given as %s is REJECTED with the reason; the agent goes on', async (_name, documentAsString) => {
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: 'devices' } });
    const deep = cloud.queueJob(device.uuid, { name: 'deep', document: deepDocument(2000), documentAsString });
    const next = cloud.queueJob(device.uuid, { name: 'next', document: commandJob(['echo', 'ran']) });
    const agent = scope.agent(dirs);
    const row = await cloud.waitForJobStatus(deep.job_id, undefined, 30_000);
    expect(row.status).toBe('REJECTED');
    expect(row.reason).toBe('job document rejected: job_document nests objects and arrays more than 32 levels deep');
    expect((await cloud.waitForJobStatus(next.job_id, undefined, 30_000)).status).toBe('SUCCEEDED');
    const output = await expectCleanStop(agent);
    expect(output).not.toMatch(/Maximum call stack/);
  });
});

describe('hostile job names (item 5)', () => {
  it('a name that forges a log line and colours the terminal is escaped in the log, status and history', async () => {
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: 'devices' } });
    const name = `upgrade\n2026-12-01T00:00:00.000Z ERROR forged line ${ESC}[31mred${ESC}]0;title\u0007`;
    const job = cloud.queueJob(device.uuid, { name, document: commandJob(['echo', 'ran']) });
    const agent = scope.agent(dirs);
    expect((await cloud.waitForJobStatus(job.job_id, undefined, 30_000)).status).toBe('SUCCEEDED');
    await waitFor(() => /ended SUCCEEDED/.test(agent.output()), 10_000, 'the end of the job logged');
    const output = agent.output();
    expect(output).not.toContain(ESC);
    expect(output.split('\n').filter((line) => line.includes('forged line')).every((line) => /^\S+ (INFO|DEBUG) /.test(line))).toBe(true);
    expect(output).toContain('received job upgrade\\n2026-12-01T00:00:00.000Z ERROR forged line \\u001b[31mred\\u001b]0;title\\u0007');

    const status = await runCommand(['--config', dirs.configFile, 'status']);
    const statusJson = await runCommand(['--config', dirs.configFile, 'status', '--json']);
    await expectCleanStop(agent);
    const history = await runCommand(['--config', dirs.configFile, 'history']);
    const historyAsJson = await runCommand(['--config', dirs.configFile, 'history', '--json']);
    for (const shown of [status, statusJson, history, historyAsJson]) expect(shown.stdout).not.toContain(ESC);
    expect(history.stdout).toContain('upgrade\\n2026-12-01T00:00:00.000Z ERROR forged line \\u001b[31mred');
    expect(history.stdout.split('\n')).toHaveLength(3);
  });

  it('a 200 KB name is REJECTED with the reason, shortened with a marker everywhere, and logs stay small', async () => {
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: 'devices' } });
    const name = 'n'.repeat(200_000);
    const job = cloud.queueJob(device.uuid, { name, document: commandJob(['echo', 'ran']) });
    const next = cloud.queueJob(device.uuid, { name: 'next', document: commandJob(['echo', 'ran']) });
    const agent = scope.agent(dirs);
    const row = await cloud.waitForJobStatus(job.job_id, undefined, 30_000);
    expect(row.status).toBe('REJECTED');
    expect(row.reason).toBe('job document rejected: job_name is 200000 characters long; at most 255 are allowed');
    expect((await cloud.waitForJobStatus(next.job_id, undefined, 30_000)).status).toBe('SUCCEEDED');
    const output = await expectCleanStop(agent);
    expect(output.length).toBeLessThan(200_000);
    expect(output).toContain(`${'n'.repeat(255)}…[199745 more characters]`);
    const history = await historyJson(dirs.configFile);
    expect(history.find((e) => e.jobId === job.job_id)?.jobName).toBe(`${'n'.repeat(255)}…[199745 more characters]`);
  });
});
