// The command line of the built executable: help, version, usage errors,
// check-config (valid and every kind of invalid), exec, status and history.
import { readFileSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { commandJob, renderIni, runCommand, waitFor, type AgentDirs } from './harness.js';
import { createScope, expectCleanStop, readStatusFile } from './polling-helpers.js';

const scope = createScope();
afterEach(() => scope.cleanup());

const VERSION = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

describe('help, version and usage', () => {
  it('--help documents every command, the global option and the exit codes', async () => {
    const result = await runCommand(['--help']);
    expect(result).toMatchObject({ code: 0, stderr: '' });
    for (const usage of ['run', 'check-config', 'status [--json]', 'history [--limit N] [--json]', 'exec JOB.json', 'register', 'help', 'version']) {
      expect(result.stdout).toMatch(new RegExp(`\\n  ${usage.replace(/[[\]]/g, '\\$&')}\\s`));
    }
    expect(result.stdout).toMatch(/^Usage: cloudjobs \[--config FILE\] COMMAND/);
    expect(result.stdout).toContain('-c, --config FILE');
    expect(result.stdout).toContain('CLOUDJOBS_<SECTION>_<KEY>');
    for (const code of ['0   success', '1   failure', '2   usage error', '78  configuration error']) expect(result.stdout).toContain(code);
    expect((await runCommand(['help'])).stdout).toBe(result.stdout);
    expect((await runCommand(['-h'])).stdout).toBe(result.stdout);
  });

  it('--version and version print the package version and the embedded runtime', async () => {
    const pins = JSON.parse(readFileSync('src/build/node-pins.json', 'utf8')) as Record<string, { version: string }>;
    const runtime = `node v${pins[process.arch]!.version}, linux-${process.arch}, single executable`;
    for (const args of [['--version'], ['-V'], ['version']]) {
      expect(await runCommand(args)).toEqual({ code: 0, stdout: `cloudjobs ${VERSION} (${runtime})\n`, stderr: '' });
    }
  });

  it.each([
    { args: [], says: 'no command given' },
    { args: ['bogus'], says: 'unknown command "bogus"' },
    { args: ['status', '--limit', '2'], says: '--limit is not an option of status (it belongs to history)' },
    { args: ['exec'], says: 'exec needs JOB.json' },
    { args: ['history', '--limit', '0'], says: '--limit must be a positive whole number, got "0"' },
    { args: ['history', '--limit', 'x'], says: '--limit must be a positive whole number, got "x"' },
    { args: ['--config'], says: '--config needs a value' },
  ])('usage error $args exits 2 and says so', async ({ args, says }) => {
    const result = await runCommand(args);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain(`cloudjobs: ${says}`);
  });
});

describe('check-config', () => {
  it('a valid config exits 0 and prints it with the API key redacted wherever it came from', async () => {
    const key = 'e2e-secret-key-0123456789abcdef0123456789abcdef';
    const { cloud, device } = await scope.cloud();
    const dirs = await scope.dirs(cloud, { uuid: device.uuid, apiKey: key });
    const fromFile = await runCommand(['--config', dirs.configFile, 'check-config']);
    expect(fromFile.code).toBe(0);
    expect(fromFile.stdout).toMatch(/^# cloudjobs check-config: the configuration is valid\n/);
    expect(fromFile.stdout).toContain(`api_url = ${cloud.url}`);
    expect(fromFile.stdout).toContain(`uuid = ${device.uuid}`);
    expect(fromFile.stdout).toContain('interval = 200ms');
    expect(fromFile.stdout).toContain(`\napi_key_file = ${dirs.root}/api-key  ; from ${dirs.configFile}\n`);
    // the key in the environment, as the seed guide passes it, and under our own name (no key file then)
    const envDirs = await scope.dirs(cloud, null, { device: { uuid: device.uuid } });
    const envs: Record<string, string>[] = [{ DEVICE_API_KEY: key }, { CLOUDJOBS_CLOUD_API_KEY: key }];
    for (const env of envs) {
      const result = await runCommand(['--config', envDirs.configFile, 'check-config'], { env });
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/\napi_key = \[redacted\]  ; from (DEVICE_API_KEY|CLOUDJOBS_CLOUD_API_KEY)\n/);
      expect(result.stdout + result.stderr).not.toContain(key);
    }
    expect(fromFile.stdout + fromFile.stderr).not.toContain(key);
  });

  it('an invalid config exits 78 and lists every problem at once', async () => {
    const dirs = await scope.dirs(null, null);
    await writeFile(
      dirs.configFile,
      renderIni({
        cloud: { api_url: 'cloud.example.com/api/v1', api_key: 'k-0123456789' },
        polling: { intervall: '5s', max_backoff: '5', jitter: 'lots' },
        jobs: { default_timeout: '-1h' },
      }),
    );
    const result = await runCommand(['--config', dirs.configFile, 'check-config']);
    expect(result.code).toBe(78);
    expect(result.stdout).toBe('');
    const problems = result.stderr.split('\n').filter((l) => l.startsWith('  '));
    expect(result.stderr).toMatch(new RegExp(`^cloudjobs: invalid configuration \\(${problems.length} problems\\):\n`));
    expect(problems).toHaveLength(5);
    expect(problems).toEqual(
      expect.arrayContaining([
        '  polling.intervall: expected a key of [polling]: interval, jitter, max_backoff, got intervall = 5s (did you mean interval?)',
        '  polling.max_backoff: expected a duration with a unit (ms, s, m, h, d) such as 250ms, 30s, 5m or 1h30m, got 5 (durations need a unit: write 5s or 5ms)',
        '  cloud.api_url: expected an absolute http:// or https:// URL with a host, such as https://cloud.example.com/api/v1, got cloud.example.com/api/v1 (add the scheme, e.g. https://)',
        expect.stringMatching(/^ {2}polling\.jitter: expected .*, got lots/),
        expect.stringMatching(/^ {2}jobs\.default_timeout: expected .*, got -1h/),
      ]),
    );
    expect(result.stderr).not.toContain('k-0123456789');
  });

  it('an unknown section and http:// to a non-loopback host are refused too', async () => {
    const dirs = await scope.dirs(null, null);
    await writeFile(dirs.configFile, renderIni({ cloud: { api_url: 'http://cloud.example.com/api/v1' }, pollin: { interval: '5s' } }));
    const result = await runCommand(['--config', dirs.configFile, 'check-config']);
    expect(result.code).toBe(78);
    const problems = result.stderr.split('\n').filter((l) => l.startsWith('  '));
    expect(problems).toHaveLength(2);
    expect(result.stderr).toContain('cloud.api_url: expected an https:// URL (http:// is allowed only to loopback hosts: 127.0.0.0/8, ::1, localhost), got http://cloud.example.com/api/v1');
    expect(problems.find((p) => p.includes('pollin'))).toMatch(/pollin.*did you mean \[?polling\]?/);
  });

  it('an unreadable config file exits 78 naming it', async () => {
    const dirs = await scope.dirs(null, null);
    const missing = path.join(dirs.root, 'missing.ini');
    const result = await runCommand(['--config', missing, 'check-config']);
    expect(result.code).toBe(78);
    expect(result.stderr).toContain(missing);
  });
});

describe('exec', () => {
  async function writeJob(dirs: AgentDirs, name: string, document: unknown): Promise<string> {
    const file = path.join(dirs.root, name);
    await writeFile(file, JSON.stringify(document));
    await chmod(file, 0o644);
    return file;
  }

  it('a good job exits 0 and prints each step; a failing job exits 1 naming the failed step', async () => {
    const dirs = await scope.dirs(null, null);
    const good = await writeJob(dirs, 'good.json', commandJob(['echo', 'hello from exec'], ['true']));
    const ok = await runCommand(['--config', dirs.configFile, 'exec', good]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^=== Step: step 1 ===\nhello from exec\n=== Step: step 2 ===\n--- steps ---\n1\. step 1: ok \[exit 0, \d+ ms\]\n2\. step 2: ok \[exit 0, \d+ ms\]\nSUCCEEDED: 2 of 2 steps succeeded\n$/);

    const bad = await writeJob(dirs, 'bad.json', commandJob(['echo', 'first'], ['sh', '-c', 'echo oops >&2; exit 4'], ['echo', 'never']));
    const failed = await runCommand(['--config', dirs.configFile, 'exec', bad]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('--- stderr ---\n=== Step: step 2 ===\noops\n');
    expect(failed.stdout).toMatch(/\n2\. step 2: FAILED \[exit 4, \d+ ms\]: exited with code 4\n/);
    expect(failed.stdout).not.toContain('never');
    expect(failed.stdout).toMatch(/\nFAILED: step 2 failed: exited with code 4 \(failed step: step 2\)\n$/);

    const rejected = await writeJob(dirs, 'rejected.json', { version: '2.0', steps: [] });
    const refused = await runCommand(['--config', dirs.configFile, 'exec', rejected]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^REJECTED: job document rejected: /m);
  });
});

describe('status and history', () => {
  it('status shows the running agent (polling, generation, current job, last poll, queued reports); not running is exit 1', async () => {
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: 'auto' } });
    // reports cannot be delivered for now: they wait in the queue
    cloud.injectFault({ kind: 'status', status: 503, times: 'always', match: '^PATCH ' });
    const job = cloud.queueJob(device.uuid, { name: 'long one', document: commandJob(['true'], ['sleep', '3']) });
    const agent = scope.agent(dirs);
    await waitFor(
      async () => {
        const s = await readStatusFile(dirs);
        const current = s?.currentJob as { stepIndex?: number } | null | undefined;
        const outbox = s?.outbox as { count?: number } | undefined;
        return current?.stepIndex === 2 && (outbox?.count ?? 0) >= 1;
      },
      20_000,
      'the status file to show step 2 and a queued report',
    );
    const json = await runCommand(['--config', dirs.configFile, 'status', '--json']);
    expect(json.code).toBe(0);
    const status = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(status).toMatchObject({
      agentVersion: VERSION,
      pid: agent.child.pid,
      state: 'running',
      polling: true,
      generation: 'devices',
      currentJob: { jobId: job.job_id, jobName: 'long one', step: 'step 2', stepIndex: 2, stepCount: 2 },
      lastPoll: { outcome: 'job', at: expect.any(Number) },
      outbox: { count: expect.any(Number) },
    });
    expect((status.outbox as { count: number }).count).toBeGreaterThanOrEqual(1);
    expect(json.stdout).not.toContain(device.apiKey);

    const text = await runCommand(['--config', dirs.configFile, 'status']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^state: {10}running \(running job long one \(step 2\/2: step 2\)/);
    expect(text.stdout).toContain('\npolling:        yes\n');
    expect(text.stdout).toContain('\napi generation: devices\n');
    expect(text.stdout).toContain(`\ncurrent job:    long one (${job.job_id}), step 2/2: step 2\n`);
    expect(text.stdout).toMatch(/\nlast poll: {6}\d+s ago, job\n/);
    expect(text.stdout).toMatch(/\nqueued reports: [1-9]\d*/);
    // the 503s are retried, never dropped
    expect(text.stdout).toMatch(/\nreports: {8}\d+ delivered, 0 refused by the cloud \(dropped\), [1-9]\d* retried\n/);
    expect(text.stdout).toContain(`\nversion:        ${VERSION} (pid ${agent.child.pid})`);

    cloud.clearFaults();
    await cloud.waitForJobStatus(job.job_id, 'SUCCEEDED', 20_000);
    await expectCleanStop(agent);
    const after = await runCommand(['--config', dirs.configFile, 'status']);
    expect(after.code).toBe(1);
    expect(after.stdout).toBe('');
    expect(after.stderr).toBe(
      `cloudjobs: the agent is not running (no status file at ${dirs.runtimeDir}/status.json); start it with: systemctl start cloudjobs\n`,
    );
  });

  it('history --limit 2 --json after three jobs lists the two newest, newest first', async () => {
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    const dirs = await scope.dirs(cloud, device);
    const jobs = [
      cloud.queueJob(device.uuid, { name: 'first', document: commandJob(['true']) }),
      cloud.queueJob(device.uuid, { name: 'second', document: commandJob(['sh', '-c', 'exit 2']) }),
      cloud.queueJob(device.uuid, { name: 'third', document: commandJob(['echo', 'three']) }),
    ];
    const agent = scope.agent(dirs);
    for (const job of jobs) await cloud.waitForJobStatus(job.job_id, undefined, 20_000);
    // history is written once the final report is handed over; read it while the agent still runs
    await waitFor(async () => {
      const r = await runCommand(['--config', dirs.configFile, 'history', '--json']);
      return r.code === 0 && (JSON.parse(r.stdout) as unknown[]).length === 3;
    }, 10_000, 'three history entries');
    const result = await runCommand(['--config', dirs.configFile, 'history', '--limit', '2', '--json']);
    expect(result.code).toBe(0);
    const entries = JSON.parse(result.stdout) as { jobId: string; jobName: string; report: { status: string; exit_code: number | null } }[];
    expect(entries.map((e) => [e.jobId, e.jobName, e.report.status, e.report.exit_code])).toEqual([
      [jobs[2]?.job_id, 'third', 'SUCCEEDED', 0],
      [jobs[1]?.job_id, 'second', 'FAILED', 2],
    ]);
    await expectCleanStop(agent);
    const text = await runCommand(['--config', dirs.configFile, 'history', '--limit', '2']);
    expect(text.code).toBe(0);
    expect(text.stdout.split('\n').filter((l) => /^\d{4}-/.test(l)).map((l) => l.split(/\s+/).slice(1, 3))).toEqual([
      ['SUCCEEDED', 'third'],
      ['FAILED', 'second'],
    ]);
  });
});
