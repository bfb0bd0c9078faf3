// Issue 16 item 1 against the built executable, as root: a step's user swaps
// directories of its work dir for symlinks to a root-owned directory
// (renameat2 RENAME_EXCHANGE, from detached helpers with an empty environment
// that the end-of-job sweep cannot find) while the agent removes the work dir.
// Root must never follow them: every file of the victim directory survives.
// The fixture is C (test/fixtures/race/swap-links.c), compiled with gcc here.
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from './harness.js';
import { createScope, expectCleanStop } from './polling-helpers.js';

const isRoot = process.getuid?.() === 0;
const SOURCE = path.resolve(__dirname, '../fixtures/race/swap-links.c');
const VICTIM_FILES = 20;
const PAIRS = 40;
const HELPERS = 2;

const scope = createScope();
const temps: string[] = [];
let helperBinary: string | null = null;

afterEach(async () => {
  // stop the helpers this test started (found by their argv), before anything else
  if (helperBinary !== null) await killHelpers(helperBinary);
  await scope.cleanup();
  await Promise.all(temps.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

describe.runIf(isRoot)('removing a work dir while its user swaps in symlinks (root only)', () => {
  it('keeps every file of a root-owned directory the symlinks point to', async () => {
    const base = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-race-'));
    temps.push(base);
    await chmod(base, 0o755);
    helperBinary = path.join(base, 'swap-links');
    execFileSync('gcc', ['-O2', '-Wall', '-o', helperBinary, SOURCE], { stdio: 'pipe' });
    await chmod(helperBinary, 0o755);
    const victim = path.join(base, 'victim');
    await mkdir(victim, { mode: 0o755 });
    for (let i = 0; i < VICTIM_FILES; i += 1) await writeFile(path.join(victim, `precious-${i}`), 'root owns this\n', { mode: 0o644 });

    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: 'devices' } });
    const agent = scope.agent(dirs);
    const job = cloud.queueJob(device.uuid, {
      name: 'swap symlinks in',
      document: {
        version: '1.0',
        includeStdOut: true,
        steps: [{ action: { name: 'race', type: 'runCommand', input: { command: [helperBinary, victim, String(PAIRS), String(HELPERS)] } } }],
      },
    });
    const row = await cloud.waitForJobStatus(job.job_id, undefined, 60_000);
    expect(row.status).toBe('SUCCEEDED');
    expect(String(row.stdout)).toContain(`${PAIRS} pairs, ${HELPERS} helpers swapping`);
    // the helpers outlived the job and were swapping while the agent removed its work dir
    const binary = helperBinary;
    await waitFor(async () => (await findHelpers(binary)).length === HELPERS, 10_000, `${HELPERS} swap helpers alive`);

    expect((await readdir(victim)).sort()).toEqual(Array.from({ length: VICTIM_FILES }, (_, i) => `precious-${i}`).sort());
    // the removal went through (as the step's user) or left the directory with one warning; never anything outside it
    await waitFor(() => /job swap symlinks in ended SUCCEEDED/.test(agent.output()), 10_000, 'the end of the job logged');
    const left = await readdir(dirs.workDir);
    if (left.length > 0) expect(agent.output()).toMatch(/could not remove a job directory: .* was emptied as user nobody but not removed/);
    await expectCleanStop(agent);
  });
});

describe.runIf(isRoot)('work dirs of a job interrupted by kill -9 (root only)', () => {
  it('are removed, as their user, when the restarted agent recovers the job', async () => {
    const { cloud, device } = await scope.cloud({ generation: 'devices' });
    const dirs = await scope.dirs(cloud, device, { cloud: { api_generation: 'devices' } });
    const first = scope.agent(dirs);
    const job = cloud.queueJob(device.uuid, {
      name: 'interrupted',
      document: {
        version: '1.0',
        steps: [{ action: { name: 'fill', type: 'runCommand', input: { command: ['sh', '-c', 'mkdir -p a/b && touch a/b/f && chmod 500 a/b a && exec sleep 60'] } } }],
      },
    });
    await cloud.waitForJobStatus(job.job_id, 'IN_PROGRESS', 30_000);
    await waitFor(async () => (await readdir(dirs.workDir).catch(() => [] as string[])).length === 1, 20_000, 'the job dir');
    const jobDir = path.join(dirs.workDir, (await readdir(dirs.workDir))[0]!);
    await waitFor(async () => (await readdir(jobDir).catch(() => [] as string[])).includes('a'), 20_000, 'the step writing in its dir');
    first.kill('SIGKILL');
    await first.exited;
    // the step's sleep outlives a SIGKILLed agent (KillMode=mixed would end it under systemd): stop it here
    for (const pid of await findProcessesCarrying(`CLOUDJOBS_JOB_ID=${job.job_id}`)) process.kill(pid, 'SIGKILL');

    const second = scope.agent(dirs);
    const row = await cloud.waitForJobStatus(job.job_id, undefined, 30_000);
    expect(row.status).toBe('FAILED');
    await waitFor(() => /removed 1 work dir\(s\) the interrupted job left behind/.test(second.output()), 10_000, 'the leftover removal logged');
    expect(await readdir(dirs.workDir)).toEqual([]);
    await expectCleanStop(second);
  });
});

// Processes whose initial environment holds `entry` (this test's own job steps).
async function findProcessesCarrying(entry: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const environ = await readFile(`/proc/${name}/environ`, 'utf8').catch(() => '');
    if (environ.split('\0').includes(entry)) pids.push(Number(name));
  }
  return pids;
}

// Helper processes of this test: argv[0] is the binary compiled above and argv[1] is --loop.
async function findHelpers(binary: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    const [argv0, argv1] = cmdline.split('\0');
    if (argv0 === binary && argv1 === '--loop') pids.push(Number(name));
  }
  return pids;
}

async function killHelpers(binary: string): Promise<void> {
  for (const pid of await findHelpers(binary)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await waitFor(async () => (await findHelpers(binary)).length === 0, 10_000, 'the swap helpers gone');
}
