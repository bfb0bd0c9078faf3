// The shipped restart-services handler refuses to restart the agent itself,
// also through a glob (issue 21). Runs the real script with a systemctl test
// double first in PATH (it must never be called for a refused name).
import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

const HANDLER = path.resolve('debian/handlers/restart-services');
const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('restart-services handler', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-restart-services-'));
    await writeFile(path.join(dir, 'systemctl'), `#!/bin/sh\necho "$*" >> '${dir}/calls'\nexit 0\n`);
    await chmod(path.join(dir, 'systemctl'), 0o755);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const run = (...services: string[]): Promise<{ code: number; stderr: string }> =>
    new Promise((resolve) => {
      execFile('/bin/sh', [HANDLER, 'root', ...services], { env: { PATH: `${dir}:/usr/bin:/bin` } }, (error, _stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stderr: String(stderr) });
      });
    });
  const calls = async (): Promise<string> => readFile(path.join(dir, 'calls'), 'utf8').catch(() => '');

  it('refuses the agent by name and by any glob that matches it, before restarting anything', async () => {
    for (const name of ['cloudjobs', 'cloudjobs.service', 'cloud*', 'cloudjob?', '*.service', '*', 'cloud[j]obs', 'c*s']) {
      const result = await run('nginx', name);
      expect(result.code, name).toBe(2);
      expect(result.stderr, name).toContain(`refusing '${name}'`);
    }
    expect(await calls()).toBe('');
  });

  it('restarts other services, globs that do not match the agent included', async () => {
    const result = await run('nginx', 'redis*');
    expect(result.code).toBe(0);
    expect(await calls()).toBe('restart -- nginx\nis-active --quiet -- nginx\nrestart -- redis*\nis-active --quiet -- redis*\n');
  });
});
