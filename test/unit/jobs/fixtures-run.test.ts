// The AWS IoT Device Client sample job documents and the three Iotistic
// templates run unchanged through validation and the engine, with handlers
// from test/fixtures/handlers and a systemctl double on the step PATH.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSystemClock } from '../../../src/clock/clock.js';
import type { StatusReport } from '../../../src/contract/types.js';
import { validateJob } from '../../../src/jobs/document.js';
import { startJob } from '../../../src/jobs/engine.js';
import { lookupUser } from '../../../src/jobs/users.js';
import { createNullLog } from '../../../src/log/log.js';
import { HANDLER_FIXTURES_DIR, loadJobFixture } from '../../fixtures/jobs/load-job-fixture.js';

const isRoot = process.getuid?.() === 0;
const FIXTURE_BIN = path.resolve('test/fixtures/bin');

describe.skipIf(!isRoot)('sample job documents run unchanged (as root: steps as nobody and root)', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-samples-'));
    // sticky like /tmp: work_dir may sit below it (work-dir.ts), and steps as nobody can still write here
    await chmod(dir, 0o1777);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function run(document: unknown, name: string): Promise<StatusReport> {
    const clock = createSystemClock();
    const job = await validateJob(
      { jobId: `sample-${name}`, jobName: name, timeoutSeconds: 60, createdAt: null, document },
      { runAsUser: 'nobody', allowedUsers: ['nobody', 'root'], handlerDirs: [HANDLER_FIXTURES_DIR], defaultTimeoutMs: 60_000, lookupUser },
    );
    const run = startJob(job, {
      workDir: path.join(dir, 'work'),
      killGraceMs: 500,
      maxOutput: 65_536,
      maxParallel: 2,
      path: `${FIXTURE_BIN}:/usr/sbin:/usr/bin:/sbin:/bin`,
      agentVersion: 'test',
      clock,
      log: createNullLog(),
      lookupUser,
      agentUid: 0,
    });
    return run.done;
  }

  function argvOf(report: StatusReport): unknown[] {
    return (report.status_details.steps as { argv?: unknown; handler?: unknown; args?: unknown; user: unknown }[]).map((s) => [
      s.user,
      s.argv ?? [s.handler, ...((s.args as unknown[]) ?? [])],
    ]);
  }

  it('AWS echo: the handler gets the run-as user as $1 and the args after it', async () => {
    const report = await run(loadJobFixture('aws-echo.json'), 'echo');
    expect(report.status).toBe('SUCCEEDED');
    expect(argvOf(report)).toEqual([['nobody', [path.join(HANDLER_FIXTURES_DIR, 'echo'), 'nobody', 'Hello IoT World!']]]);
  });

  it('AWS download-file as root copies a file:// source to its destination', async () => {
    const source = path.join(dir, 'source.txt');
    const destination = path.join(dir, 'downloaded.txt');
    await writeFile(source, 'payload\n');
    const report = await run(loadJobFixture('aws-download-file.template.json', { SOURCE_URL: `file://${source}`, DESTINATION: destination }), 'download');
    expect(report.status).toBe('SUCCEEDED');
    expect(await readFile(destination, 'utf8')).toBe('payload\n');
  });

  it('AWS install-packages, remove-packages and reboot handlers run as root', async () => {
    for (const name of ['aws-install-packages.json', 'aws-remove-packages.json', 'aws-reboot.json']) {
      const report = await run(loadJobFixture(name), name);
      expect(report.status, `${name}: ${report.reason}`).toBe('SUCCEEDED');
      expect((report.status_details.steps as { user: string }[])[0]?.user).toBe('root');
    }
  });

  it('AWS run-shellcommand (comma form) and the managed Run-Command template', async () => {
    const mkdir = await run(loadJobFixture('aws-run-shellcommand.json'), 'mkdir');
    expect(mkdir.status).toBe('SUCCEEDED');
    expect(argvOf(mkdir)).toEqual([['root', ['mkdir', 'newDir']]]);
    const managed = await run(loadJobFixture('aws-managed-run-command.json'), 'managed');
    expect(managed.status).toBe('SUCCEEDED');
    expect(managed.stdout).toBe('=== Step: Run-Command ===\na,b|c\n');
  });

  it('Iotistic health-check, restart-service and update-config templates', async () => {
    const health = await run(loadJobFixture('iotistic-health-check.template.json', { SERVICE_NAME: 'ssh' }), 'health');
    expect(health.status).toBe('SUCCEEDED');
    expect(argvOf(health)).toEqual([
      ['nobody', ['df', '-h']],
      ['nobody', ['free', '-h']],
      ['nobody', ['systemctl', 'status', 'ssh']],
    ]);
    expect(health.stdout).toContain('systemctl status ssh (as nobody)');

    const restart = await run(loadJobFixture('iotistic-restart-service.template.json', { SERVICE_NAME: 'redis' }), 'restart');
    expect(restart.status).toBe('SUCCEEDED');
    expect(restart.stdout).toBe('=== Step: Restart Service ===\nsystemctl restart redis (as root)\n');

    const config = path.join(dir, 'app.conf');
    const update = path.join(dir, 'new.conf');
    await writeFile(config, 'old\n');
    await writeFile(update, 'new\n');
    await chmod(config, 0o666);
    const updated = await run(
      loadJobFixture('iotistic-update-config.template.json', { CONFIG_PATH: config, CONFIG_URL: `file://${update}`, SERVICE_NAME: 'app' }),
      'update',
    );
    expect(updated.status, updated.reason).toBe('SUCCEEDED');
    expect(updated.executed_steps).toBe(3);
    expect(await readFile(`${config}.backup`, 'utf8')).toBe('old\n');
    expect(await readFile(config, 'utf8')).toBe('new\n');
    expect(updated.stdout).toContain('systemctl restart app (as root)');
  });
});
