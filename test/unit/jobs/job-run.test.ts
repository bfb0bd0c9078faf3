import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { JobRun } from '../../../src/jobs/job-run.js';
import type { LimitSupport } from '../../../src/jobs/job-unit.js';
import type { StepResult } from '../../../src/jobs/types.js';
import { createRecordingLog } from '../state/helpers.js';
import { commandStep, makeJob, makeOptions, scriptStep } from './engine-helpers.js';
import { createStepResult } from '../../../src/jobs/step-result.js';

const cleanups: string[] = [];
afterEach(async () => {
  for (const dir of cleanups.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function options() {
  const built = await makeOptions();
  cleanups.push(built.workDir);
  return built;
}

function earlier(name: string, extra: Partial<StepResult> = {}): StepResult {
  return createStepResult(
    { name, argv: ['/bin/echo', name], handler: null, user: 'cloudjobs', startedAt: '2025-01-01T00:00:00.000Z' },
    { exitCode: 0, durationMs: 7, stdout: `${name} ran before\n`, stdoutBytes: 12, ...extra },
  );
}

describe('JobRun started after earlier steps', () => {
  it('runs only the steps after them, numbered as in the whole job, and reports all', async () => {
    const job = makeJob([scriptStep('First', 'exit-code.sh', ['9']), scriptStep('Second', 'exit-code.sh', ['0'])]);
    const started: number[] = [];
    const ended: number[] = [];
    const run = new JobRun(
      job,
      await options(),
      { onStepStart: (index) => void started.push(index), onStepEnd: (_r, index) => void ended.push(index) },
      { finished: [earlier('First')] },
    );
    const report = await run.done;
    expect(started).toEqual([2]);
    expect(ended).toEqual([2]);
    expect(report.status).toBe('SUCCEEDED');
    expect(report.reason).toBe('2 of 2 steps succeeded');
    expect(report.stdout).toBe('=== Step: First ===\nFirst ran before\n=== Step: Second ===\nargs: 0\n');
  });

  it('runs nothing more after an earlier step that failed the job', async () => {
    const job = makeJob([scriptStep('First', 'exit-code.sh', ['0']), scriptStep('Second', 'exit-code.sh', ['0'])]);
    const started: number[] = [];
    const failed = earlier('First', { exitCode: 4, failed: true, failureReason: 'exited with code 4' });
    const report = await new JobRun(job, await options(), { onStepStart: (i) => void started.push(i) }, { finished: [failed] }).done;
    expect(started).toEqual([]);
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe('step 1 ("First") failed: exited with code 4');
    expect(report.executed_steps).toBe(1);
  });

  it('refuses more earlier results than the job has steps', async () => {
    const job = makeJob([scriptStep('Only', 'exit-code.sh', ['0'])]);
    const opts = await options();
    expect(() => new JobRun(job, opts, {}, { finished: [earlier('a'), earlier('b')] })).toThrow(
      '2 earlier results for a job of 1 steps',
    );
  });
});

describe('JobRun.halt', () => {
  it('lets the running step finish and starts no other', async () => {
    const job = makeJob([scriptStep('First', 'exit-code.sh', ['0']), scriptStep('Second', 'exit-code.sh', ['0'])]);
    const started: number[] = [];
    let run: JobRun | null = null;
    run = new JobRun(job, await options(), {
      onStepStart: (index) => void started.push(index),
      onStepEnd: () => run?.halt('could not journal: ENOSPC'),
    });
    const report = await run.done;
    expect(started).toEqual([1]);
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe('could not journal: ENOSPC; 1 of 2 steps ran, the rest were not started');
    expect(report.stdout).toBe('=== Step: First ===\nargs: 0\n');
  });

  it('a halt from the step-start hook keeps that step from starting', async () => {
    const job = makeJob([scriptStep('First', 'exit-code.sh', ['0'])]);
    let run: JobRun | null = null;
    run = new JobRun(job, await options(), { onStepStart: () => run?.halt('read-only') });
    const report = await run.done;
    expect(report.executed_steps).toBe(0);
    expect(report.reason).toBe('read-only; 0 of 1 steps ran, the rest were not started');
  });
});

describe('JobRun: a step that asks for a reboot (exit 194)', () => {
  it('ends the run after it, before the next step, with an IN_PROGRESS report saying so', async () => {
    const job = makeJob([
      scriptStep('Mark', 'exit-code.sh', ['0']),
      scriptStep('Reboot', 'exit-code.sh', ['194']),
      scriptStep('Check', 'exit-code.sh', ['0']),
    ]);
    const started: number[] = [];
    const run = new JobRun(job, await options(), { onStepStart: (i) => void started.push(i) });
    const report = await run.done;
    expect(started).toEqual([1, 2]);
    expect(run.rebootRequest).toEqual({ label: 'step 2 ("Reboot")', stepsDone: 2 });
    expect(report.status).toBe('IN_PROGRESS');
    expect(report.reason).toBe('rebooting: step 2 ("Reboot") asked for a reboot; 2 of 3 steps done, the rest run after the boot');
    expect(report.executed_steps).toBe(2);
    expect(report.exit_code).toBeNull();
    const details = report.status_details as { rebooting: boolean; steps: { exit_code: number; reboot_requested?: boolean }[] };
    expect(details.rebooting).toBe(true);
    expect(details.steps.map((s) => [s.exit_code, s.reboot_requested ?? false])).toEqual([
      [0, false],
      [194, true],
    ]);
  });

  it('the run after the boot starts after it, and the final report covers both boots', async () => {
    const job = makeJob([
      scriptStep('Mark', 'exit-code.sh', ['0']),
      scriptStep('Reboot', 'exit-code.sh', ['194']),
      scriptStep('Check', 'exit-code.sh', ['0']),
    ]);
    const first = new JobRun(job, await options());
    await first.done;
    const before = (await first.done).status_details as { steps: unknown[] };
    expect(before.steps).toHaveLength(2);
    const finished = [earlier('Mark'), { ...earlier('Reboot'), exitCode: 194, rebootRequested: true as const }];
    const second = new JobRun(job, await options(), {}, { finished });
    const report = await second.done;
    expect(second.rebootRequest).toBeNull();
    expect(report.status).toBe('SUCCEEDED');
    expect(report.reason).toBe('3 of 3 steps succeeded');
    expect(report.executed_steps).toBe(3);
    expect(report.exit_code).toBe(0);
    expect(report.stdout).toBe(
      '=== Step: Mark ===\nMark ran before\n=== Step: Reboot ===\nReboot ran before\n=== Step: Check ===\nargs: 0\n',
    );
  });

  it('a finalStep that asks reboots too; after the boot nothing is left and the job SUCCEEDED', async () => {
    const job = makeJob([scriptStep('Work', 'exit-code.sh', ['0'])], { finalStep: scriptStep('Reboot', 'exit-code.sh', ['194']) });
    const run = new JobRun(job, await options());
    await run.done;
    expect(run.rebootRequest).toEqual({ label: 'final step ("Reboot")', stepsDone: 2 });
    const after = await new JobRun(job, await options(), {}, { finished: [earlier('Work'), earlier('Reboot', { exitCode: 194 })] }).done;
    expect(after.status).toBe('SUCCEEDED');
    expect(after.executed_steps).toBe(2);
  });

  it('exit 194 with more stderr than allowed is a failure, not a request', async () => {
    const job = makeJob([scriptStep('Noisy', 'stderr-lines.sh', ['2', '194'])]);
    const run = new JobRun(job, await options());
    const report = await run.done;
    expect(run.rebootRequest).toBeNull();
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe('step 1 ("Noisy") failed: wrote 2 lines to stderr, allowStdErr is 0');
  });

  it('a parallel member cannot ask: its exit 194 fails it', async () => {
    const job = makeJob([
      { kind: 'parallel', name: 'group', members: [scriptStep('A', 'exit-code.sh', ['194']), scriptStep('B', 'exit-code.sh', ['0'])] },
      scriptStep('After', 'exit-code.sh', ['0']),
    ]);
    const run = new JobRun(job, await options());
    const report = await run.done;
    expect(run.rebootRequest).toBeNull();
    expect(report.status).toBe('FAILED');
    expect(report.reason).toBe(
      'step 1.1 ("A") failed: exited with code 194 (a reboot request) inside a parallel group; only a step of its own may ask for a reboot',
    );
  });
});

// systemd's part, faked in a directory of scripts: systemd-run refuses a new
// scope once the agent's unit stops (the `stopping` file), as systemd does
// while the job's slice has a stop job queued through PartOf=.
const FAKE_SYSTEMD_RUN = `#!/bin/sh
dir=$(dirname "$0")
if [ -e "$dir/stopping" ]; then
  echo "Failed to start transient scope unit: Transaction for cloudjobs-step.scope/start is destructive" >&2
  exit 1
fi
echo "systemd-run $*" >> "$dir/calls"
while [ "$1" != -- ]; do shift; done
shift
exec "$@"
`;
const FAKE_CHOOM = `#!/bin/sh
echo "choom $*" >> "$(dirname "$0")/calls"
shift 3
exec "$@"
`;

async function fakeSystemd(): Promise<{ dir: string; support: Extract<LimitSupport, { enforced: true }> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cloudjobs-fake-systemd-'));
  cleanups.push(dir);
  for (const [name, text] of [['systemd-run', FAKE_SYSTEMD_RUN], ['choom', FAKE_CHOOM]] as const) {
    await writeFile(path.join(dir, name), text);
    await chmod(path.join(dir, name), 0o755);
  }
  const tools = { systemdRun: path.join(dir, 'systemd-run'), systemctl: '/bin/true', busctl: '/bin/true', choom: path.join(dir, 'choom') };
  // no cgroup tree there: the counters read as unknown, the slice as empty
  const layout = { unified: path.join(dir, 'cgroup'), legacy: null, controllers: new Set<string>() };
  return { dir, support: { enforced: true, tools, layout, agentUnit: 'cloudjobs.service', gaps: [] } };
}

describe('JobRun under limits while the agent stops', () => {
  it('runs the steps that start after the stop outside the slice, says so once, and the job succeeds', async () => {
    const { dir, support } = await fakeSystemd();
    const log = createRecordingLog();
    const uid = process.getuid?.() ?? 0;
    const built = await options();
    const opts = {
      ...built,
      log,
      limitSupport: support,
      limitCeiling: { memoryMax: 256 * 1024 * 1024, tasksMax: 512, cpuQuota: 80 },
      agentUid: uid,
      agentPrivileges: { uid, noNewPrivs: false, noInheritableCaps: true, setprivPath: '/usr/bin/setpriv' },
    };
    const job = makeJob(['one', 'two', 'three'].map((word) => commandStep(word, ['/bin/echo', word])));
    let stopping = false;
    const report = await new JobRun(job, opts, {
      // the agent's stop arrives while step 1 runs
      onStepEnd: async (_result, index) => {
        if (index !== 1) return;
        stopping = true;
        await writeFile(path.join(dir, 'stopping'), '');
      },
      agentStopping: () => stopping,
    }).done;
    expect(report.status).toBe('SUCCEEDED');
    expect(report.stdout).toBe('=== Step: one ===\none\n=== Step: two ===\ntwo\n=== Step: three ===\nthree\n');
    const calls = (await readFile(path.join(dir, 'calls'), 'utf8')).trim().split('\n');
    expect(calls).toHaveLength(4);
    expect(calls[0]).toMatch(/^systemd-run --scope --quiet --collect --slice=cloudjobs-jobs-[0-9a-f]{18}\.slice --unit=cloudjobs-step-[0-9a-f]{18}-1 -p Before=cloudjobs\.service -- .*\/choom -n 500 -- \S+ .*\/bin\/echo one$/);
    expect(calls[1]).toMatch(/^choom -n 500 -- \S+ .*\/bin\/echo one$/);
    // steps 2 and 3: choom (and the user switch) without systemd-run
    expect(calls[2]).toMatch(/^choom -n 500 -- \S+ .*\/bin\/echo two$/);
    expect(calls[3]).toMatch(/^choom -n 500 -- \S+ .*\/bin\/echo three$/);
    const limits = report.status_details.limits as Record<string, unknown>;
    expect(limits.steps_outside_slice).toEqual([2, 3]);
    expect(limits.unit).toMatch(/^cloudjobs-jobs-[0-9a-f]{18}\.slice$/);
    expect(log.messages('warn')).toEqual([
      `step 2 and any later step of this job run outside the job's slice ${String(limits.unit)}, so its limits (memory 256 MiB, 512 tasks, CPU 80%) are not enforced on them: ` +
        "the agent is stopping, and systemd starts no new scope in the job's slice while it does; they still end by the agent's drain_timeout",
    ]);
  });
});
